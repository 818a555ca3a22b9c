"""Layout of the served-log spool (DESIGN.md, "Serving") shared by the service and collect.

    <spool>/<YYYY-MM-DD UTC>/impressions-<pid>.jsonl   one JSON object per served slate
    <spool>/<YYYY-MM-DD UTC>/feedback-<pid>.jsonl      one JSON object per feedback event
    <spool>/<YYYY-MM-DD UTC>/catalog.parquet           the Bento's catalogue snapshot

The service appends (one file per worker process, so writers never interleave);
collect copies a closed day into ``data/served/<day>/`` and merges the snapshot into
the cumulative catalogue ``data/served/catalog.parquet``.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

IMPRESSIONS_GLOB = "impressions-*.jsonl"
FEEDBACK_GLOB = "feedback-*.jsonl"
CATALOG_SNAPSHOT = "catalog.parquet"
CUMULATIVE_CATALOG = "catalog.parquet"  # under data/served/


def parse_day(text: str) -> dt.date:
    """'YYYY-MM-DD' → date; anything else is a ValueError naming the expected form."""
    try:
        return dt.date.fromisoformat(text)
    except (TypeError, ValueError):
        raise ValueError(f"day {text!r}: expected a date as YYYY-MM-DD") from None


def day_dir(spool: Path, day: dt.date) -> Path:
    return spool / day.isoformat()


def day_of(timestamp: dt.datetime) -> dt.date:
    """The UTC day a timestamp belongs to (the spool is partitioned by UTC day)."""
    if timestamp.tzinfo is None:
        raise ValueError(f"timestamp {timestamp!r} has no time zone; spool days are UTC")
    return timestamp.astimezone(dt.timezone.utc).date()


def day_closed_at(day: dt.date, attribution_window: dt.timedelta) -> dt.datetime:
    """When a day is closed: its end (next midnight UTC) plus the attribution window,
    so late feedback on the day's last impressions still lands in the day's folder."""
    end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), tzinfo=dt.timezone.utc)
    return end + attribution_window


def is_closed(day: dt.date, now: dt.datetime, attribution_window: dt.timedelta) -> bool:
    return now >= day_closed_at(day, attribution_window)
