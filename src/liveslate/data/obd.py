"""Open Bandit Dataset sample → canonical logs and catalogue.

Facts this relies on (checked on the files, see DESIGN.md):
- item ids are local to a campaign, so they are namespaced by room: ``men/5``;
- each row is one item at one 1-based position; there are no slate or user ids,
  so every row is its own impression;
- the ``random`` and ``bts`` copies of a campaign's item_context.csv agree on
  ``item_feature_0`` but hash the categorical features differently: we build one
  shared encoding (the ``random`` copy's hashes) after checking that the two copies
  induce the same partition of items;
- the ``user-item_affinity_*`` columns are not context: their number differs per
  campaign (one per item), they are almost all zero, and they describe a user-item
  pair rather than the viewer, so they stay out of ``ctx_*``.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

USER_FEATURES = [f"user_feature_{i}" for i in range(4)]
CATEGORICAL_ITEM_FEATURES = ["item_feature_1", "item_feature_2", "item_feature_3"]


def log_path(root: Path, policy: str, campaign: str) -> Path:
    return root / policy / campaign / f"{campaign}.csv"


def item_context_path(root: Path, policy: str, campaign: str) -> Path:
    return root / policy / campaign / "item_context.csv"


def _read_csv(path: Path, **options) -> pd.DataFrame:
    """pandas.read_csv, with an unreadable file (empty, not UTF-8, ragged) named in one line."""
    try:
        return pd.read_csv(path, **options)
    except pd.errors.EmptyDataError as err:
        raise ValueError(f"{path}: the file is empty (run `liveslate fetch-data --force` to restore the sample)") from err
    except UnicodeDecodeError as err:
        raise ValueError(f"{path}: not UTF-8 text ({err.reason}); run `liveslate fetch-data --force` "
                         "to restore the sample") from err
    except pd.errors.ParserError as err:
        raise ValueError(f"{path}: not a readable CSV file ({' '.join(str(err).split())})") from err


def _numbers(raw: pd.DataFrame, column: str, path: Path, integer: bool) -> pd.Series:
    """``raw[column]`` as numbers; the first cell that is missing or not a number (an integer) is an error
    naming the file, its line (the header is line 1) and the column."""
    values = pd.to_numeric(raw[column], errors="coerce")
    bad = values.isna().to_numpy()
    if integer:
        bad = bad | (values.fillna(0) % 1 != 0).to_numpy()
    if bad.any():
        row = int(bad.argmax())
        expected = "an integer" if integer else "a number"
        cell = raw[column].iloc[row]
        problem = f"missing, expected {expected}" if pd.isna(cell) else f"{cell!r} is not {expected}"
        raise ValueError(f"{path}: line {row + 2}: column {column}: {problem}")
    return values


def read_obd_log(path: Path, policy: str, campaign: str, max_rows: int | None = None) -> pd.DataFrame:
    """One OBD log file → canonical log rows (without validation)."""
    raw = _read_csv(path, index_col=0, nrows=max_rows, dtype=str)
    expected = {"timestamp", "item_id", "position", "click", "propensity_score", *USER_FEATURES}
    missing = sorted(expected - set(raw.columns))
    if missing:
        raise ValueError(f"{path}: missing column(s) {missing}")
    ts = pd.to_datetime(raw["timestamp"], utc=True, format="ISO8601", errors="coerce")
    if ts.isna().any():
        row = int(ts.isna().to_numpy().argmax())
        raise ValueError(f"{path}: line {row + 2}: column timestamp: {raw['timestamp'].iloc[row]!r} is not "
                         "an ISO 8601 timestamp")
    position, click = _numbers(raw, "position", path, True), _numbers(raw, "click", path, True)
    propensity = _numbers(raw, "propensity_score", path, False)
    row_ids = raw.index.astype(str)
    frame = pd.DataFrame(
        {
            "impression_id": (f"{policy}/{campaign}/" + row_ids).astype("string"),
            "session_id": pd.Series(pd.NA, index=raw.index, dtype="string"),
            "step": pd.Series(pd.NA, index=raw.index, dtype="Int32"),
            "ts": ts,
            "room_id": pd.Series(campaign, index=raw.index, dtype="string"),
            # An id that is not one of the campaign's items is left to validate (not in the catalogue).
            "item_id": (f"{campaign}/" + raw["item_id"].astype(str)).astype("string"),
            # OBD positions are 1-based; canonical positions are 0-based slots. Values outside
            # the types' ranges are left to validate (position within the slate, click in {0, 1}).
            "position": (position - 1).clip(-1, 2**15 - 1).astype("int16"),
            "click": click.clip(-1, 127).astype("int8"),
            "reward": click.astype("float32"),
            "propensity": propensity.astype("float64"),
            "policy": pd.Series(f"{policy}@obd", index=raw.index, dtype="string"),
            "slate_probability": pd.Series(float("nan"), index=raw.index, dtype="float64"),
            "candidates": pd.Series(None, index=raw.index, dtype="object"),
        }
    )
    for feature in USER_FEATURES:
        frame[f"ctx_{feature}"] = raw[feature].astype("string")
    return frame.reset_index(drop=True)


def shared_item_encoding(random_ctx: pd.DataFrame, bts_ctx: pd.DataFrame, where: str) -> pd.DataFrame:
    """Item contexts of both copies → one table with the ``random`` copy's category values.

    Raises ValueError when the copies disagree on the item set, on item_feature_0, or
    when a categorical feature does not induce the same grouping of items in both.
    """
    left = random_ctx.set_index("item_id").sort_index()
    right = bts_ctx.set_index("item_id").sort_index()
    if not left.index.equals(right.index):
        raise ValueError(f"{where}: random and bts item_context.csv list different items")
    diff = (left["item_feature_0"] - right["item_feature_0"]).abs()
    if (diff > 1e-9).any():
        bad = diff[diff > 1e-9].index.tolist()[:5]
        raise ValueError(f"{where}: item_feature_0 differs between random and bts copies for items {bad}")
    for feature in CATEGORICAL_ITEM_FEATURES:
        pairs = pd.DataFrame({"random": left[feature], "bts": right[feature]}).drop_duplicates()
        if pairs["random"].duplicated().any() or pairs["bts"].duplicated().any():
            raise ValueError(f"{where}: {feature} groups items differently in the random and bts copies")
    return left.reset_index()


def read_obd_catalog(root: Path, campaign: str, policies: tuple[str, ...], first_seen: pd.Timestamp) -> pd.DataFrame:
    """Catalogue rows of one campaign (room), with the shared categorical encoding."""
    contexts = {p: _read_csv(item_context_path(root, p, campaign), index_col=0) for p in ("random", "bts")
                if item_context_path(root, p, campaign).exists()}
    if not contexts:
        raise FileNotFoundError(f"{root}/*/{campaign}/item_context.csv: no item context for campaign {campaign!r}")
    for policy, frame in contexts.items():
        missing = sorted({"item_id", "item_feature_0", *CATEGORICAL_ITEM_FEATURES} - set(frame.columns))
        if missing:
            raise ValueError(f"{item_context_path(root, policy, campaign)}: missing column(s) {missing}")
    if len(contexts) == 2:
        items = shared_item_encoding(contexts["random"], contexts["bts"], where=f"{root}/{{random,bts}}/{campaign}")
    else:
        items = next(iter(contexts.values()))
    catalog = pd.DataFrame(
        {
            "item_id": (f"{campaign}/" + items["item_id"].astype(str)).astype("string"),
            "room_id": pd.Series(campaign, index=items.index, dtype="string"),
            "first_seen": pd.Series(first_seen.tz_localize(None).normalize(), index=items.index),
        }
    )
    for feature in CATEGORICAL_ITEM_FEATURES:
        catalog[f"cat_{feature}"] = items[feature].astype("string")
    catalog["num_item_feature_0"] = items["item_feature_0"].astype("float64")
    return catalog


def ingest_obd(root: Path, campaigns: tuple[str, ...], policies: tuple[str, ...],
               max_rows_per_file: int | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """All requested OBD files → (logs, catalogue)."""
    logs, catalogs = [], []
    for campaign in campaigns:
        campaign_logs = []
        for policy in policies:
            path = log_path(root, policy, campaign)
            if not path.exists():
                raise FileNotFoundError(f"{path}: OBD log not found; run `make data` (liveslate fetch-data) first")
            campaign_logs.append(read_obd_log(path, policy, campaign, max_rows_per_file))
        frame = pd.concat(campaign_logs, ignore_index=True)
        logs.append(frame)
        catalogs.append(read_obd_catalog(root, campaign, policies, first_seen=frame["ts"].min()))
    return pd.concat(logs, ignore_index=True), pd.concat(catalogs, ignore_index=True)
