"""Canonical data contracts (DESIGN.md): logged feedback and catalogue.

Every source is converted to these columns and dtypes; every stage after ingest
can rely on them. ``ctx_*`` (logs) and ``cat_*`` / ``num_*`` (catalogue) are open
families of columns.
"""

from __future__ import annotations

import pandas as pd

# Logged feedback: one row per (impression, position). Name → pandas dtype.
LOG_DTYPES: dict[str, str] = {
    "impression_id": "string",
    "session_id": "string",
    "step": "Int32",
    "ts": "datetime64[ns, UTC]",
    "room_id": "string",
    "item_id": "string",
    "position": "int16",
    "click": "int8",
    "reward": "float32",
    "propensity": "float64",
    "policy": "string",
    "slate_probability": "float64",
    "candidates": "object",  # list of str on position-0 rows, else None
}
LOG_REQUIRED = ["impression_id", "ts", "room_id", "item_id", "position", "click", "reward", "propensity", "policy"]
LOG_NULLABLE = ["session_id", "step", "slate_probability", "candidates"]
CONTEXT_PREFIX = "ctx_"

CATALOG_DTYPES: dict[str, str] = {
    "item_id": "string",
    "room_id": "string",
    "first_seen": "datetime64[ns]",  # a date (midnight, naive)
    "text": "string",
    "image": "string",
}
CATALOG_REQUIRED = ["item_id", "room_id", "first_seen"]
CATEGORY_PREFIX = "cat_"
NUMERIC_PREFIX = "num_"


def context_columns(frame: pd.DataFrame) -> list[str]:
    return sorted(c for c in frame.columns if c.startswith(CONTEXT_PREFIX))


def category_columns(frame: pd.DataFrame) -> list[str]:
    return sorted(c for c in frame.columns if c.startswith(CATEGORY_PREFIX))


def numeric_columns(frame: pd.DataFrame) -> list[str]:
    return sorted(c for c in frame.columns if c.startswith(NUMERIC_PREFIX))


def item_index(catalog: pd.DataFrame) -> pd.Index:
    """The stable item index used by every model, the KG and the service.

    Items ordered by (first_seen, item_id): a later day's new items are appended at
    the end and never shift earlier indices.
    """
    ordered = catalog.sort_values(["first_seen", "item_id"], kind="mergesort")
    return pd.Index(ordered["item_id"].astype(str).to_numpy(), name="item_id")


def coerce_logs(frame: pd.DataFrame) -> pd.DataFrame:
    """Cast known columns to their canonical dtype, adding absent nullable ones as null.

    Raises ValueError naming the column when a required one is missing. Values that do
    not fit the dtype are the validate stage's business, so ingest only casts columns
    whose dtype is already compatible.
    """
    missing = [c for c in LOG_REQUIRED if c not in frame.columns]
    if missing:
        raise ValueError(f"missing required column(s) {missing}")
    out = frame.copy()
    for column in LOG_NULLABLE:
        if column not in out.columns:
            out[column] = None
    for column, dtype in LOG_DTYPES.items():
        if column == "ts":
            out[column] = pd.to_datetime(out[column], utc=True)
        elif dtype == "object":
            # an all-null column read from an empty file arrives as float64; lists need object
            out[column] = out[column].astype("object").where(out[column].notna(), None)
        else:
            out[column] = out[column].astype(dtype)
    ordered = list(LOG_DTYPES) + context_columns(out)
    extra = [c for c in out.columns if c not in ordered]
    return out[ordered + extra]
