"""Bad input on a small copy of real rows, fed as a user's canonical CSV export through ingest and validate.

Each case: the message names the file, the column and the rows; the good rows are kept;
the rejected rows are kept with their reason.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from liveslate.config import CanonicalSourceConfig, IngestConfig, ValidateConfig
from liveslate.data.ingest import ingest
from liveslate.data.validate import REJECT_REASON, SOURCE_ROW, reject_messages, validate_tables
from validate_support import men_catalog, obd_rows, write_canonical

INTERIM = "artifacts/interim/logs.parquet"
CATALOG = "artifacts/interim/catalog.parquet"
# Lenient enough that a few bad rows do not fail the whole table; the share has its own test.
LENIENT = ValidateConfig(max_reject_share=0.2)


@pytest.fixture(scope="module")
def export() -> tuple[pd.DataFrame, pd.DataFrame]:
    """50 real rows (25 per logging policy) and the real catalogue, as canonical frames."""
    return pd.concat([obd_rows("random", 25), obd_rows("bts", 25)], ignore_index=True), men_catalog()


def _ingest_and_validate(tmp_path, logs: pd.DataFrame, catalog: pd.DataFrame, config: ValidateConfig = LENIENT):
    write_canonical(tmp_path / "export", logs, catalog)
    ingest_config = IngestConfig(sources=("canonical",), canonical=CanonicalSourceConfig(directory="export"))
    frame, items = ingest(ingest_config, tmp_path / "data", tmp_path)
    return validate_tables(frame, items, config, logs_source=INTERIM, catalog_source=CATALOG)


def _edit(logs: pd.DataFrame, impression: str, column: str, value) -> pd.DataFrame:
    out = logs.copy()
    out.loc[out["impression_id"] == impression, column] = value
    return out


def _assert_kept_and_rejected(result, logs: pd.DataFrame, rejected: dict[str, str]) -> None:
    """``rejected``: impression id → its full reject reason; every other impression must pass."""
    table = result.logs
    assert dict(zip(table.rejected["impression_id"], table.rejected[REJECT_REASON])) == rejected
    assert set(table.passed["impression_id"]) == set(logs["impression_id"]) - set(rejected)
    assert table.rows_passed + table.rows_rejected == table.rows_in == len(logs)
    # rejected rows keep every original column, plus their row number and reason
    assert list(table.rejected.columns) == list(table.passed.columns) + [SOURCE_ROW, REJECT_REASON]


def _assert_message(result, column: str, impressions: list[str]) -> str:
    """The reject messages for ``column`` name the file, the column, the rows and their impression ids."""
    lines = [m for m in reject_messages(result.logs) if f"column {column}:" in m]
    assert lines, reject_messages(result.logs)
    named: set[tuple[str, int]] = set()
    for line in lines:
        assert line.startswith(f"{INTERIM}: column {column}: ")
        rows, ids = re.search(r"rows ([\d, ]+) \(0-based; impression_id ([^)]*)\)", line).groups()
        named |= set(zip(ids.split(", "), map(int, rows.split(", "))))
    # each impression is named with its row number in the interim file
    rejected = result.logs.rejected
    expected = set(zip(rejected["impression_id"], rejected[SOURCE_ROW].astype(int)))
    assert named == {pair for pair in expected if pair[0] in impressions}
    return "\n".join(lines)


def test_propensity_zero_and_nan(tmp_path, export):
    logs, catalog = export
    broken = _edit(_edit(logs, "random/men/3", "propensity", 0.0), "bts/men/4", "propensity", np.nan)
    result = _ingest_and_validate(tmp_path, broken, catalog)
    _assert_kept_and_rejected(result, logs, {
        "random/men/3": "expect_column_values_to_be_between(propensity)",
        "bts/men/4": "expect_column_values_to_not_be_null(propensity)",
    })
    text = _assert_message(result, "propensity", ["random/men/3", "bts/men/4"])
    assert "propensity in (0, 1]" in text and "values 0.0" in text and "values nan" in text
    assert result.passed  # 2 of 50 rows, within the lenient share


def test_click_two(tmp_path, export):
    logs, catalog = export
    result = _ingest_and_validate(tmp_path, _edit(logs, "bts/men/7", "click", 2), catalog)
    _assert_kept_and_rejected(result, logs, {"bts/men/7": "expect_column_values_to_be_in_set(click)"})
    assert "values 2" in _assert_message(result, "click", ["bts/men/7"])


def test_position_three_is_a_one_based_leak(tmp_path, export):
    logs, catalog = export
    result = _ingest_and_validate(tmp_path, _edit(logs, "random/men/9", "position", 3), catalog)
    _assert_kept_and_rejected(result, logs, {"random/men/9": "expect_column_values_to_be_between(position)"})
    assert "position in [0, 3)" in _assert_message(result, "position", ["random/men/9"])


def test_a_whole_export_left_one_based_fails_the_stage(tmp_path, export):
    logs, catalog = export
    leaked = logs.assign(position=logs["position"] + 1)  # the export forgot the 1-based → 0-based shift
    result = _ingest_and_validate(tmp_path, leaked, catalog, ValidateConfig(max_reject_share=0.01))
    threes = set(leaked.loc[leaked["position"] == 3, "impression_id"])
    assert threes and set(result.logs.rejected["impression_id"]) == threes
    [message] = result.failures()
    assert message.startswith(f"{INTERIM}: {len(threes)} of 50 rows rejected") and "max_reject_share" in message
    assert not result.passed


def test_unknown_item(tmp_path, export):
    logs, catalog = export
    result = _ingest_and_validate(tmp_path, _edit(logs, "random/men/11", "item_id", "men/99"), catalog)
    # the room check cannot judge an item the catalogue does not know: one reason only
    _assert_kept_and_rejected(result, logs, {"random/men/11": "expect_column_values_to_be_in_set(item_id)"})
    assert "'men/99'" in _assert_message(result, "item_id", ["random/men/11"])


def test_duplicated_impression_and_position(tmp_path, export):
    logs, catalog = export
    copy = logs[logs["impression_id"] == "bts/men/12"]
    result = _ingest_and_validate(tmp_path, pd.concat([logs, copy], ignore_index=True), catalog)
    table = result.logs
    # both copies are rejected: which one is right cannot be told
    assert table.rejected["impression_id"].tolist() == ["bts/men/12", "bts/men/12"]
    assert set(table.rejected[REJECT_REASON]) == {"expect_compound_columns_to_be_unique(impression_id, position)"}
    assert set(table.passed["impression_id"]) == set(logs["impression_id"]) - {"bts/men/12"}
    text = _assert_message(result, "impression_id, position", ["bts/men/12"])
    assert "impression_id=bts/men/12" in text


def test_a_row_failing_several_expectations_gets_every_reason(tmp_path, export):
    logs, catalog = export
    broken = _edit(_edit(logs, "random/men/5", "propensity", 1.5), "random/men/5", "click", 2)
    result = _ingest_and_validate(tmp_path, broken, catalog)
    _assert_kept_and_rejected(result, logs, {"random/men/5": "expect_column_values_to_be_between(propensity); "
                                                             "expect_column_values_to_be_in_set(click)"})


def test_an_empty_file_with_a_header_only(tmp_path, export):
    logs, catalog = export
    result = _ingest_and_validate(tmp_path, logs.iloc[:0], catalog)
    assert result.logs.rows_in == 0 and not result.passed
    # (an empty CSV also leaves `candidates` without the object dtype; the row count comes first)
    message = result.failures()[0]
    assert message == (f"{INTERIM}: table: expected at least 1 row(s) [expect_table_row_count_to_be_between], "
                       "observed 0 (all 0 rows)")


def test_a_missing_column_in_the_export_names_the_file(tmp_path, export):
    logs, catalog = export
    logs_path, _ = write_canonical(tmp_path / "export", logs.drop(columns=["click"]), catalog)
    config = IngestConfig(sources=("canonical",), canonical=CanonicalSourceConfig(directory="export"))
    with pytest.raises(ValueError, match=r"logs\.csv: missing required column\(s\) \['click'\] \(rows 0\.\.49\)"):
        ingest(config, tmp_path / "data", tmp_path)
    assert logs_path.exists()


def test_a_missing_column_in_the_interim_table_fails_validation(export):
    logs, catalog = export
    result = validate_tables(logs.drop(columns=["click"]), catalog, LENIENT, logs_source=INTERIM)
    # one sentence for the missing column, not one per expectation that needs it
    assert result.failures() == [f"{INTERIM}: column click: expected column click is present "
                                 "[expect_column_to_exist(click)], the column is missing (all 50 rows)"]
    assert result.logs.rows_rejected == 0


def test_a_rejected_catalogue_item_rejects_its_log_rows(export):
    logs, catalog = export
    item = logs.loc[0, "item_id"]
    broken = catalog.copy()
    broken.loc[broken["item_id"] == item, "room_id"] = None
    result = validate_tables(logs, broken, ValidateConfig(max_reject_share=0.5))
    assert result.catalog.rejected["item_id"].tolist() == [item]
    assert result.catalog.rejected[REJECT_REASON].tolist() == ["expect_column_values_to_not_be_null(room_id)"]
    expected = set(logs.loc[logs["item_id"] == item, "impression_id"])
    assert set(result.logs.rejected["impression_id"]) == expected
    assert set(result.logs.rejected[REJECT_REASON]) == {"expect_column_values_to_be_in_set(item_id)"}
