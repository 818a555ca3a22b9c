"""Each GX expectation: a good frame of real OBD rows passes, a frame broken in exactly that way fails.

The good frame is the first 30 rows of the real ``men`` log under each logging policy,
plus the two hooks OBD itself does not exercise: a ``partition_date`` (as a day-partitioned
source writes it) and a numeric context feature (OBD's user features are hashes).
Each broken frame must fail exactly the expectations named, on exactly the rows named.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from liveslate.config import ValidateConfig
from liveslate.data.expectations import LOG_COLUMN_DTYPES, dtype_matches
from liveslate.schema import LOG_DTYPES, LOG_REQUIRED
from validate_support import check_catalog, check_logs, failed, men_catalog, obd_rows

BETWEEN = "expect_column_values_to_be_between"


@pytest.fixture(scope="module")
def catalog() -> pd.DataFrame:
    return men_catalog()


@pytest.fixture(scope="module")
def good(catalog) -> pd.DataFrame:
    logs = pd.concat([obd_rows("random", 30), obd_rows("bts", 30)], ignore_index=True)
    logs["partition_date"] = logs["ts"].dt.strftime("%Y-%m-%d").astype("string")
    logs["ctx_viewer_age"] = np.linspace(18.0, 70.0, len(logs))
    return logs


@pytest.fixture(scope="module")
def good_outcomes(good, catalog):
    return check_logs(good, catalog)


@pytest.fixture(scope="module")
def good_catalog_outcomes(catalog):
    return check_catalog(catalog)


def test_the_good_frame_passes_every_expectation(good_outcomes, good):
    assert failed(good_outcomes) == {}
    assert {o.error for o in good_outcomes.values()} == {None}
    # the hooks are in the suite because the frame has the columns
    assert f"{BETWEEN}(ctx_viewer_age)" in good_outcomes
    assert "expect_column_pair_values_a_to_be_greater_than_b(ts, partition_start)" in good_outcomes
    assert good_outcomes["expect_table_row_count_to_be_between"].examples == (str(len(good)),)
    # the nullable columns are all null in OBD, so nulls there pass
    assert good[["session_id", "step", "slate_probability", "candidates"]].isna().all().all()


def test_plain_obd_rows_get_no_partition_or_numeric_context_checks(catalog):
    outcomes = check_logs(obd_rows("bts", 20), catalog)
    assert failed(outcomes) == {}
    assert not [k for k in outcomes if "partition" in k or k.startswith(f"{BETWEEN}(ctx_")]
    # string context columns get a dtype check only
    assert "expect_column_dtype_to_be_in(ctx_user_feature_0)" in outcomes


def test_the_good_catalogue_passes(good_catalog_outcomes):
    assert failed(good_catalog_outcomes) == {}
    assert len(good_catalog_outcomes) >= 10


def _set(frame: pd.DataFrame, column: str, rows: list[int], values: list) -> pd.DataFrame:
    out = frame.copy()
    for row, value in zip(rows, values):
        out.loc[row, column] = value
    return out


# name → (how the good frame is broken, {failing expectation: flagged rows})
ROW_CASES = {
    "propensity above 1": (
        lambda f: _set(f, "propensity", [3], [1.5]), {f"{BETWEEN}(propensity)": [3]}),
    "slate probability 0": (
        lambda f: _set(f, "slate_probability", [4, 5], [0.0, 0.25]), {f"{BETWEEN}(slate_probability)": [4]}),
    "reward negative or above reward_max": (
        lambda f: _set(f, "reward", [5, 6], [-1.0, 2.0]), {f"{BETWEEN}(reward)": [5, 6]}),
    "position -1": (
        lambda f: _set(f, "position", [7], [-1]), {f"{BETWEEN}(position)": [7]}),
    "click -1": (
        lambda f: _set(f, "click", [8], [-1]), {"expect_column_values_to_be_in_set(click)": [8]}),
    "room differs from the item's catalogue room": (
        lambda f: _set(f, "room_id", [6], ["women"]),
        {"expect_column_pair_values_to_be_equal(room_id, catalog_room_id)": [6]}),
    "numeric context inf or implausible": (
        lambda f: _set(f, "ctx_viewer_age", [7, 8, 9], [np.inf, -2.0e6, np.nan]),
        {f"{BETWEEN}(ctx_viewer_age)": [7, 8]}),  # NaN = not observed, allowed
    "partition date not a day": (
        lambda f: _set(f, "partition_date", [9], ["2019/11/24"]),
        {"expect_column_values_to_match_regex(partition_date)": [9]}),
    "ts before its partition": (
        lambda f: _set(f, "partition_date", [10], ["2019-11-25"]),
        {"expect_column_pair_values_a_to_be_greater_than_b(ts, partition_start)": [10]}),
    "ts after its partition": (
        lambda f: _set(f, "partition_date", [11], ["2019-11-23"]),
        {"expect_column_pair_values_a_to_be_greater_than_b(partition_end, ts)": [11]}),
}


@pytest.mark.parametrize("case", list(ROW_CASES))
def test_a_row_broken_one_way_fails_that_expectation_only(case, good, catalog, good_outcomes):
    breaker, expected = ROW_CASES[case]
    outcomes = check_logs(breaker(good), catalog)
    for key in expected:
        assert good_outcomes[key].success, f"{key} must pass on the good frame"
    assert failed(outcomes) == expected


def test_rows_without_a_partition_are_not_checked_against_one(good, catalog):
    # a source that is not partitioned by day leaves partition_date null: any ts is fine there
    mixed = _set(good, "partition_date", [1, 2], [None, None])
    mixed = _set(mixed, "ts", [1], [pd.Timestamp("2020-01-01", tz="UTC")])
    assert failed(check_logs(mixed, catalog)) == {}


def test_every_required_column_has_a_not_null_check(good, catalog):
    broken = good.copy()
    broken["position"] = broken["position"].astype("Int16")  # nullable integers are valid dtypes
    broken["click"] = broken["click"].astype("Int8")
    for row, column in enumerate(LOG_REQUIRED):
        broken.loc[row, column] = np.nan if broken[column].dtype.kind == "f" else None
    outcomes = check_logs(broken, catalog)
    assert failed(outcomes) == {f"expect_column_values_to_not_be_null({c})": [r] for r, c in enumerate(LOG_REQUIRED)}


def test_several_slots_of_one_impression_are_not_duplicates(good, catalog):
    slate = _set(good, "impression_id", [12, 13, 14], ["random/men/12"] * 3)
    slate = _set(slate, "position", [12, 13, 14], [0, 1, 2])
    assert failed(check_logs(slate, catalog)) == {}


def test_slate_size_sets_the_position_bound(good, catalog):
    wide = _set(good, "position", [2], [3])
    assert failed(check_logs(wide, catalog, ValidateConfig(slate_size=4))) == {}
    assert failed(check_logs(wide, catalog, ValidateConfig(slate_size=3))) == {f"{BETWEEN}(position)": [2]}


def test_min_rows_is_a_table_level_check(good, catalog):
    outcomes = check_logs(good, catalog, ValidateConfig(min_rows=len(good) + 1))
    assert failed(outcomes) == {"expect_table_row_count_to_be_between": []}
    verdict = outcomes["expect_table_row_count_to_be_between"]
    assert not verdict.row_level and verdict.fails_table and verdict.examples == (str(len(good)),)


def test_an_empty_partition_fails(good, catalog):
    outcomes = check_logs(good.iloc[:0], catalog)
    assert failed(outcomes) == {"expect_table_row_count_to_be_between": []}


def test_wrong_dtypes_fail_their_dtype_expectation_only(good, catalog):
    broken = good.copy()
    broken["position"] = broken["position"].astype("float64")
    broken["click"] = broken["click"].astype("float64")
    broken["reward"] = broken["reward"].astype("int8")
    broken["step"] = broken["step"].astype("float64")
    broken["impression_id"] = broken["impression_id"].astype(object)
    broken["ts"] = broken["ts"].dt.tz_convert("Europe/Paris")
    outcomes = check_logs(broken, catalog)
    expected = ["position", "click", "reward", "step", "impression_id", "ts"]
    assert failed(outcomes) == {f"expect_column_dtype_to_be_in({c})": [] for c in expected}
    assert outcomes["expect_column_dtype_to_be_in(ts)"].examples == ("datetime64[us, Europe/Paris]",)
    assert all(outcomes[f"expect_column_dtype_to_be_in({c})"].fails_table for c in expected)


def test_nullable_integers_any_utc_unit_and_pandas_str_are_accepted(good, catalog):
    variant = good.copy()
    variant["position"] = variant["position"].astype("Int16")
    variant["click"] = variant["click"].astype("Int8")
    variant["step"] = variant["step"].astype("Int64")
    variant["propensity"] = variant["propensity"].astype("Float64")
    variant["ts"] = variant["ts"].astype("datetime64[ns, UTC]")
    variant["item_id"] = variant["item_id"].astype("str")
    assert str(variant["item_id"].dtype) == "str"
    assert failed(check_logs(variant, catalog)) == {}


def test_a_naive_timestamp_is_not_utc():
    assert dtype_matches("datetime64[ms, UTC]", ("datetime64[*, UTC]",))
    assert not dtype_matches("datetime64[us]", ("datetime64[*, UTC]",))
    assert not dtype_matches("datetime64[us, Asia/Tokyo]", ("datetime64[*, UTC]",))


def test_every_canonical_column_has_a_dtype_rule():
    assert set(LOG_COLUMN_DTYPES) == set(LOG_DTYPES)
    for column, dtype in LOG_DTYPES.items():
        assert dtype_matches(dtype, LOG_COLUMN_DTYPES[column]), column


def test_a_missing_column_fails_the_table(good, catalog):
    outcomes = check_logs(good.drop(columns=["click"]), catalog)
    assert not outcomes["expect_column_to_exist(click)"].success
    assert outcomes["expect_column_dtype_to_be_in(click)"].examples == ("missing",)
    # everything that failed concerns the missing column
    assert {k for k in failed(outcomes)} == {k for k in outcomes if "(click" in k}
    assert all(outcomes[k].fails_table for k in failed(outcomes))


# --------------------------------------------------------------------------- catalogue


CATALOG_CASES = {
    "duplicated item": (
        lambda c: pd.concat([c, c.iloc[[5]]], ignore_index=True),
        {"expect_column_values_to_be_unique(item_id)": [5, 34]}),
    "item without a room": (
        lambda c: _set(c, "room_id", [1], [None]), {"expect_column_values_to_not_be_null(room_id)": [1]}),
    "numeric attribute inf or implausible": (
        lambda c: _set(c, "num_item_feature_0", [2, 3, 4], [np.inf, 2.0e6, np.nan]),
        {f"{BETWEEN}(num_item_feature_0)": [2, 3]}),
    "first_seen is not a naive date": (
        lambda c: c.assign(first_seen=c["first_seen"].dt.tz_localize("UTC")),
        {"expect_column_dtype_to_be_in(first_seen)": []}),
    "categorical attribute as numbers": (
        lambda c: c.assign(cat_item_feature_1=np.arange(len(c))),
        {"expect_column_dtype_to_be_in(cat_item_feature_1)": []}),
    "empty catalogue": (lambda c: c.iloc[:0], {"expect_table_row_count_to_be_between": []}),
}


@pytest.mark.parametrize("case", list(CATALOG_CASES))
def test_a_catalogue_broken_one_way_fails_that_expectation_only(case, catalog, good_catalog_outcomes):
    breaker, expected = CATALOG_CASES[case]
    for key in expected:
        assert good_catalog_outcomes[key].success
    assert failed(check_catalog(breaker(catalog))) == expected


def test_a_catalogue_without_first_seen_fails_the_table(catalog):
    outcomes = check_catalog(catalog.drop(columns=["first_seen"]))
    assert not outcomes["expect_column_to_exist(first_seen)"].success
    assert {k for k in failed(outcomes)} == {k for k in outcomes if "(first_seen" in k}
