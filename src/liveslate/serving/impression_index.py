"""Which impressions exist, so /feedback can answer 404 for an unknown one.

The spool itself is the truth: every impression line of an open day (any worker, any
earlier run of the service) is an impression feedback may refer to. The index keeps the
impressions of open days in memory; a lookup that misses reads the bytes appended to that
day's impression files since the last read (other workers' impressions, or the spool left
by a previous run after a restart) before it answers "unknown". Only complete lines are
read: a line another process is writing right now is picked up by a later lookup.
Days that are closed (their end + the attribution window has passed) are dropped.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from liveslate.loop.spool import IMPRESSIONS_GLOB, day_dir
from liveslate.serving.records import impression_day, parse_ts


@dataclass(frozen=True)
class ShownImpression:
    """What feedback needs to know of an impression: its day, time and slate (item ids by position)."""

    impression_id: str
    day: dt.date
    ts: dt.datetime
    items: tuple[str, ...]


class ImpressionIndex:
    """impression id → ShownImpression for the open days of ``spool``; thread-safe.

    is_open(day): whether feedback may still be recorded for that day.
    """

    def __init__(self, spool: Path, is_open: Callable[[dt.date], bool]) -> None:
        self.spool = Path(spool)
        self.is_open = is_open
        self._lock = threading.Lock()
        self._shown: dict[str, ShownImpression] = {}
        self._offsets: dict[Path, int] = {}

    def __len__(self) -> int:
        return len(self._shown)

    def add(self, shown: ShownImpression) -> None:
        """Record an impression this process has just written (its line is already on disk)."""
        with self._lock:
            self._shown[shown.impression_id] = shown

    def lookup(self, impression_id: str) -> ShownImpression | None:
        """The impression, reading the spool's new lines of its day on a miss; None when unknown."""
        with self._lock:
            day = impression_day(impression_id)
            if day is None or not self.is_open(day):
                self._evict_closed()
                return None
            found = self._shown.get(impression_id)
            if found is not None:
                return found
            self._read_day(day)
            return self._shown.get(impression_id)

    def load(self, days: list[dt.date]) -> int:
        """Read every impression of ``days`` (start-up after a restart); returns the impressions known."""
        with self._lock:
            for day in days:
                if self.is_open(day):
                    self._read_day(day)
            self._evict_closed()
            return len(self._shown)

    # ------------------------------------------------------------------ internals (lock held)
    def _read_day(self, day: dt.date) -> None:
        for path in sorted(day_dir(self.spool, day).glob(IMPRESSIONS_GLOB)):
            start = self._offsets.get(path, 0)
            with open(path, "rb") as handle:
                handle.seek(start)
                chunk = handle.read()
            end = chunk.rfind(b"\n")
            if end < 0:
                continue
            for line in chunk[: end + 1].splitlines():
                shown = _shown_from_line(line, day)
                if shown is not None:
                    self._shown[shown.impression_id] = shown
            self._offsets[path] = start + end + 1
        self._evict_closed()

    def _evict_closed(self) -> None:
        closed = {shown.day for shown in self._shown.values() if not self.is_open(shown.day)}
        if closed:
            self._shown = {key: value for key, value in self._shown.items() if value.day not in closed}
            self._offsets = {path: offset for path, offset in self._offsets.items()
                             if not any(path.parent.name == day.isoformat() for day in closed)}


def _shown_from_line(line: bytes, day: dt.date) -> ShownImpression | None:
    """The id, time and slate of an impression line; None for a malformed line (ingest rejects it)."""
    try:
        payload = json.loads(line)
        items = tuple(str(entry["item_id"]) for entry in payload["slate"])
        impression_id = str(payload["impression_id"])
        ts = parse_ts(payload["ts"], "ts")
    except (ValueError, KeyError, TypeError):
        return None
    if impression_day(impression_id) != day:
        return None
    return ShownImpression(impression_id=impression_id, day=day, ts=ts, items=items)
