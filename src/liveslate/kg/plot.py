"""2-D PCA projection of the item vectors, coloured by a catalogue column."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

# Beyond this many groups a legend is unreadable; colours still separate them.
_MAX_LEGEND_ENTRIES = 12


def pca_2d(vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """[n, d] → (coordinates [n, 2] on the first two principal axes, explained variance share [2]).

    Columns beyond the rank of the data are zero; a single item sits at the origin.
    """
    centred = vectors.astype(np.float64) - vectors.mean(axis=0, keepdims=True)
    _, singular, axes = np.linalg.svd(centred, full_matrices=False)
    coords = np.zeros((vectors.shape[0], 2))
    k = min(2, axes.shape[0])
    coords[:, :k] = centred @ axes[:k].T
    total = float((singular ** 2).sum())
    share = np.zeros(2)
    if total > 0:
        share[:k] = singular[:k] ** 2 / total
    return coords, share


def plot_item_projection(vectors: np.ndarray, groups: pd.Series, title: str, target: Path) -> None:
    """Scatter of the items' PCA coordinates, one colour per value of ``groups`` (PNG, written atomically)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from liveslate.io import atomic_path

    coords, share = pca_2d(vectors)
    labels = groups.astype(object).where(groups.notna(), "(none)").astype(str).to_numpy()
    names = sorted(set(labels))
    colours = plt.get_cmap("tab20" if len(names) > 10 else "tab10")
    fig, ax = plt.subplots(figsize=(5.5, 4.5), dpi=110)
    for i, name in enumerate(names):
        mask = labels == name
        ax.scatter(coords[mask, 0], coords[mask, 1], s=14, alpha=0.8, color=colours(i % colours.N),
                   label=name if len(names) <= _MAX_LEGEND_ENTRIES else None)
    ax.set_xlabel(f"PC1 ({share[0]:.0%} of variance)")
    ax.set_ylabel(f"PC2 ({share[1]:.0%} of variance)")
    ax.set_title(title, fontsize=10)
    if len(names) <= _MAX_LEGEND_ENTRIES:
        ax.legend(fontsize=7, title=groups.name, title_fontsize=7, loc="best")
    fig.tight_layout()
    with atomic_path(target) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
