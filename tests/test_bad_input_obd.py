"""A damaged copy of the real OBD rows (tests/data/obd): each fault names the file, the line and the column.

Before: an empty log was 'No columns to parse from file', a click of "yes" was 'invalid literal
for int()', a bad timestamp was pandas' advice on format strings, and an item_context.csv without
its columns was a KeyError traceback — none naming the file.
"""

from __future__ import annotations

import shutil

import pandas as pd
import pytest

from liveslate.data.obd import ingest_obd
from validate_support import OBD


@pytest.fixture
def root(tmp_path):
    shutil.copytree(OBD, tmp_path / "obd")
    return tmp_path / "obd"


def edit_log(root, row: int, column: str, value: str):
    path = root / "random" / "men" / "men.csv"
    cells = pd.read_csv(path, dtype=str, keep_default_na=False)
    cells.loc[row, column] = value
    cells.to_csv(path, index=False)
    return path


@pytest.mark.parametrize(("column", "value", "expected"), [
    ("click", "yes", "'yes' is not an integer"),
    ("position", "2.5", "'2.5' is not an integer"),
    ("propensity_score", "", "missing, expected a number"),
    ("timestamp", "yesterday", "'yesterday' is not an ISO 8601 timestamp"),
])
def test_a_bad_cell_names_file_line_and_column(root, column, value, expected):
    path = edit_log(root, 3, column, value)
    with pytest.raises(ValueError) as caught:
        ingest_obd(root, ("men",), ("random", "bts"))
    # Row 3 is line 5: the header is line 1.
    assert str(caught.value) == f"{path}: line 5: column {column}: {expected}"


def test_out_of_range_integers_are_left_to_validate_not_wrapped(root):
    edit_log(root, 0, "position", "70001")
    edit_log(root, 1, "click", "300")
    logs, _ = ingest_obd(root, ("men",), ("random",))
    first = logs.set_index("impression_id")
    # int16 would have wrapped 70000 to 4464 and int8 300 to 44: values validate cannot tell from real ones.
    assert first.loc["random/men/0", "position"] == 2**15 - 1 and first.loc["random/men/1", "click"] == 127


def test_unreadable_files_are_named(root):
    log = root / "random" / "men" / "men.csv"
    log.write_text("")
    with pytest.raises(ValueError, match=rf"{log}: the file is empty"):
        ingest_obd(root, ("men",), ("random",))
    log.write_bytes(b",timestamp\n0,caf\xe9\n")
    with pytest.raises(ValueError, match=rf"{log}: not UTF-8 text"):
        ingest_obd(root, ("men",), ("random",))
    shutil.copy(OBD / "random" / "men" / "men.csv", log)
    context = root / "random" / "men" / "item_context.csv"
    context.write_text(",a,b\n0,1,2\n")
    with pytest.raises(ValueError, match=rf"{context}: missing column\(s\) \['item_feature_0', .*'item_id'\]"):
        ingest_obd(root, ("men",), ("random", "bts"))
