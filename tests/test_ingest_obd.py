"""Ingest transformations on real OBD rows, checked against values read off the CSV by hand.

tests/data/obd holds the first 200 rows of the `men` campaign (34 items) under both policies.
Row 0 of random/men/men.csv:  2019-11-24 00:03:13.442536+00:00, item 14, position 3, click 0,
    propensity_score 0.029411764705882353 (= 1/34: uniform over the 34 items),
    user features cef3390e…, 03a5648a…, 7bc94a2d…, 9bde591f…
Row 190 of bts/men/men.csv:   2019-11-24 02:33:40.638561+00:00, item 13, position 1, click 1,
    propensity_score 0.36308
"""

from __future__ import annotations

import pandas as pd
import pytest

from liveslate.config import CanonicalSourceConfig, IngestConfig, ObdConfig
from liveslate.data.ingest import ingest, merge_catalogs
from liveslate.data.obd import (
    USER_FEATURES,
    item_context_path,
    log_path,
    read_obd_log,
    shared_item_encoding,
)
from liveslate.schema import LOG_DTYPES, context_columns, item_index
from validate_support import DATA, OBD, men_catalog, obd_rows, write_canonical


def test_first_random_row_by_hand():
    frame = obd_rows("random", 3)
    row = frame.iloc[0]
    assert row["impression_id"] == "random/men/0"
    assert row["ts"] == pd.Timestamp("2019-11-24 00:03:13.442536", tz="UTC")
    assert row["room_id"] == "men"
    assert row["item_id"] == "men/14"  # namespaced: item 14 of `men` is not item 14 of `all`
    assert row["position"] == 2  # OBD position 3 (1-based) is slot 2
    assert row["click"] == 0 and row["reward"] == 0.0
    assert row["propensity"] == pytest.approx(1 / 34, rel=1e-15)
    assert row["policy"] == "random@obd"
    assert row["ctx_user_feature_0"] == "cef3390ed299c09874189c387777674a"
    assert row["ctx_user_feature_3"] == "9bde591ffaab8d54c457448e4dca6f53"
    assert pd.isna(row["session_id"]) and pd.isna(row["step"]) and pd.isna(row["slate_probability"])
    assert frame["candidates"].isna().all()  # null = the room's whole catalogue


def test_a_bts_click_by_hand():
    row = obd_rows("bts", 200).iloc[190]
    assert (row["impression_id"], row["item_id"], row["position"]) == ("bts/men/190", "men/13", 0)
    assert row["click"] == 1 and row["reward"] == 1.0
    assert row["propensity"] == 0.36308 and row["policy"] == "bts@obd"


def test_positions_shift_by_one_on_every_row():
    raw = pd.read_csv(log_path(OBD, "bts", "men"), index_col=0)
    frame = obd_rows("bts", 200)
    assert sorted(raw["position"].unique()) == [1, 2, 3]
    assert (frame["position"].to_numpy() == raw["position"].to_numpy() - 1).all()
    assert (frame["propensity"].to_numpy() == raw["propensity_score"].to_numpy()).all()
    # every random row has the uniform propensity 1/34
    assert (obd_rows("random", 200)["propensity"] == 1 / 34).all()


def test_canonical_dtypes():
    frame = obd_rows("random", 10)
    for column in ("position", "click", "reward", "propensity", "step"):
        assert str(frame[column].dtype) == LOG_DTYPES[column], column
    assert str(frame["ts"].dtype).endswith(", UTC]")


def test_user_features_become_context_and_affinities_stay_out():
    header = pd.read_csv(log_path(OBD, "random", "men"), index_col=0, nrows=0).columns
    affinities = [c for c in header if c.startswith("user-item_affinity_")]
    assert len(affinities) == 34  # one per item of the campaign
    frame = obd_rows("random", 5)
    assert context_columns(frame) == [f"ctx_{f}" for f in USER_FEATURES]
    assert not [c for c in frame.columns if "affinity" in c]


def test_catalogue_uses_one_encoding_shared_by_both_copies():
    random_ctx = pd.read_csv(item_context_path(OBD, "random", "men"), index_col=0)
    bts_ctx = pd.read_csv(item_context_path(OBD, "bts", "men"), index_col=0)
    # the two copies hash item 1's categorical feature differently …
    assert random_ctx.loc[1, "item_feature_1"] == "270de57201b8ec18df9a72ed7ecf20eb"
    assert bts_ctx.loc[1, "item_feature_1"] == "77490d05a721c6d93edf580642ffd8bd"
    catalog = men_catalog().set_index("item_id")
    # … and the catalogue holds the random copy's value for every item, whichever log it came from
    assert catalog.loc["men/1", "cat_item_feature_1"] == "270de57201b8ec18df9a72ed7ecf20eb"
    assert catalog.loc["men/2", "cat_item_feature_1"] == catalog.loc["men/1", "cat_item_feature_1"]
    assert catalog.loc["men/0", "num_item_feature_0"] == pytest.approx(-0.6771831139635117)
    assert len(catalog) == 34 and set(catalog["room_id"]) == {"men"}
    assert (catalog["first_seen"] == pd.Timestamp("2019-11-24")).all()


def _item_contexts() -> tuple[pd.DataFrame, pd.DataFrame]:
    random_ctx = pd.DataFrame({"item_id": [0, 1, 2], "item_feature_0": [0.5, -1.0, 0.25],
                               "item_feature_1": ["a", "a", "b"], "item_feature_2": ["x", "y", "z"],
                               "item_feature_3": ["k", "k", "k"]})
    bts_ctx = random_ctx.assign(item_feature_1=["P", "P", "Q"], item_feature_2=["1", "2", "3"],
                                item_feature_3=["m", "m", "m"])
    return random_ctx, bts_ctx


def test_shared_encoding_keeps_the_random_hashes():
    random_ctx, bts_ctx = _item_contexts()
    shared = shared_item_encoding(random_ctx, bts_ctx, where="here")
    assert shared["item_feature_1"].tolist() == ["a", "a", "b"]
    assert shared["item_feature_0"].tolist() == [0.5, -1.0, 0.25]


def test_copies_that_group_items_differently_are_refused():
    random_ctx, bts_ctx = _item_contexts()
    with pytest.raises(ValueError, match=r"here: item_feature_1 groups items differently"):
        shared_item_encoding(random_ctx, bts_ctx.assign(item_feature_1=["P", "Q", "Q"]), where="here")
    with pytest.raises(ValueError, match=r"here: item_feature_0 differs .* items \[2\]"):
        shared_item_encoding(random_ctx, bts_ctx.assign(item_feature_0=[0.5, -1.0, 0.3]), where="here")


def test_ingest_obd_source_merges_both_policies_in_time_order():
    config = IngestConfig(sources=("obd",), obd=ObdConfig(campaigns=("men",), policies=("random", "bts"),
                                                          max_rows_per_file=40))
    logs, catalog = ingest(config, DATA, DATA)
    assert len(logs) == 80 and logs["policy"].value_counts().to_dict() == {"random@obd": 40, "bts@obd": 40}
    assert logs["ts"].is_monotonic_increasing
    assert logs["impression_id"].is_unique
    # the first row in time is bts row 0 (00:01:03), before random row 0 (00:03:13)
    assert logs["impression_id"].iloc[0] == "bts/men/0"
    assert item_index(catalog)[:3].tolist() == ["men/0", "men/1", "men/10"]  # ordered by (first_seen, item_id)


def test_canonical_source_round_trips_the_obd_rows(tmp_path):
    logs = pd.concat([obd_rows("random", 15), obd_rows("bts", 15)], ignore_index=True)
    write_canonical(tmp_path / "export", logs, men_catalog())
    config = IngestConfig(sources=("canonical",), canonical=CanonicalSourceConfig(directory="export"))
    back, catalog = ingest(config, tmp_path / "data", tmp_path)
    expected = logs.sort_values(["ts", "impression_id", "position"]).reset_index(drop=True)
    for column in ("impression_id", "item_id", "room_id", "position", "click", "propensity", "policy",
                   "ctx_user_feature_2"):
        assert back[column].tolist() == expected[column].tolist(), column
    assert (back["ts"] == expected["ts"]).all()
    assert catalog["item_id"].tolist() == men_catalog().sort_values(["first_seen", "item_id"])["item_id"].tolist()


def test_merged_catalogues_keep_the_earliest_first_seen_and_refuse_room_conflicts():
    early = pd.DataFrame({"item_id": ["men/1"], "room_id": ["men"], "first_seen": [pd.Timestamp("2019-11-24")]})
    late = early.assign(first_seen=pd.Timestamp("2019-11-26"))
    assert merge_catalogs([late, early])["first_seen"].tolist() == [pd.Timestamp("2019-11-24")]
    with pytest.raises(ValueError, match=r"men/1.*more than one room"):
        merge_catalogs([early, early.assign(room_id="women")])


def test_a_missing_obd_column_names_the_file(tmp_path):
    raw = pd.read_csv(log_path(OBD, "random", "men"), index_col=0, nrows=5).drop(columns=["propensity_score"])
    path = tmp_path / "men.csv"
    raw.to_csv(path)
    with pytest.raises(ValueError, match=r"men\.csv: missing column\(s\) \['propensity_score'\]"):
        read_obd_log(path, "random", "men")
