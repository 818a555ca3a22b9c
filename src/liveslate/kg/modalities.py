"""Item modality features for the fusion GNN: text, image and numeric, each with a presence mask.

A modality is built only from what the catalogue holds: no ``text`` column (or no item
with text) means no text modality; an item without a value has ``present = False`` and a
zero row, which the model reads as "no input from this modality" — never a made-up value.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from liveslate.config import KgMultimodalConfig
from liveslate.schema import numeric_columns

MODALITIES = ("text", "image", "numeric")


@dataclass(frozen=True)
class ItemFeatures:
    """One modality of every item: values [n_items, d] float32, present [n_items] bool.

    ``values`` are z-scored per column over the present rows (a constant column is 0) and
    are exactly 0 where ``present`` is False.
    """

    name: str
    values: np.ndarray
    present: np.ndarray

    def __post_init__(self) -> None:
        if self.values.ndim != 2 or self.present.shape != (self.values.shape[0],):
            raise ValueError(f"modality {self.name}: values {self.values.shape} and present {self.present.shape} "
                             "must describe the same items")

    @property
    def dim(self) -> int:
        return int(self.values.shape[1])


def standardise_rows(raw: np.ndarray, present: np.ndarray, name: str) -> ItemFeatures:
    """Z-score ``raw`` [n, d] per column over the rows where ``present``; zero elsewhere."""
    values = np.zeros(raw.shape, dtype=np.float32)
    if present.any():
        observed = raw[present].astype(np.float64)
        std = observed.std(axis=0)
        scaled = (observed - observed.mean(axis=0)) / np.where(std > 0, std, 1.0)
        values[present] = np.where(std > 0, scaled, 0.0).astype(np.float32)
    return ItemFeatures(name, values, present.copy())


def _present(column: pd.Series) -> np.ndarray:
    return (column.notna() & (column.astype("string").str.strip() != "")).fillna(False).to_numpy(dtype=bool)


@dataclass(frozen=True)
class Modalities:
    """features: modality → ItemFeatures; missing: absent modality → why; raw: modality → the
    encoder output [n_items, d] before z-scoring (for probes); cache: encoder → {hits, misses}."""

    features: dict[str, ItemFeatures]
    missing: dict[str, str]
    raw: dict[str, np.ndarray]
    cache: dict[str, dict[str, int]]


def item_modalities(ordered: pd.DataFrame, root: Path, config: KgMultimodalConfig,
                    cache_dir: Path | None) -> Modalities:
    """Catalogue rows in item-index order → their modality features (see ``Modalities``).

    Text goes through all-MiniLM-L6-v2, images (paths relative to ``root``) through
    EfficientNet-lite0, both cached under ``cache_dir``; ``num_*`` columns are used as they
    are (missing values → the item lacks the numeric modality only if all its columns are null).
    """
    features: dict[str, ItemFeatures] = {}
    missing: dict[str, str] = {}
    raws: dict[str, np.ndarray] = {}
    cache: dict[str, dict[str, int]] = {}
    n = len(ordered)

    text_present = _present(ordered["text"]) if "text" in ordered.columns else np.zeros(n, dtype=bool)
    if text_present.any():
        from liveslate.kg.encoders.text import TEXT_DIM, TextEncoder

        encoder = TextEncoder(cache_dir, config.text.batch_size, config.text.max_seq_length)
        raw = np.zeros((n, TEXT_DIM), dtype=np.float32)
        raw[text_present] = encoder.encode(ordered.loc[text_present, "text"].astype(str).tolist())
        features["text"] = standardise_rows(raw, text_present, "text")
        raws["text"] = raw
        if encoder.cache is not None:
            cache["text"] = {"hits": encoder.cache.hits, "misses": encoder.cache.misses}
    else:
        missing["text"] = "the catalogue has no item text"

    image_present = _present(ordered["image"]) if "image" in ordered.columns else np.zeros(n, dtype=bool)
    if image_present.any():
        from liveslate.kg.encoders.image import IMAGE_DIM, ImageEncoder

        encoder = ImageEncoder(cache_dir, config.image.size, config.image.batch_size)
        raw = np.zeros((n, IMAGE_DIM), dtype=np.float32)
        raw[image_present] = encoder.encode([root / p for p in ordered.loc[image_present, "image"].astype(str)])
        features["image"] = standardise_rows(raw, image_present, "image")
        raws["image"] = raw
        if encoder.cache is not None:
            cache["image"] = {"hits": encoder.cache.hits, "misses": encoder.cache.misses}
    else:
        missing["image"] = "the catalogue has no item image"

    columns = numeric_columns(ordered)
    if columns:
        raw_numeric = ordered[columns].apply(pd.to_numeric, errors="coerce").astype("float64")
        unreadable = raw_numeric.isna().to_numpy() & ordered[columns].notna().to_numpy()
        if unreadable.any():
            row, col = (int(i[0]) for i in np.nonzero(unreadable))
            raise ValueError(f"catalogue column {columns[col]}, row {row} (item {ordered['item_id'].iloc[row]!r}): "
                             f"expected a number, got {ordered[columns[col]].iloc[row]!r}")
        numeric_present = raw_numeric.notna().any(axis=1).to_numpy()
        # A single missing column of a present item sits at that column's mean (0 after z-scoring).
        filled = raw_numeric.fillna(raw_numeric.mean()).fillna(0.0).to_numpy()
        if not np.isfinite(filled).all():
            row = int(np.flatnonzero(~np.isfinite(filled).all(axis=1))[0])
            raise ValueError(f"catalogue row {row} (item {ordered['item_id'].iloc[row]!r}): a num_* value is not finite")
        features["numeric"] = standardise_rows(filled, numeric_present, "numeric")
        raws["numeric"] = filled.astype(np.float32)
    else:
        missing["numeric"] = "the catalogue has no num_* column"
    return Modalities(features, missing, raws, cache)
