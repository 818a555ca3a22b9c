"""Seeded, vectorised bootstrap of row means, resampling whole impressions.

Rows of one impression share a context and a viewer, so they are not independent:
the resampling unit is the impression (a cluster bootstrap). With one row per
impression (the OBD sample) this is the ordinary bootstrap of rows.

Every statistic here is a function of *means of per-row columns* (an estimate is
``mean(direct) + mean(weighted) / mean(normaliser)``; a ranking metric is a mean), so
a resample is summarised by its multinomial count per impression: the resampled mean
of column c is ``counts @ sums[:, c] / counts @ rows_per_impression``. One count
vector serves all columns (one BLAS product), and the same seed gives the same
resamples for every estimator, so their intervals are comparable.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np


def derive_seed(seed: int, *labels: str) -> int:
    """A seed for one purpose (e.g. ``derive_seed(params.seed, "ope", "bootstrap")``).

    Independent streams per purpose from the one project seed, stable across runs and
    machines (crc32 of the labels, not Python's salted ``hash``).
    """
    entropy = [int(seed)] + [zlib.crc32(label.encode()) for label in labels]
    return int(np.random.SeedSequence(entropy).generate_state(1, dtype=np.uint32)[0])


@dataclass(frozen=True)
class BootstrapConfig:
    """n_resamples ≥ 2 resamples; confidence in (0, 1) for percentile intervals; seed ≥ 0."""

    n_resamples: int = 1000
    confidence: float = 0.95
    seed: int = 0

    def __post_init__(self) -> None:
        if self.n_resamples < 2:
            raise ValueError(f"bootstrap.n_resamples: expected >= 2, got {self.n_resamples}")
        if not 0.0 < self.confidence < 1.0:
            raise ValueError(f"bootstrap.confidence: expected a level in (0, 1), got {self.confidence}")
        if self.seed < 0:
            raise ValueError(f"bootstrap.seed: expected >= 0, got {self.seed}")


def resampled_means(columns: np.ndarray, clusters: np.ndarray | None, n_resamples: int, seed: int) -> np.ndarray:
    """Bootstrap means of each column: [n_resamples, c].

    columns: [n, c] (or [n]) per-row values; clusters: [n] int codes 0..G-1 of the
    resampling unit (None = each row its own unit). Each resample draws G units with
    replacement; the mean is over the rows of the drawn units.
    """
    columns = np.asarray(columns, dtype=np.float64)
    single = columns.ndim == 1
    if single:
        columns = columns[:, None]
    n = columns.shape[0]
    if n == 0:
        raise ValueError("bootstrap: no rows to resample")
    if clusters is None:
        sums, sizes = columns, np.ones(n)
    else:
        n_units = int(clusters.max()) + 1
        sums = np.stack([np.bincount(clusters, weights=columns[:, c], minlength=n_units)
                         for c in range(columns.shape[1])], axis=1)
        sizes = np.bincount(clusters, minlength=n_units).astype(np.float64)
    n_units = len(sizes)
    rng = np.random.default_rng(seed)
    # A block of count vectors at a time: one matrix product per block, memory bounded (~64 MB).
    block = max(1, min(n_resamples, (8 * 2**20) // n_units))
    out = np.empty((n_resamples, columns.shape[1]))
    for start in range(0, n_resamples, block):
        size = min(block, n_resamples - start)
        # Multinomial counts of each unit in each resample: one bincount over offset draws.
        draws = rng.integers(0, n_units, size=(size, n_units))
        draws += np.arange(size)[:, None] * n_units
        counts = np.bincount(draws.ravel(), minlength=size * n_units).reshape(size, n_units).astype(np.float64)
        out[start:start + size] = (counts @ sums) / (counts @ sizes)[:, None]
    return out[:, 0] if single else out


def percentile_interval(samples: np.ndarray, confidence: float) -> tuple[float, float]:
    """(low, high) percentile interval of the finite bootstrap samples."""
    finite = samples[np.isfinite(samples)]
    if len(finite) == 0:
        raise ValueError("bootstrap: every resample gave an undefined statistic")
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(finite, [tail, 1.0 - tail])
    return float(low), float(high)
