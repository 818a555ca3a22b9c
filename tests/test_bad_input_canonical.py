"""A user's canonical export with hostile cells and files, on real OBD rows (tests/data/obd).

Cells that do not fit their column's type reject their row at ingest (kept with file, line and
reason); files that cannot be read fail naming the file; candidate lists that do not fit the
catalogue are rejected by validate. Before these checks, ``position`` 1.5 became 1, 70000
wrapped to 4464 in int16, ``"42"`` passed as a candidate list, an offset other than +00:00
made ``ts`` unreadable for the whole file, and a ``click`` of "yes" failed the whole export
with a message naming neither the column nor the line.
"""

from __future__ import annotations

import json

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from liveslate.cli import app
from liveslate.config import CanonicalSourceConfig, IngestConfig, ValidateConfig
from liveslate.data.canonical import read_canonical
from liveslate.data.ingest import read_sources
from liveslate.data.validate import REJECT_REASON, reject_messages, validate_tables
from validate_support import men_catalog, obd_rows, write_canonical

CONFIG = IngestConfig(sources=("canonical",), canonical=CanonicalSourceConfig(directory="export"))


@pytest.fixture(scope="module")
def rows() -> pd.DataFrame:
    """40 real rows (20 per logging policy), as the user would export them."""
    return pd.concat([obd_rows("random", 20), obd_rows("bts", 20)], ignore_index=True)


def export_text(tmp_path, logs: pd.DataFrame, catalog: pd.DataFrame | None = None):
    """Write the export and return the logs CSV as text cells, for editing like a spreadsheet."""
    logs_path, catalog_path = write_canonical(tmp_path / "export", logs, men_catalog() if catalog is None else catalog)
    return logs_path, catalog_path, pd.read_csv(logs_path, dtype=str, keep_default_na=False)


def set_cells(path, frame: pd.DataFrame, edits: dict[tuple[int, str], str]) -> None:
    for (row, column), value in edits.items():
        frame.loc[row, column] = value
    frame.to_csv(path, index=False)


def test_cells_that_do_not_fit_their_type_reject_their_row_with_file_line_and_reason(tmp_path, rows):
    logs_path, _, cells = export_text(tmp_path, rows)
    edits = {(0, "click"): "yes", (3, "position"): "1.5", (4, "position"): "70000", (5, "ts"): "not a date",
             (6, "propensity"): "abc", (7, "candidates"): "42", (8, "candidates"): "[men/1",
             (9, "step"): "x", (10, "click"): ""}
    set_cells(logs_path, cells, edits)
    source = read_canonical(tmp_path / "export")
    assert len(source.logs) == len(rows) - len(edits)
    rejected = dict(zip(source.rejects["line"], source.rejects["reason"]))
    # Row i of the CSV is line i + 2 (the header is line 1).
    assert rejected == {
        2: "column click: 'yes' is not an integer in [-128, 127]",
        5: "column position: '1.5' is not an integer in [-32768, 32767]",
        6: "column position: '70000' is not an integer in [-32768, 32767]",
        7: "column ts: 'not a date' is not an ISO 8601 timestamp",
        8: "column propensity: 'abc' is not a number",
        9: 'column candidates: \'42\' is not a JSON list of item id strings (e.g. ["men/1", "men/5"])',
        10: 'column candidates: \'[men/1\' is not a JSON list of item id strings (e.g. ["men/1", "men/5"])',
        11: "column step: 'x' is not an integer in [-2147483648, 2147483647]",
        12: "column click: missing; expected an integer in [-128, 127]",
    }
    assert set(source.rejects["file"]) == {str(logs_path)}
    assert source.rejects.loc[source.rejects["line"] == 6, "text"].item() == "position=70000"
    # The kept rows are exactly the untouched ones, with their values intact.
    kept = set(rows["impression_id"].drop(index=[row for row, _ in edits]))
    assert set(source.logs["impression_id"]) == kept


def test_several_bad_cells_of_one_row_give_every_reason(tmp_path, rows):
    logs_path, _, cells = export_text(tmp_path, rows)
    set_cells(logs_path, cells, {(2, "click"): "no", (2, "reward"): "lots"})
    reasons = read_canonical(tmp_path / "export").rejects
    assert reasons["reason"].tolist() == ["column click: 'no' is not an integer in [-128, 127]; "
                                          "column reward: 'lots' is not a number"]


def test_timestamps_with_any_offset_are_read_as_utc(tmp_path, rows):
    logs_path, _, cells = export_text(tmp_path, rows)
    # The same instant as 2019-11-24 00:00:00 UTC, written in Tokyo time and without an offset.
    set_cells(logs_path, cells, {(0, "ts"): "2019-11-24 09:00:00+09:00", (1, "ts"): "2019-11-24 00:00:00"})
    logs = read_canonical(tmp_path / "export").logs.set_index("impression_id")
    for row in (0, 1):
        assert logs.loc[rows["impression_id"][row], "ts"] == pd.Timestamp("2019-11-24 00:00:00", tz="UTC")


def test_catalogue_cells_and_conflicting_repeats(tmp_path, rows):
    catalog = men_catalog()
    conflicting = catalog.iloc[[2]].assign(cat_item_feature_1="something else")
    _, catalog_path, _ = export_text(tmp_path, rows, pd.concat([catalog, catalog.iloc[[1]], conflicting]))
    cells = pd.read_csv(catalog_path, dtype=str, keep_default_na=False)
    set_cells(catalog_path, cells, {(5, "first_seen"): "soon", (6, "num_item_feature_0"): "abc"})
    source = read_canonical(tmp_path / "export")
    item = catalog["item_id"].iloc[2]
    assert dict(zip(source.rejects["line"], source.rejects["reason"])) == {
        7: "column first_seen: 'soon' is not a YYYY-MM-DD date",
        8: "column num_item_feature_0: 'abc' is not a number",
        4: f"column item_id: {item!r} is listed 2 times with different attributes "
           f"(catalog.csv line 4, catalog.csv line {len(catalog) + 3})",
        len(catalog) + 3: f"column item_id: {item!r} is listed 2 times with different attributes "
                          f"(catalog.csv line 4, catalog.csv line {len(catalog) + 3})",
    }
    # The identical repeat of item 1 collapses to one row; the conflicting item and the bad cells are out.
    assert len(source.catalog) == len(catalog) - 3 and source.catalog["item_id"].is_unique


@pytest.mark.parametrize(("write", "message"), [
    (lambda p: p.write_text(""), r"logs\.csv: the file is empty \(expected a header line"),
    (lambda p: p.write_bytes(p.read_bytes() + "x,café\n".encode("latin-1")), r"logs\.csv: line 42: not UTF-8 text \(byte 0xe9\)"),
    (lambda p: p.write_text(p.read_text() + "a,b,c," + ",".join(["x"] * 30) + "\n"), r"logs\.csv: not a readable CSV file"),
])
def test_unreadable_csv_files_are_named(tmp_path, rows, write, message):
    logs_path, _, _ = export_text(tmp_path, rows)
    write(logs_path)
    with pytest.raises(ValueError, match=message):
        read_canonical(tmp_path / "export")


def test_garbage_parquet_is_named_and_a_folder_named_like_a_file_is_ignored(tmp_path, rows):
    export_text(tmp_path, rows)
    (tmp_path / "export" / "logs_old.csv").mkdir()  # was an IsADirectoryError traceback
    assert len(read_canonical(tmp_path / "export").logs) == len(rows)
    (tmp_path / "export" / "logs_2.parquet").write_bytes(b"not parquet")
    with pytest.raises(ValueError, match=r"logs_2\.parquet: not a readable Parquet file"):
        read_canonical(tmp_path / "export")


def test_validate_rejects_candidate_lists_that_do_not_fit_the_catalogue(tmp_path, rows):
    logs_path, _, cells = export_text(tmp_path, rows)
    items = men_catalog()["item_id"].tolist()
    shown = cells["item_id"]
    set_cells(logs_path, cells, {
        (0, "candidates"): json.dumps([shown[0], "men/999"]),
        (1, "candidates"): json.dumps([shown[1], shown[1]]),
        (2, "candidates"): json.dumps([i for i in items if i != shown[2]][:5]),
        (3, "candidates"): json.dumps(sorted({shown[3], *items[:4]})),
    })
    result = read_sources(CONFIG, tmp_path / "data", tmp_path)
    validation = validate_tables(result.logs, result.catalog, ValidateConfig(max_reject_share=0.2))
    rejected = validation.logs.rejected.set_index("impression_id")[REJECT_REASON].to_dict()
    key = "expect_column_values_to_be_in_set(candidates_check)"
    assert rejected == {rows["impression_id"][i]: key for i in (0, 1, 2)}
    text = "\n".join(reject_messages(validation.logs))
    assert "'men/999', not in the catalogue" in text and f"lists {shown[1]!r} more than once" in text
    assert f"does not hold the shown item {shown[2]!r}" in text
    assert "candidates_check" not in validation.logs.passed.columns  # a derived column never reaches outputs


def test_ingest_stage_fails_above_the_reject_share_and_writes_no_tables(tmp_path, rows):
    logs_path, _, cells = export_text(tmp_path, rows)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({
        "ingest": {"sources": ["canonical"], "canonical": {"directory": "export"}},
        "validate": {"max_reject_share": 0.05}}))
    set_cells(logs_path, cells, {(1, "click"): "yes"})  # 1 of 40 + 34 rows: 1.4 %, under 5 %
    invoke = lambda: CliRunner().invoke(app, ["ingest", "--params", str(tmp_path / "params.yaml")])  # noqa: E731
    result = invoke()
    assert result.exit_code == 0, result.output
    assert f"rejected: {logs_path}: line 3: column click: 'yes' is not an integer" in result.output
    interim = tmp_path / "artifacts" / "interim"
    assert len(pd.read_parquet(interim / "canonical_rejects.parquet")) == 1
    assert len(pd.read_parquet(interim / "logs.parquet")) == len(rows) - 1
    set_cells(logs_path, cells, {(row, "propensity"): "high" for row in range(2, 6)})  # 5 rows: 6.8 %
    result = invoke()
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "5 row(s) of the canonical export (6.76%) do not fit the schema's types, above " \
           "validate.max_reject_share = 5.00%" in result.output
    assert len(pd.read_parquet(interim / "canonical_rejects.parquet")) == 5
    # The previous run's tables are gone: validate must not pass them off as this export's.
    assert not (interim / "logs.parquet").exists() and not (interim / "catalog.parquet").exists()
