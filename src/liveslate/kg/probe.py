"""Linear probe: how well a feature matrix separates the catalogue's classes.

Multinomial logistic regression on z-scored features, scored by stratified K-fold
cross-validated accuracy (every item predicted once, by a model that never saw it), with
a 95% Wilson interval. Reference points: the majority-class share and 1 / classes.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import numpy as np


def wilson_interval(successes: int, trials: int, z: float = 1.959963984540054) -> tuple[float, float]:
    """95% Wilson score interval of a binomial proportion."""
    if trials <= 0:
        raise ValueError("wilson interval: needs at least one trial")
    p = successes / trials
    denominator = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denominator
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def linear_probe(values: np.ndarray, labels: Sequence[str], folds: int, seed: int) -> dict[str, float | int | list[float]]:
    """Cross-validated accuracy of a linear classifier of ``labels`` [n] from ``values`` [n, d].

    Classes with fewer than ``folds`` items cannot be stratified and are left out (counted
    in ``items_left_out``). Returns accuracy, accuracy_ci, items, classes, majority, uniform.
    Raises ValueError when fewer than two classes remain.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    labels = np.asarray(labels, dtype=object)
    if values.shape[0] != labels.shape[0]:
        raise ValueError(f"linear probe: {values.shape[0]} feature rows but {labels.shape[0]} labels")
    names, counts = np.unique(labels, return_counts=True)
    kept_classes = set(names[counts >= folds])
    keep = np.array([label in kept_classes for label in labels], dtype=bool)
    if len(kept_classes) < 2:
        raise ValueError(f"linear probe: fewer than two classes have {folds} items (one per fold)")
    x, y = values[keep], labels[keep].astype(str)
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    predicted = cross_val_predict(model, x, y, cv=StratifiedKFold(folds, shuffle=True, random_state=seed))
    correct = int((predicted == y).sum())
    _, kept_counts = np.unique(y, return_counts=True)
    low, high = wilson_interval(correct, len(y))
    return {"accuracy": correct / len(y), "accuracy_ci": [low, high], "items": int(len(y)),
            "items_left_out": int((~keep).sum()), "classes": int(len(kept_classes)),
            "majority": float(kept_counts.max() / len(y)), "uniform": 1.0 / len(kept_classes)}


def raw_pixels(paths: Sequence[Path], side: int = 28) -> np.ndarray:
    """[n, side²] float32 grey pixels in [0, 1] (photos resized to side × side): the no-network baseline."""
    from PIL import Image

    rows = []
    for path in paths:
        with Image.open(path) as image:
            grey = image.convert("L").resize((side, side), Image.Resampling.BILINEAR)
        rows.append(np.asarray(grey, dtype=np.float32).ravel() / 255.0)
    return np.stack(rows) if rows else np.zeros((0, side * side), dtype=np.float32)
