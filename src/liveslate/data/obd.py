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


def read_obd_log(path: Path, policy: str, campaign: str, max_rows: int | None = None) -> pd.DataFrame:
    """One OBD log file → canonical log rows (without validation)."""
    raw = pd.read_csv(path, index_col=0, nrows=max_rows, dtype={f: "string" for f in USER_FEATURES})
    expected = {"timestamp", "item_id", "position", "click", "propensity_score", *USER_FEATURES}
    missing = sorted(expected - set(raw.columns))
    if missing:
        raise ValueError(f"{path}: missing column(s) {missing}")
    row_ids = raw.index.astype(str)
    frame = pd.DataFrame(
        {
            "impression_id": (f"{policy}/{campaign}/" + row_ids).astype("string"),
            "session_id": pd.Series(pd.NA, index=raw.index, dtype="string"),
            "step": pd.Series(pd.NA, index=raw.index, dtype="Int32"),
            "ts": pd.to_datetime(raw["timestamp"], utc=True, format="ISO8601"),
            "room_id": pd.Series(campaign, index=raw.index, dtype="string"),
            "item_id": (f"{campaign}/" + raw["item_id"].astype(str)).astype("string"),
            # OBD positions are 1-based; canonical positions are 0-based slots.
            "position": (raw["position"] - 1).astype("int16"),
            "click": raw["click"].astype("int8"),
            "reward": raw["click"].astype("float32"),
            "propensity": raw["propensity_score"].astype("float64"),
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
    contexts = {p: pd.read_csv(item_context_path(root, p, campaign), index_col=0) for p in ("random", "bts")
                if item_context_path(root, p, campaign).exists()}
    if not contexts:
        raise FileNotFoundError(f"{root}/*/{campaign}/item_context.csv: no item context for campaign {campaign!r}")
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
