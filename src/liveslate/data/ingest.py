"""The ingest stage's logic: every configured source → one canonical log table + catalogue."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from liveslate.config import IngestConfig
from liveslate.data.canonical import read_canonical_catalog, read_canonical_logs
from liveslate.data.obd import ingest_obd
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


def ingest(config: IngestConfig, data_dir: Path, root: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Read every source listed in ``config.sources``: OBD under ``data_dir/obd``, other paths relative to ``root``."""
    logs, catalogs = [], []
    for source in config.sources:
        if source == "obd":
            frame, catalog = ingest_obd(data_dir / "obd", config.obd.campaigns, config.obd.policies,
                                        config.obd.max_rows_per_file)
        elif source == "canonical":
            directory = root / config.canonical.directory
            frame, catalog = read_canonical_logs(directory), read_canonical_catalog(directory)
        else:  # the config's Literal type makes this unreachable for parsed params
            raise ValueError(f"ingest.sources: unknown source {source!r}")
        logs.append(frame)
        catalogs.append(catalog)
    combined = pd.concat([coerce_logs(f) for f in logs], ignore_index=True)
    ctx = [c for c in combined.columns if c.startswith("ctx_")]
    for column in ctx:  # a ctx column absent from one source is null there
        if combined[column].dtype == object:
            combined[column] = combined[column].astype("string")
    return combined.sort_values(["ts", "impression_id", "position"], kind="mergesort").reset_index(drop=True), merge_catalogs(catalogs)
