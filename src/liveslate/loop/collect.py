"""Collect: copy one closed day of served logs from the spool into ``data/served/<day>/``.

Idempotent per day: a day already collected with the same content is left alone
(same data hash on a re-run); a day already collected with *different* content is an
error, because collected days are never changed after. The copy is made in a
temporary folder beside the target and renamed into place, so a collect killed
half-way leaves nothing behind and succeeds on retry.
"""

from __future__ import annotations

import datetime as dt
import filecmp
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from liveslate.io import write_parquet
from liveslate.loop.spool import (CATALOG_SNAPSHOT, CUMULATIVE_CATALOG, FEEDBACK_GLOB, IMPRESSIONS_GLOB,
                                  day_closed_at, day_dir, is_closed)


class CollectError(RuntimeError):
    """A day that cannot be collected (not closed, missing, empty, or changed)."""


@dataclass(frozen=True)
class CollectResult:
    day: dt.date
    target: Path
    impressions: int  # impression lines copied
    feedback: int  # feedback lines copied
    already_collected: bool


def _count_lines(paths: list[Path]) -> int:
    return sum(sum(1 for line in p.open("rb") if line.strip()) for p in paths)


def _same_tree(left: Path, right: Path) -> bool:
    left_files = sorted(p.relative_to(left) for p in left.rglob("*") if p.is_file())
    right_files = sorted(p.relative_to(right) for p in right.rglob("*") if p.is_file())
    if left_files != right_files:
        return False
    return all(filecmp.cmp(left / rel, right / rel, shallow=False) for rel in left_files)


def merge_catalog_snapshot(cumulative_path: Path, snapshot_path: Path) -> int:
    """Merge a day's catalogue snapshot into the cumulative catalogue; return items added.

    An item keeps its earliest ``first_seen`` (so the stable item index never shifts);
    new items are appended.
    """
    snapshot = pd.read_parquet(snapshot_path)
    if cumulative_path.exists():
        cumulative = pd.read_parquet(cumulative_path)
        known = set(cumulative["item_id"].astype(str))
        merged = pd.concat([cumulative, snapshot], ignore_index=True)
    else:
        known, merged = set(), snapshot
    merged = merged.sort_values(["first_seen", "item_id"], kind="mergesort").drop_duplicates("item_id", keep="first")
    added = len(set(snapshot["item_id"].astype(str)) - known)
    if added or not cumulative_path.exists():
        write_parquet(cumulative_path, merged.reset_index(drop=True))
    return added


def collect_day(spool: Path, served_dir: Path, day: dt.date, now: dt.datetime,
                attribution_window: dt.timedelta) -> CollectResult:
    """Copy ``<spool>/<day>/`` to ``<served_dir>/<day>/`` once the day is closed."""
    if not is_closed(day, now, attribution_window):
        raise CollectError(f"day {day}: not closed until {day_closed_at(day, attribution_window).isoformat()} "
                           f"(day end + attribution window); now is {now.isoformat()}")
    source = day_dir(spool, day)
    if not source.is_dir():
        raise CollectError(f"{source}: no spool folder for day {day}; the service served nothing that day "
                           f"or writes to another spool")
    impressions = sorted(source.glob(IMPRESSIONS_GLOB))
    feedback = sorted(source.glob(FEEDBACK_GLOB))
    n_impressions = _count_lines(impressions)
    if n_impressions == 0:
        raise CollectError(f"{source}: no impression lines in {IMPRESSIONS_GLOB}; refusing to collect an empty day")
    target = served_dir / day.isoformat()
    if target.exists():
        if not _same_tree(source, target):
            raise CollectError(f"{target}: already collected with different content; collected days are "
                               f"never changed (remove it by hand only if the spool is the truth)")
        already = True
    else:
        served_dir.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{day.isoformat()}.", dir=served_dir))
        try:
            shutil.copytree(source, staging, dirs_exist_ok=True)
            staging.rename(target)
        finally:
            if staging.exists():
                shutil.rmtree(staging)
        already = False
    snapshot = target / CATALOG_SNAPSHOT
    if snapshot.exists():
        merge_catalog_snapshot(served_dir / CUMULATIVE_CATALOG, snapshot)
    return CollectResult(day=day, target=target, impressions=n_impressions,
                         feedback=_count_lines(feedback), already_collected=already)
