"""The `served` ingest source: the service's JSON-lines logs of closed days → canonical rows.

Reads ``data/served/<YYYY-MM-DD>/`` (copied there by `liveslate collect`) for the
``ingest.served.window_days`` UTC days ending at ``run.interval_end`` (run.yaml, written by
the daily DAG; null = the newest collected day), and the cumulative catalogue
``data/served/catalog.parquet``.

One canonical row per (impression, position) of every impression line:
- ``propensity`` / ``slate_probability``: what the service logged (``Policy.action_dist`` at
  the shown position under the served exploration, and the whole slate's probability);
- ``click`` / ``reward``: from the feedback events on that (impression, item) that arrived
  within the attribution window after the impression (max over events); 0 without one;
  later events are dropped and counted;
- ``candidates``: the scored candidate ids, on the position-0 row only;
- ``session_id`` / ``step``: as the request carried them (null otherwise);
- ``ctx_*``: the request's context (numeric columns as float64, others as strings);
- ``partition_date``: the day folder, so validate checks that ``ts`` lies in that UTC day.

Lines that cannot be used (malformed JSON, a missing field, a duplicated impression id,
feedback on an unknown impression or on an item outside its slate) are kept as rejects
with their file, line number and reason.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from liveslate.loop.spool import CUMULATIVE_CATALOG, FEEDBACK_GLOB, IMPRESSIONS_GLOB
from liveslate.schema import CATALOG_REQUIRED, LOG_DTYPES, coerce_logs
from liveslate.serving.records import FeedbackRecord, ImpressionRecord, parse_feedback, parse_impression

PARTITION_COLUMN = "partition_date"
REJECT_COLUMNS = ["file", "line", "reason", "text"]


@dataclass(frozen=True, eq=False)
class ServedLogs:
    """What the served source read.

    logs: canonical rows (schema.LOG_DTYPES + ctx_* + partition_date); catalog: the
    cumulative served catalogue; rejects: unusable lines (file, line, reason, text);
    counts: impressions, feedback events used / late / rejected, days read.
    """

    logs: pd.DataFrame
    catalog: pd.DataFrame
    rejects: pd.DataFrame
    counts: dict[str, Any] = field(default_factory=dict)


def read_interval_end(path: Path) -> dt.date | None:
    """``run.interval_end`` of run.yaml (None when the file is absent or the value is null)."""
    if not path.exists():
        return None
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ValueError(f"{path}: not valid YAML: {err}") from err
    run = raw.get("run") if isinstance(raw, dict) else None
    if not isinstance(run, dict) or "interval_end" not in run:
        raise ValueError(f"{path}: expected a mapping run: {{interval_end: YYYY-MM-DD or null}}")
    value = run["interval_end"]
    if value is None:
        return None
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value))
    except ValueError:
        raise ValueError(f"{path}: run.interval_end: expected YYYY-MM-DD or null, got {value!r}") from None


def collected_days(served_dir: Path) -> list[dt.date]:
    """Every day folder under ``served_dir`` (names that are not a YYYY-MM-DD day are ignored)."""
    days = []
    for path in served_dir.glob("*") if served_dir.is_dir() else []:
        if path.is_dir() and len(path.name) == 10:
            try:
                days.append(dt.date.fromisoformat(path.name))
            except ValueError:
                continue
    return sorted(days)


def window(served_dir: Path, window_days: int, interval_end: dt.date | None) -> list[dt.date]:
    """The collected days among the ``window_days`` days ending at ``interval_end`` (or the newest day)."""
    days = collected_days(served_dir)
    if not days:
        return []
    end = interval_end or days[-1]
    start = end - dt.timedelta(days=window_days - 1)
    return [day for day in days if start <= day <= end]


def _read_lines(paths: list[Path], parse: Any, rejects: list[dict[str, Any]]) -> list[tuple[Path, int, Any]]:
    parsed = []
    for path in paths:
        with open(path, "rb") as handle:
            for number, raw in enumerate(handle, start=1):
                if not raw.strip():
                    continue
                try:
                    parsed.append((path, number, parse(raw)))
                except ValueError as err:
                    rejects.append({"file": str(path), "line": number, "reason": str(err),
                                    "text": raw[:500].decode("utf-8", "replace")})
    return parsed


def _context_frame(contexts: list[dict[str, Any]], repeats: np.ndarray) -> dict[str, pd.Series]:
    """ctx_* columns, one value per impression repeated per position: float64 when every value is numeric."""
    keys = sorted({key for context in contexts for key in context})
    columns = {}
    for key in keys:
        values = [context.get(key) for context in contexts]
        present = [v for v in values if v is not None]
        if present and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in present):
            series = pd.Series([np.nan if v is None else float(v) for v in values], dtype="float64")
        else:
            series = pd.Series([None if v is None else str(v) for v in values], dtype="string")
        columns[key] = series.repeat(repeats).reset_index(drop=True)
    return columns


def read_day(day_dir: Path, attribution_window: dt.timedelta,
             rejects: list[dict[str, Any]]) -> tuple[pd.DataFrame, dict[str, int]]:
    """Canonical rows of one day folder (rejects appended to ``rejects``) and its counts."""
    impressions = _read_lines(sorted(day_dir.glob(IMPRESSIONS_GLOB)), parse_impression, rejects)
    feedback = _read_lines(sorted(day_dir.glob(FEEDBACK_GLOB)), parse_feedback, rejects)
    counts = {"impressions": 0, "feedback_used": 0, "feedback_late": 0, "feedback_rejected": 0}
    records: dict[str, ImpressionRecord] = {}
    for path, number, record in impressions:
        if record.impression_id in records:
            rejects.append({"file": str(path), "line": number, "reason": "impression_id: duplicate of an earlier line",
                            "text": record.impression_id})
            continue
        records[record.impression_id] = record
    outcome: dict[tuple[str, str], tuple[int, float]] = {}
    for path, number, event in feedback:
        event: FeedbackRecord
        record = records.get(event.impression_id)
        reason = None
        if record is None:
            reason = f"impression_id: {event.impression_id!r} is not an impression of {day_dir.name}"
        elif event.item_id not in record.items:
            reason = f"item_id: {event.item_id!r} is not in the slate of impression {event.impression_id}"
        if reason is not None:
            counts["feedback_rejected"] += 1
            rejects.append({"file": str(path), "line": number, "reason": reason, "text": event.impression_id})
            continue
        if event.ts - record.ts > attribution_window:
            counts["feedback_late"] += 1
            continue
        counts["feedback_used"] += 1
        key = (event.impression_id, event.item_id)
        click, reward = outcome.get(key, (0, 0.0))
        outcome[key] = (max(click, event.click), max(reward, event.reward))
    counts["impressions"] = len(records)
    if not records:
        return pd.DataFrame(), counts

    ordered = list(records.values())
    k = np.array([len(r.slate) for r in ordered])
    entries = [(r, entry) for r in ordered for entry in r.slate]
    results = [outcome.get((r.impression_id, e.item_id), (0, 0.0)) for r, e in entries]
    frame = pd.DataFrame({
        "impression_id": [r.impression_id for r, _ in entries],
        "session_id": pd.array([r.session_id for r, _ in entries], dtype="string"),
        "step": pd.array([r.step for r, _ in entries], dtype="Int32"),
        "ts": pd.to_datetime([r.ts for r, _ in entries], utc=True),
        "room_id": [r.room_id for r, _ in entries],
        "item_id": [e.item_id for _, e in entries],
        "position": [e.position for _, e in entries],
        "click": [c for c, _ in results],
        "reward": [w for _, w in results],
        "propensity": [e.propensity for _, e in entries],
        "policy": [r.policy for r, _ in entries],
        "slate_probability": [r.slate_probability for r, _ in entries],
        "candidates": [list(r.candidates) if e.position == 0 else None for r, e in entries],
        PARTITION_COLUMN: pd.array([day_dir.name] * len(entries), dtype="string"),
        **_context_frame([r.context for r in ordered], k),
    })
    return frame, counts


def read_catalog(served_dir: Path) -> pd.DataFrame:
    """The cumulative served catalogue (canonical dtypes); empty with the required columns when absent."""
    path = served_dir / CUMULATIVE_CATALOG
    if not path.exists():
        return pd.DataFrame({"item_id": pd.Series(dtype="string"), "room_id": pd.Series(dtype="string"),
                             "first_seen": pd.Series(dtype="datetime64[ns]")})
    catalog = pd.read_parquet(path)
    missing = [c for c in CATALOG_REQUIRED if c not in catalog.columns]
    if missing:
        raise ValueError(f"{path}: missing required column(s) {missing}")
    catalog = catalog.copy()
    catalog["item_id"] = catalog["item_id"].astype("string")
    catalog["room_id"] = catalog["room_id"].astype("string")
    catalog["first_seen"] = pd.to_datetime(catalog["first_seen"]).dt.tz_localize(None).dt.normalize()
    return catalog


def read_served(served_dir: Path, window_days: int, interval_end: dt.date | None,
                attribution_window: dt.timedelta) -> ServedLogs:
    """Every closed day of the window under ``served_dir`` → :class:`ServedLogs`."""
    days = window(served_dir, window_days, interval_end)
    rejects: list[dict[str, Any]] = []
    frames, totals = [], {"impressions": 0, "feedback_used": 0, "feedback_late": 0, "feedback_rejected": 0}
    for day in days:
        frame, counts = read_day(served_dir / day.isoformat(), attribution_window, rejects)
        if not frame.empty:
            frames.append(frame)
        for key, value in counts.items():
            totals[key] += value
    if frames:
        logs = coerce_logs(pd.concat(frames, ignore_index=True))
    else:
        logs = coerce_logs(pd.DataFrame({column: pd.Series(dtype=dtype if dtype != "object" else "object")
                                         for column, dtype in LOG_DTYPES.items()}))
        logs[PARTITION_COLUMN] = pd.Series(dtype="string")
    reject_frame = pd.DataFrame(rejects, columns=REJECT_COLUMNS).astype({"file": "string", "reason": "string",
                                                                         "text": "string"})
    totals.update({"days": [day.isoformat() for day in days], "rows": int(len(logs)),
                   "lines_rejected": int(len(reject_frame))})
    return ServedLogs(logs=logs, catalog=read_catalog(served_dir), rejects=reject_frame, counts=totals)
