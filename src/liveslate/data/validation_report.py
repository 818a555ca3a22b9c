"""reports/validation.html: one self-contained page (inline CSS, no scripts, no external files).

A summary of rows in / passed / rejected per table and why the stage failed (if it did),
then one table per suite: expectation, column, success, unexpected count, examples.
"""

from __future__ import annotations

from html import escape

from liveslate.data.validate import EXAMPLES, TableValidation, ValidationResult

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
h1 { margin-bottom: 0.2em; }
table { border-collapse: collapse; margin: 1em 0 2em; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: left; vertical-align: top; }
th { background: #f0f0f0; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.fail td { background: #fde8e8; }
tr.rejects td { background: #fff6e0; }
.pass { color: #1a7f37; font-weight: bold; }
.fail { color: #b42318; font-weight: bold; }
code { font-size: 0.95em; }
"""


def _verdict(success: bool, row_level: bool = False, unexpected: int = 0) -> str:
    if success:
        return '<span class="pass">pass</span>'
    if row_level and unexpected:
        return '<span class="fail">rows rejected</span>'
    return '<span class="fail">FAIL</span>'


def _suite_table(table: TableValidation) -> str:
    rows = []
    # What failed comes first (table-level failures, then rejecting expectations), then the passes.
    ordered = sorted(table.outcomes, key=lambda o: (o.success, not o.fails_table))
    for outcome in ordered:
        if outcome.error is not None:
            examples = f"could not be evaluated: {escape(outcome.error)}"
        elif outcome.row_level:
            shown = ", ".join(f"row {r}: {escape(v)}" for r, v in zip(outcome.rows, outcome.examples))
            more = outcome.unexpected_count - min(len(outcome.rows), EXAMPLES)
            examples = shown + (f" … and {more} more" if more > 0 else "")
        else:
            examples = "observed " + escape(", ".join(outcome.examples)) if outcome.examples else ""
        css = "" if outcome.success else (' class="rejects"' if outcome.row_level and outcome.error is None
                                          else ' class="fail"')
        rows.append(
            f"<tr{css}><td><code>{escape(outcome.expectation)}</code><br>{escape(outcome.description)}</td>"
            f"<td>{escape(', '.join(outcome.columns)) or '(table)'}</td>"
            f"<td>{_verdict(outcome.success, outcome.row_level, outcome.unexpected_count)}</td>"
            f'<td class="num">{outcome.unexpected_count}</td><td>{examples}</td></tr>')
    return ("<table><thead><tr><th>expectation</th><th>column</th><th>success</th>"
            "<th>unexpected</th><th>examples (0-based row: value)</th></tr></thead><tbody>"
            + "".join(rows) + "</tbody></table>")


def _summary_table(result: ValidationResult) -> str:
    rows = []
    for table in (result.logs, result.catalog):
        rows.append(
            f"<tr><td>{escape(table.name)}</td><td><code>{escape(table.source)}</code></td>"
            f'<td class="num">{table.rows_in}</td><td class="num">{table.rows_passed}</td>'
            f'<td class="num">{table.rows_rejected}</td><td class="num">{table.reject_share:.3%}</td></tr>')
    return ("<table><thead><tr><th>table</th><th>file</th><th>rows in</th><th>passed</th>"
            "<th>rejected</th><th>reject share</th></tr></thead><tbody>" + "".join(rows) + "</tbody></table>")


def _reasons_table(table: TableValidation) -> str:
    reasons = table.rejected_by_reason()
    if not reasons:
        return "<p>No rows rejected.</p>"
    rows = "".join(f'<tr><td><code>{escape(k)}</code></td><td class="num">{v}</td></tr>' for k, v in reasons.items())
    return ("<table><thead><tr><th>reject reason</th><th>rows</th></tr></thead><tbody>" + rows + "</tbody></table>")


def render_report(result: ValidationResult, rejects_dir: str) -> str:
    """The whole HTML page as a string."""
    failures = result.failures()
    status = ('<p class="pass">PASSED</p>' if not failures else
              '<p class="fail">FAILED</p><ul>' + "".join(f"<li>{escape(m)}</li>" for m in failures) + "</ul>")
    sections = []
    for table in (result.logs, result.catalog):
        sections.append(
            f"<h2>Suite: {escape(table.name)}</h2>"
            f"<p>{len(table.outcomes)} expectations on <code>{escape(table.source)}</code>; "
            f"{table.rows_rejected} rejected row(s) are in <code>{escape(rejects_dir)}/{escape(table.name)}.parquet"
            f"</code> with their <code>reject_reason</code>.</p>"
            + _reasons_table(table) + _suite_table(table))
    return (
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<title>liveslate validation report</title>"
        f"<style>{_STYLE}</style></head><body>"
        "<h1>liveslate validation report</h1>"
        f"<p>Great Expectations suites on the interim tables; the stage fails on any table-level "
        f"failure or when more than {result.max_reject_share:.2%} of a table's rows are rejected.</p>"
        + status + _summary_table(result) + "".join(sections) + "</body></html>\n")
