"""The ingest stage's logic: every configured source → one canonical log table + catalogue."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from liveslate.config import IngestConfig
from liveslate.data.canonical import CanonicalSource, read_canonical
from liveslate.data.obd import ingest_obd
from liveslate.data.served import PARTITION_COLUMN, ServedLogs, read_served
from liveslate.schema import coerce_logs


def merge_catalogs(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """Union of catalogues: one row per item, earliest ``first_seen`` wins.

    An item listed by two sources under different rooms is an error (the room defines
    the candidate set, so the item would be ambiguous).
    """
    catalog = pd.concat(frames, ignore_index=True)
    rooms = catalog.groupby("item_id")["room_id"].nunique()
    if (rooms > 1).any():
        bad = rooms[rooms > 1].index.tolist()[:5]
        raise ValueError(f"catalogue: item(s) {bad} are listed in more than one room")
    catalog = catalog.sort_values(["first_seen", "item_id"], kind="mergesort")
    return catalog.drop_duplicates("item_id", keep="first").reset_index(drop=True)


@dataclass(frozen=True, eq=False)
class IngestResult:
    """Canonical logs and catalogue of every source; ``served`` / ``canonical``: what those sources
    read, with their rejected lines and rows (None when the source is not configured)."""

    logs: pd.DataFrame
    catalog: pd.DataFrame
    served: ServedLogs | None = None
    canonical: CanonicalSource | None = None


def read_sources(config: IngestConfig, data_dir: Path, root: Path, interval_end: dt.date | None = None,
                 attribution_window: dt.timedelta = dt.timedelta(minutes=30)) -> IngestResult:
    """Read every source listed in ``config.sources``: OBD under ``data_dir/obd``, served logs under
    ``data_dir/served`` (the window ending at ``interval_end``), other paths relative to ``root``."""
    logs, catalogs = [], []
    served = canonical = None
    for source in config.sources:
        if source == "obd":
            frame, catalog = ingest_obd(data_dir / "obd", config.obd.campaigns, config.obd.policies,
                                        config.obd.max_rows_per_file)
        elif source == "canonical":
            canonical = read_canonical(root / config.canonical.directory)
            frame, catalog = canonical.logs, canonical.catalog
        elif source == "served":
            served = read_served(data_dir / "served", config.served.window_days, interval_end, attribution_window)
            frame, catalog = served.logs, served.catalog
        else:  # the config's Literal type makes this unreachable for parsed params
            raise ValueError(f"ingest.sources: unknown source {source!r}")
        if not frame.empty or not logs:
            logs.append(frame)
        catalogs.append(catalog)
    combined = pd.concat([coerce_logs(f) for f in logs], ignore_index=True)
    ctx = [c for c in combined.columns if c.startswith("ctx_")]
    for column in ctx:  # a ctx column absent from one source is null there
        if combined[column].dtype == object:
            combined[column] = combined[column].astype("string")
    if PARTITION_COLUMN in combined.columns:  # null for the sources that are not partitioned by day
        combined[PARTITION_COLUMN] = combined[PARTITION_COLUMN].astype("string")
    combined = combined.sort_values(["ts", "impression_id", "position"], kind="mergesort").reset_index(drop=True)
    return IngestResult(logs=combined, catalog=merge_catalogs(catalogs), served=served, canonical=canonical)


def ingest(config: IngestConfig, data_dir: Path, root: Path, interval_end: dt.date | None = None,
           attribution_window: dt.timedelta = dt.timedelta(minutes=30)) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(logs, catalogue) of every source listed in ``config.sources`` (see :func:`read_sources`)."""
    result = read_sources(config, data_dir, root, interval_end, attribution_window)
    return result.logs, result.catalog
