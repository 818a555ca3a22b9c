"""Generic source: a directory of Parquet or CSV files already in the canonical schema.

This is what users' own exports (and, later, served logs) look like. Log files are
``logs*.parquet`` / ``logs*.csv``; catalogue files are ``catalog*.parquet`` / ``catalog*.csv``.
A file that cannot be read, or lacks a required column, is an error naming the file.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from liveslate.schema import CATALOG_REQUIRED, LOG_REQUIRED, coerce_logs


def _read_table(path: Path) -> pd.DataFrame:
    if path.suffix == ".parquet":
        return pd.read_parquet(path)
    if path.suffix == ".csv":
        frame = pd.read_csv(path, dtype={"impression_id": "string", "item_id": "string", "room_id": "string",
                                         "session_id": "string", "policy": "string"})
        if "candidates" in frame.columns:  # CSV stores the list as JSON text
            frame["candidates"] = [json.loads(v) if isinstance(v, str) else None for v in frame["candidates"]]
        return frame
    raise ValueError(f"{path}: expected a .parquet or .csv file")


def _files(directory: Path, stem: str) -> list[Path]:
    return sorted(p for p in directory.glob(f"{stem}*") if p.suffix in (".parquet", ".csv"))


def read_canonical_logs(directory: Path) -> pd.DataFrame:
    files = _files(directory, "logs")
    if not files:
        raise FileNotFoundError(f"{directory}: no logs*.parquet or logs*.csv files")
    frames = []
    for path in files:
        frame = _read_table(path)
        missing = [c for c in LOG_REQUIRED if c not in frame.columns]
        if missing:
            raise ValueError(f"{path}: missing required column(s) {missing} (rows 0..{len(frame) - 1})")
        try:
            frames.append(coerce_logs(frame))
        except (ValueError, TypeError) as err:
            raise ValueError(f"{path}: {err}") from err
    return pd.concat(frames, ignore_index=True)


def read_canonical_catalog(directory: Path) -> pd.DataFrame:
    files = _files(directory, "catalog")
    if not files:
        raise FileNotFoundError(f"{directory}: no catalog*.parquet or catalog*.csv files")
    frames = []
    for path in files:
        frame = _read_table(path)
        missing = [c for c in CATALOG_REQUIRED if c not in frame.columns]
        if missing:
            raise ValueError(f"{path}: missing required column(s) {missing}")
        frame = frame.copy()
        frame["item_id"] = frame["item_id"].astype("string")
        frame["room_id"] = frame["room_id"].astype("string")
        frame["first_seen"] = pd.to_datetime(frame["first_seen"]).dt.tz_localize(None).dt.normalize()
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)
