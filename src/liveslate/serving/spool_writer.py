"""Durable appends to the served-log spool (layout: liveslate.loop.spool).

Each worker process appends to its own files (``impressions-<pid>.jsonl`` and
``feedback-<pid>.jsonl`` in the UTC day's folder), so processes never interleave. Threads
of one process share a lock per file. A write batch (one request's lines) is written,
flushed and fsynced before ``append`` returns, so a response is only sent for lines that
are on disk: a crash loses no answered impression, and each line is written once.

A process killed in the middle of a write can leave a partial last line. Before appending
to a file that does not end with a newline, the writer ends that line, so the partial
line stays an isolated malformed line (ingest rejects it with its reason) instead of
corrupting the next record.

The first write to a day folder also merges the Bento's catalogue snapshot into
``<day>/catalog.parquet`` (under a file lock shared by the processes), which collect
merges into the cumulative catalogue.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import os
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Literal

import pandas as pd

from liveslate.loop.spool import CATALOG_SNAPSHOT, day_dir

Kind = Literal["impressions", "feedback"]
# Lock file of the catalogue merges: in the spool root, outside the day folders that collect copies.
CATALOG_LOCK = ".catalog.lock"


class SpoolWriter:
    """Appends JSON lines to ``<spool>/<day>/<kind>-<pid>.jsonl``; thread-safe within a process.

    catalog: the Bento's catalogue snapshot written into each day folder it writes to
    (None in tools that only append).
    """

    def __init__(self, spool: Path, catalog: pd.DataFrame | None = None) -> None:
        self.spool = Path(spool)
        self.catalog = catalog
        self._guard = threading.Lock()
        self._pid = os.getpid()
        self._locks: dict[Path, threading.Lock] = {}
        self._handles: dict[Path, IO[bytes]] = {}
        self._days_with_snapshot: set[dt.date] = set()

    def path(self, kind: Kind, day: dt.date) -> Path:
        return day_dir(self.spool, day) / f"{kind}-{os.getpid()}.jsonl"

    def append(self, kind: Kind, day: dt.date, lines: Sequence[str]) -> Path:
        """Write ``lines`` (JSON texts without newlines) as one batch: write, flush, fsync. Returns the file."""
        if not lines:
            raise ValueError("append: empty batch")
        if any("\n" in line for line in lines):
            raise ValueError("append: a JSON line must not contain a newline")
        self._reset_after_fork()
        if day not in self._days_with_snapshot:
            self._ensure_snapshot(day)
        path = self.path(kind, day)
        with self._lock_for(path):
            handle = self._handle(path)
            handle.write("".join(f"{line}\n" for line in lines).encode("utf-8"))
            handle.flush()
            os.fsync(handle.fileno())
        return path

    def close(self) -> None:
        with self._guard:
            for handle in self._handles.values():
                handle.close()
            self._handles.clear()

    # ------------------------------------------------------------------ internals
    def _reset_after_fork(self) -> None:
        """A forked child must not share its parent's handles (its files carry its own pid)."""
        if os.getpid() != self._pid:
            with self._guard:
                if os.getpid() != self._pid:
                    self._handles = {}
                    self._locks = {}
                    self._pid = os.getpid()

    def _lock_for(self, path: Path) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(path, threading.Lock())

    def _handle(self, path: Path) -> IO[bytes]:
        """The open append handle of ``path`` (caller holds its lock); a new day closes older days' files."""
        handle = self._handles.get(path)
        if handle is not None:
            return handle
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(path, "ab")
        if handle.tell() > 0:
            with open(path, "rb") as reader:
                reader.seek(-1, os.SEEK_END)
                if reader.read(1) != b"\n":
                    # End the partial line a killed writer left, so the next record starts clean.
                    handle.write(b"\n")
        with self._guard:
            # Close files of earlier days, but never one another thread is writing: its lock is
            # only tried (the caller holds its own file's lock, so blocking here could deadlock).
            for old in [p for p in self._handles if p.parent.name < path.parent.name]:
                lock = self._locks.get(old)
                if lock is not None and lock.acquire(blocking=False):
                    try:
                        self._handles.pop(old).close()
                    finally:
                        lock.release()
            self._handles[path] = handle
        return handle

    def _ensure_snapshot(self, day: dt.date) -> None:
        if self.catalog is None:
            with self._guard:
                self._days_with_snapshot.add(day)
            return
        folder = day_dir(self.spool, day)
        folder.mkdir(parents=True, exist_ok=True)
        with open(self.spool / CATALOG_LOCK, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                merge_snapshot(folder / CATALOG_SNAPSHOT, self.catalog)
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)
        with self._guard:
            self._days_with_snapshot.add(day)


def merge_snapshot(target: Path, catalog: pd.DataFrame) -> bool:
    """Union ``catalog`` into the snapshot at ``target`` (earliest first_seen wins); True when it changed.

    Two Bentos serving the same day (a deployment or a rollback at noon) both leave their
    items in the day's snapshot. Written atomically (temporary file, fsync, rename).
    """
    if target.exists():
        existing = pd.read_parquet(target)
        new_items = set(catalog["item_id"].astype(str)) - set(existing["item_id"].astype(str))
        if not new_items:
            return False
        merged = pd.concat([existing, catalog], ignore_index=True)
    else:
        merged = catalog
    merged = (merged.sort_values(["first_seen", "item_id"], kind="mergesort")
              .drop_duplicates("item_id", keep="first").reset_index(drop=True))
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    try:
        merged.to_parquet(tmp, index=False)
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return True
