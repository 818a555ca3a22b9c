"""Feature encoders fitted on the training split only, saved as JSON with a policy.

- ``CategoryEncoder``: the values seen at fit time, sorted; code 0 is the explicit
  **unknown bucket** (unseen values and missing values), value ``values[i]`` gets code
  i + 1. The OBD ``bts`` logs hold user-feature values the ``random`` logs never show,
  so the unknown bucket is used on real data.
- ``NumericEncoder``: standardisation with the training mean and standard deviation;
  missing values become 0 (the training mean) after standardising.
- ``FeatureEncoder``: one encoder per column of a frame (``ctx_*`` of logs, or ``cat_*``
  and ``num_*`` of the catalogue): strings → categorical, numbers → numeric.

``ItemFeatures`` encodes the catalogue once into per-item arrays in the stable item
index order, so a model looks item attributes up by item index.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from liveslate import schema

UNKNOWN = 0  # code of the unknown bucket in every CategoryEncoder


def _is_numeric(series: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(series.dtype) and not pd.api.types.is_bool_dtype(series.dtype)


@dataclass(frozen=True)
class CategoryEncoder:
    """values: sorted distinct training values; code = 1 + position, 0 = unknown/missing."""

    column: str
    values: tuple[str, ...]

    @classmethod
    def fit(cls, column: str, series: pd.Series) -> "CategoryEncoder":
        seen = series.dropna().astype(str).unique()
        return cls(column=column, values=tuple(sorted(str(v) for v in seen)))

    @property
    def cardinality(self) -> int:
        """Number of codes including the unknown bucket."""
        return len(self.values) + 1

    def transform(self, series: pd.Series) -> np.ndarray:
        """[n] int64 codes in 0..len(values); unseen and missing values → 0."""
        index = pd.Index(self.values)
        strings = series.astype("string")
        codes = index.get_indexer(strings.fillna("").astype(str).to_numpy()) + 1
        codes[strings.isna().to_numpy()] = UNKNOWN
        return codes.astype(np.int64)

    def to_json(self) -> dict[str, Any]:
        return {"type": "category", "column": self.column, "values": list(self.values)}


@dataclass(frozen=True)
class NumericEncoder:
    """(x − mean) / std with the training moments; std 0 is replaced by 1."""

    column: str
    mean: float
    std: float

    @classmethod
    def fit(cls, column: str, series: pd.Series) -> "NumericEncoder":
        values = pd.to_numeric(series, errors="raise").astype("float64").dropna()
        if values.empty:
            return cls(column=column, mean=0.0, std=1.0)
        std = float(values.std(ddof=0))
        return cls(column=column, mean=float(values.mean()), std=std if std > 0 else 1.0)

    def transform(self, series: pd.Series) -> np.ndarray:
        """[n] float32 standardised values; missing → 0."""
        values = pd.to_numeric(series, errors="coerce").astype("float64").to_numpy(na_value=np.nan)
        return np.nan_to_num((values - self.mean) / self.std, nan=0.0).astype(np.float32)

    def to_json(self) -> dict[str, Any]:
        return {"type": "numeric", "column": self.column, "mean": self.mean, "std": self.std}


@dataclass(frozen=True)
class FeatureEncoder:
    """Categorical and numeric encoders of a set of columns, applied together."""

    categorical: tuple[CategoryEncoder, ...] = ()
    numeric: tuple[NumericEncoder, ...] = ()

    @classmethod
    def fit(cls, frame: pd.DataFrame, columns: Sequence[str]) -> "FeatureEncoder":
        """Fit one encoder per column (in sorted column order): numbers → numeric, else categorical."""
        categorical, numeric = [], []
        for column in sorted(columns):
            if column not in frame.columns:
                raise ValueError(f"cannot fit an encoder: column {column!r} is missing")
            if _is_numeric(frame[column]):
                numeric.append(NumericEncoder.fit(column, frame[column]))
            else:
                categorical.append(CategoryEncoder.fit(column, frame[column]))
        return cls(categorical=tuple(categorical), numeric=tuple(numeric))

    @property
    def columns(self) -> list[str]:
        return [e.column for e in self.categorical] + [e.column for e in self.numeric]

    @property
    def cardinalities(self) -> list[int]:
        return [e.cardinality for e in self.categorical]

    def transform(self, frame: pd.DataFrame, where: str = "frame") -> tuple[np.ndarray, np.ndarray]:
        """frame → (codes [n, n_categorical] int64, values [n, n_numeric] float32)."""
        missing = [c for c in self.columns if c not in frame.columns]
        if missing:
            raise ValueError(f"{where}: missing feature column(s) {missing} (the policy was fitted with them)")
        n = len(frame)
        codes = np.zeros((n, len(self.categorical)), dtype=np.int64)
        values = np.zeros((n, len(self.numeric)), dtype=np.float32)
        for j, encoder in enumerate(self.categorical):
            codes[:, j] = encoder.transform(frame[encoder.column])
        for j, encoder in enumerate(self.numeric):
            try:
                values[:, j] = encoder.transform(frame[encoder.column])
            except (TypeError, ValueError) as err:
                raise ValueError(f"{where}: column {encoder.column!r} is not numeric: {err}") from err
        return codes, values

    def to_json(self) -> dict[str, Any]:
        return {"categorical": [e.to_json() for e in self.categorical],
                "numeric": [e.to_json() for e in self.numeric]}

    @classmethod
    def from_json(cls, payload: dict[str, Any]) -> "FeatureEncoder":
        try:
            categorical = tuple(CategoryEncoder(column=e["column"], values=tuple(str(v) for v in e["values"]))
                                for e in payload["categorical"])
            numeric = tuple(NumericEncoder(column=e["column"], mean=float(e["mean"]), std=float(e["std"]))
                            for e in payload["numeric"])
        except (KeyError, TypeError) as err:
            raise ValueError(f"encoders JSON: malformed feature encoder ({err!r})") from err
        return cls(categorical=categorical, numeric=numeric)


def fit_context_encoder(train_logs: pd.DataFrame) -> FeatureEncoder:
    """Encoder of every ``ctx_*`` column of the training logs."""
    return FeatureEncoder.fit(train_logs, schema.context_columns(train_logs))


@dataclass(frozen=True, eq=False)
class ItemFeatures:
    """Catalogue attributes per item, in stable item index order.

    codes: [n_items, n_cat] int64 (0 = unknown), values: [n_items, n_num] float32.
    """

    item_ids: tuple[str, ...]
    encoder: FeatureEncoder
    codes: np.ndarray
    values: np.ndarray

    @classmethod
    def fit(cls, catalog: pd.DataFrame, index: pd.Index) -> "ItemFeatures":
        """Fit encoders on the catalogue's ``cat_*`` / ``num_*`` columns and encode every indexed item."""
        columns = schema.category_columns(catalog) + schema.numeric_columns(catalog)
        ordered = align_catalog(catalog, index)
        encoder = FeatureEncoder.fit(ordered, columns)
        codes, values = encoder.transform(ordered, where="catalog")
        return cls(item_ids=tuple(str(i) for i in index), encoder=encoder, codes=codes, values=values)


def align_catalog(catalog: pd.DataFrame, index: pd.Index) -> pd.DataFrame:
    """Catalogue rows reordered to the item index; raises ValueError naming a missing or duplicated item."""
    ids = catalog["item_id"].astype(str)
    duplicated = ids[ids.duplicated()]
    if not duplicated.empty:
        raise ValueError(f"catalog: item_id {duplicated.iloc[0]!r} appears more than once")
    positions = pd.Index(ids.to_numpy()).get_indexer(index.astype(str))
    if (positions < 0).any():
        raise ValueError(f"catalog: item {index[int(np.flatnonzero(positions < 0)[0])]!r} of the item index is missing")
    return catalog.iloc[positions].reset_index(drop=True)
