"""The HTML validation report: failures first, examples with their rows, every value escaped."""

from __future__ import annotations

import re

import pandas as pd

from liveslate.config import ValidateConfig
from liveslate.data.validate import validate_tables
from liveslate.data.validation_report import render_report
from validate_support import men_catalog, obd_rows


def test_report_lists_failures_first_with_rows_and_escaped_values():
    logs = pd.concat([obd_rows("random", 20), obd_rows("bts", 20)], ignore_index=True)
    logs.loc[7, "item_id"] = "<script>men/99</script>"
    logs.loc[9, "click"] = 2
    result = validate_tables(logs, men_catalog(), ValidateConfig(), logs_source="interim/logs.parquet")
    page = render_report(result, "artifacts/rejects")

    assert "<script>" not in page and "&lt;script&gt;men/99&lt;/script&gt;" in page
    logs_section = page.split("<h2>Suite: logs</h2>")[1].split("<h2>")[0]
    expectation_rows = re.findall(r"<tr[^>]*><td><code>(expect_[a-z_]+)</code>", logs_section)
    # the two rejecting expectations head the table, then the passes
    assert set(expectation_rows[:2]) == {"expect_column_values_to_be_in_set"}
    assert len(expectation_rows) == len(result.logs.outcomes)
    rows = {r: result.logs.rejected.set_index("impression_id").loc[i, "source_row"]
            for r, i in (("item", logs.loc[7, "impression_id"]), ("click", logs.loc[9, "impression_id"]))}
    assert f"row {rows['click']}: 2" in logs_section
    assert f"row {rows['item']}: &#x27;&lt;script&gt;men/99&lt;/script&gt;&#x27;" in logs_section
    # the summary names why the stage fails: 2 of 40 rows is above the default 1 %
    assert "2 of 40 rows rejected (5.00%)" in page and "FAILED" in page
