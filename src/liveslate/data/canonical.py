"""Generic source: a directory of Parquet or CSV files already in the canonical schema.

This is what users' own exports (and, later, served logs) look like. Log files are
``logs*.parquet`` / ``logs*.csv``; catalogue files are ``catalog*.parquet`` / ``catalog*.csv``.

Two kinds of bad input, two answers:
- a *file* that cannot be read at all (not UTF-8, not Parquet, empty, a required column
  missing) is an error naming the file (and the line, for an encoding error);
- a *cell* that does not fit its column's type (``click`` = "yes", a ``ts`` that is no
  timestamp, ``position`` 1.5 or 70000, ``candidates`` that is not a JSON list of ids, a
  ``num_*`` attribute that is text) rejects its row, which is kept in ``rejects`` with the
  file, the line and the reason; the other rows go on to the validate stage, whose own
  expectations judge values that do fit the type (a click of 2, a propensity of 0).
  Casting such a cell instead would truncate 1.5 to 1 and wrap 70000 to 4464 in int16.

Line numbers are those of the CSV file (the header is line 1, so row i is line i + 2;
a quoted field holding a newline shifts them) or, for Parquet, the 1-based row number.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from liveslate.schema import (
    CATALOG_REQUIRED,
    CATEGORY_PREFIX,
    LOG_REQUIRED,
    NUMERIC_PREFIX,
    coerce_logs,
)

# Same columns as the served source's rejects (data/served.py), so one reader fits both.
REJECT_COLUMNS = ["file", "line", "reason", "text"]

LOG_STRING_COLUMNS = ("impression_id", "session_id", "room_id", "item_id", "policy")
# column → (pandas dtype after parsing, whether a missing value is allowed)
LOG_INTEGER_COLUMNS = {"step": ("Int32", True), "position": ("int16", False), "click": ("int8", False)}
LOG_FLOAT_COLUMNS = ("reward", "propensity", "slate_probability")
CATALOG_STRING_COLUMNS = ("item_id", "room_id", "text", "image")


@dataclass(frozen=True, eq=False)
class CanonicalSource:
    """What the canonical source read: logs and catalogue rows that fit the schema's types, and
    the rows that did not (``rejects``: file, line, reason, text — the offending cell's text)."""

    logs: pd.DataFrame
    catalog: pd.DataFrame
    rejects: pd.DataFrame


class _Rejects:
    """Collects (row → reasons) of one file; a row may fail several columns."""

    def __init__(self, frame: pd.DataFrame, path: Path, lines: np.ndarray) -> None:
        self.path, self.lines = path, lines
        self.reasons: dict[int, list[str]] = {}
        self.texts: dict[int, list[str]] = {}
        self.raw = frame

    def add(self, bad: np.ndarray, column: str, expected: str) -> None:
        """Reject the True rows of ``bad``: their ``column`` cell is not ``expected``."""
        for row in np.flatnonzero(bad):
            text = str(self.raw[column].iloc[row])
            self.reasons.setdefault(int(row), []).append(f"column {column}: {text!r} is not {expected}")
            self.texts.setdefault(int(row), []).append(f"{column}={text}")

    def add_missing(self, bad: np.ndarray, column: str, expected: str) -> None:
        """Reject the True rows of ``bad``: their ``column`` cell is empty but its dtype has no null."""
        for row in np.flatnonzero(bad):
            self.reasons.setdefault(int(row), []).append(f"column {column}: missing; expected {expected}")
            self.texts.setdefault(int(row), []).append(f"{column}=")

    def rows(self) -> np.ndarray:
        return np.array(sorted(self.reasons), dtype=np.int64)

    def records(self) -> list[dict[str, Any]]:
        return [{"file": str(self.path), "line": int(self.lines[row]), "reason": "; ".join(self.reasons[row]),
                 "text": ", ".join(self.texts[row])} for row in sorted(self.reasons)]


def _decode(path: Path) -> str:
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")  # a byte-order mark from spreadsheet exports is not data
    except UnicodeDecodeError as err:
        line = data[:err.start].count(b"\n") + 1
        raise ValueError(f"{path}: line {line}: not UTF-8 text (byte {data[err.start]:#04x}); "
                         "export the file as UTF-8") from err


def _read_table(path: Path) -> tuple[pd.DataFrame, np.ndarray]:
    """(frame, line number of each row). CSV cells are read as text and typed by the callers."""
    if path.suffix == ".parquet":
        try:
            frame = pd.read_parquet(path)
        except (OSError, ValueError) as err:
            raise ValueError(f"{path}: not a readable Parquet file ({err})") from err
        return frame.reset_index(drop=True), np.arange(1, len(frame) + 1)
    if path.suffix == ".csv":
        try:
            frame = pd.read_csv(io.StringIO(_decode(path)), dtype=str)
        except pd.errors.EmptyDataError as err:
            raise ValueError(f"{path}: the file is empty (expected a header line naming the columns)") from err
        except pd.errors.ParserError as err:  # e.g. a line with more fields than the header
            raise ValueError(f"{path}: not a readable CSV file ({' '.join(str(err).split())})") from err
        return frame, np.arange(2, len(frame) + 2)
    raise ValueError(f"{path}: expected a .parquet or .csv file")


def _files(directory: Path, stem: str) -> list[Path]:
    return sorted(p for p in directory.glob(f"{stem}*") if p.suffix in (".parquet", ".csv") and p.is_file())


def _present(column: pd.Series) -> np.ndarray:
    return column.notna().to_numpy()


def _parse_integer(frame: pd.DataFrame, column: str, dtype: str, nullable: bool, rejects: _Rejects) -> None:
    values = pd.to_numeric(frame[column], errors="coerce")
    info = np.iinfo(dtype.lower())
    present = _present(frame[column])
    finite = np.isfinite(values.to_numpy(dtype=np.float64, na_value=np.nan))
    with np.errstate(invalid="ignore"):
        integral = finite & (np.mod(values.to_numpy(dtype=np.float64, na_value=np.nan), 1.0) == 0.0)
        in_range = integral & (values.to_numpy(dtype=np.float64, na_value=np.nan) >= info.min) & \
            (values.to_numpy(dtype=np.float64, na_value=np.nan) <= info.max)
    rejects.add(present & ~in_range, column, f"an integer in [{info.min}, {info.max}]")
    if not nullable:
        rejects.add_missing(~present, column, f"an integer in [{info.min}, {info.max}]")
    frame[column] = values.where(pd.Series(in_range, index=frame.index)).astype(dtype if nullable else "Float64")


def _parse_float(frame: pd.DataFrame, column: str, rejects: _Rejects) -> None:
    values = pd.to_numeric(frame[column], errors="coerce")
    rejects.add(_present(frame[column]) & values.isna().to_numpy(), column, "a number")
    frame[column] = values.astype("float64")


def _parse_timestamp(frame: pd.DataFrame, column: str, rejects: _Rejects) -> None:
    # ISO 8601 with any offset is converted to UTC; a value without an offset is read as UTC.
    values = pd.to_datetime(frame[column], utc=True, format="ISO8601", errors="coerce")
    rejects.add(_present(frame[column]) & values.isna().to_numpy(), column, "an ISO 8601 timestamp")
    frame[column] = values


def _parse_date(frame: pd.DataFrame, column: str, rejects: _Rejects) -> None:
    values = pd.to_datetime(frame[column], utc=True, format="ISO8601", errors="coerce")
    rejects.add(_present(frame[column]) & values.isna().to_numpy(), column, "a YYYY-MM-DD date")
    frame[column] = values.dt.tz_localize(None).dt.normalize()


def _candidate_list(value: Any) -> list[str] | None:
    """A logged candidate list: JSON text (CSV) or a list/array (Parquet) of id strings; None if not one."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return None
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    return None


def _parse_candidates(frame: pd.DataFrame, rejects: _Rejects) -> None:
    present = np.array([v is not None and not (np.isscalar(v) and pd.isna(v)) for v in frame["candidates"]],
                       dtype=bool)
    parsed = [(_candidate_list(v) if keep else None) for v, keep in zip(frame["candidates"], present)]
    rejects.add(present & np.array([p is None for p in parsed], dtype=bool), "candidates",
                'a JSON list of item id strings (e.g. ["men/1", "men/5"])')
    frame["candidates"] = pd.Series(parsed, index=frame.index, dtype="object")


def _infer_numeric(frame: pd.DataFrame, column: str) -> None:
    """A CSV column of the open families (ctx_*, extras) is numeric when every given value is a number."""
    if frame[column].dtype.kind in "fiub":
        return
    values = pd.to_numeric(frame[column], errors="coerce")
    if not (frame[column].notna().to_numpy() & values.isna().to_numpy()).any() and frame[column].notna().any():
        frame[column] = values.astype("float64")
    else:
        frame[column] = frame[column].astype("string")


def _parse_logs(frame: pd.DataFrame, lines: np.ndarray, path: Path, rejects: list[dict[str, Any]]) -> pd.DataFrame:
    missing = [c for c in LOG_REQUIRED if c not in frame.columns]
    if missing:
        raise ValueError(f"{path}: missing required column(s) {missing} (rows 0..{len(frame) - 1})")
    frame = frame.copy()
    bad = _Rejects(frame.copy(), path, lines)
    parsers: dict[str, Callable[[], None]] = {"ts": lambda: _parse_timestamp(frame, "ts", bad)}
    for column, (dtype, nullable) in LOG_INTEGER_COLUMNS.items():
        parsers[column] = lambda c=column, d=dtype, n=nullable: _parse_integer(frame, c, d, n, bad)
    for column in LOG_FLOAT_COLUMNS:
        parsers[column] = lambda c=column: _parse_float(frame, c, bad)
    parsers["candidates"] = lambda: _parse_candidates(frame, bad)
    for column in frame.columns:
        if column in parsers:
            parsers[column]()
        elif column in LOG_STRING_COLUMNS:
            frame[column] = frame[column].astype("string")
        elif path.suffix == ".csv":  # Parquet columns keep the type the exporter gave them
            _infer_numeric(frame, column)
    rejected = bad.rows()
    rejects.extend(bad.records())
    kept = frame.drop(index=frame.index[rejected])
    for column, (dtype, nullable) in LOG_INTEGER_COLUMNS.items():
        if column in kept.columns and not nullable:
            kept[column] = kept[column].astype(dtype)
    try:
        return coerce_logs(kept.reset_index(drop=True))
    except (ValueError, TypeError) as err:
        raise ValueError(f"{path}: {err}") from err


def _parse_catalog(frame: pd.DataFrame, lines: np.ndarray, path: Path,
                   rejects: list[dict[str, Any]]) -> tuple[pd.DataFrame, np.ndarray]:
    missing = [c for c in CATALOG_REQUIRED if c not in frame.columns]
    if missing:
        raise ValueError(f"{path}: missing required column(s) {missing}")
    frame = frame.copy()
    bad = _Rejects(frame.copy(), path, lines)
    for column in frame.columns:
        if column == "first_seen":
            _parse_date(frame, column, bad)
        elif column in CATALOG_STRING_COLUMNS or column.startswith(CATEGORY_PREFIX):
            frame[column] = frame[column].astype("string")
        elif column.startswith(NUMERIC_PREFIX):
            _parse_float(frame, column, bad)
        elif path.suffix == ".csv":
            _infer_numeric(frame, column)
    rejected = bad.rows()
    rejects.extend(bad.records())
    keep = np.ones(len(frame), dtype=bool)
    keep[rejected] = False
    return frame[keep].reset_index(drop=True), lines[keep]


def _drop_conflicting_items(catalog: pd.DataFrame, lines: list[tuple[str, int]],
                            rejects: list[dict[str, Any]]) -> pd.DataFrame:
    """Identical repeats of an item collapse to one row; repeats that disagree are all rejected
    (which attributes are right cannot be told, and each model would see another item)."""
    catalog = catalog.reset_index(drop=True)
    exact = catalog.astype("string").duplicated(keep="first").to_numpy()
    catalog, lines = catalog[~exact].reset_index(drop=True), [ln for ln, e in zip(lines, exact) if not e]
    repeated = catalog["item_id"].duplicated(keep=False).to_numpy() & catalog["item_id"].notna().to_numpy()
    items = catalog["item_id"].to_numpy(dtype=object)
    for row in np.flatnonzero(repeated):
        item = items[row]
        where = [f"{Path(f).name} line {n}" for (f, n), other in zip(lines, items) if other == item]
        file, line = lines[row]
        rejects.append({"file": file, "line": line, "text": f"item_id={item}",
                        "reason": f"column item_id: {item!r} is listed {len(where)} times with different "
                                  f"attributes ({', '.join(where)})"})
    return catalog[~repeated].reset_index(drop=True)


def read_canonical(directory: Path) -> CanonicalSource:
    """Every logs*/catalog* file of ``directory`` → :class:`CanonicalSource`.

    Raises FileNotFoundError when there is no logs or no catalogue file, and ValueError
    naming the file when one cannot be read as a table or lacks a required column.
    """
    directory = Path(directory)
    log_files, catalog_files = _files(directory, "logs"), _files(directory, "catalog")
    if not log_files:
        raise FileNotFoundError(f"{directory}: no logs*.parquet or logs*.csv files")
    if not catalog_files:
        raise FileNotFoundError(f"{directory}: no catalog*.parquet or catalog*.csv files")
    rejects: list[dict[str, Any]] = []
    logs = pd.concat([_parse_logs(*_read_table(path), path, rejects) for path in log_files], ignore_index=True)
    frames, catalog_lines = [], []
    for path in catalog_files:
        frame, lines = _parse_catalog(*_read_table(path), path, rejects)
        frames.append(frame)
        catalog_lines += [(str(path), int(n)) for n in lines]
    catalog = _drop_conflicting_items(pd.concat(frames, ignore_index=True), catalog_lines, rejects)
    reject_frame = pd.DataFrame(rejects, columns=REJECT_COLUMNS).astype(
        {"file": "string", "line": "int64", "reason": "string", "text": "string"})
    return CanonicalSource(logs=logs, catalog=catalog, rejects=reject_frame)
