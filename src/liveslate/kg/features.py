"""Numeric item attributes (``num_*``), standardised for the graph and the item vector."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from liveslate.schema import numeric_columns


@dataclass(frozen=True)
class NumericFeatures:
    """Standardised numeric attributes in item-index order.

    values: [n_items, n_columns] float32, (x − mean) / std per column; a missing value
    becomes 0 (the column mean) and a constant column is all 0 (std recorded as 0).
    """

    columns: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    values: np.ndarray

    def to_json(self) -> dict[str, dict[str, float]]:
        return {c: {"mean": m, "std": s} for c, m, s in zip(self.columns, self.mean, self.std)}


def standardise_numeric(catalog: pd.DataFrame) -> NumericFeatures:
    """``catalog`` rows already in item-index order → standardised ``num_*`` columns.

    Raises ValueError naming the column and first row when a value is not a finite number.
    """
    columns = numeric_columns(catalog)
    values = np.zeros((len(catalog), len(columns)), dtype=np.float32)
    means, stds = [], []
    for j, column in enumerate(columns):
        raw = pd.to_numeric(catalog[column], errors="coerce").astype("float64").to_numpy()
        present = catalog[column].notna().to_numpy()
        bad = present & ~np.isfinite(raw)
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise ValueError(f"catalogue column {column}, row {row} (item {catalog['item_id'].iloc[row]!r}): "
                             f"expected a finite number, got {catalog[column].iloc[row]!r}")
        observed = raw[present]
        mean = float(observed.mean()) if observed.size else 0.0
        std = float(observed.std()) if observed.size else 0.0
        if std > 0:
            values[present, j] = ((observed - mean) / std).astype(np.float32)
        means.append(mean)
        stds.append(std)
    return NumericFeatures(columns=tuple(columns), mean=tuple(means), std=tuple(stds), values=values)
