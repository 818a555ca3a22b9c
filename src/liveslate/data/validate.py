"""The validate stage's logic: run the GX suites, split rows into passed and rejected.

``validate_tables(logs, catalog, config)`` validates the catalogue first, then the logs
against the *accepted* catalogue (a rejected item makes its log rows unknown items).
Row-level expectations flag rows by index (GX ``result_format="COMPLETE"`` gives
``unexpected_index_list``); each flagged row is rejected with every reason that flagged it.
Table-level expectations (column present, dtype, row count) and a reject share above
``config.max_reject_share`` fail the validation as a whole.

GX runs in an ephemeral context: nothing is written to disk, no project folder exists.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from liveslate.config import ValidateConfig
from liveslate.data.expectations import (
    SuiteSpec,
    catalog_expectations,
    log_expectations,
    prepare_logs,
)

_RUNS = itertools.count()
REJECT_REASON = "reject_reason"
SOURCE_ROW = "source_row"
# How many flagged rows and values a message or the report shows per expectation.
EXAMPLES = 5


@dataclass(frozen=True)
class ExpectationOutcome:
    """One expectation's verdict on one table.

    ``key`` names the expectation and its columns, e.g.
    ``expect_column_values_to_be_between(propensity)``; it is the reject reason.
    ``rows`` are 0-based row numbers of the input table; ``examples`` the first unexpected
    values (row-level) or the observed value (table-level), as text.
    """

    key: str
    expectation: str
    columns: tuple[str, ...]
    description: str
    row_level: bool
    success: bool
    unexpected_count: int
    rows: tuple[int, ...]
    examples: tuple[str, ...]
    error: str | None = None

    @property
    def fails_table(self) -> bool:
        """A failure no row-level reject can repair: the table is unusable."""
        return not self.success and (not self.row_level or self.error is not None)


@dataclass(frozen=True)
class TableValidation:
    """The suite's verdict on one table: its rows split into passed and rejected."""

    name: str
    source: str
    rows_in: int
    outcomes: tuple[ExpectationOutcome, ...]
    passed: pd.DataFrame = field(repr=False)
    # The rejected rows: original columns + ``source_row`` + ``reject_reason`` ("; "-joined keys).
    rejected: pd.DataFrame = field(repr=False)
    # The column that identifies a row to a person (impression_id, item_id), shown in messages.
    id_column: str | None = None

    @property
    def rows_rejected(self) -> int:
        return len(self.rejected)

    @property
    def rows_passed(self) -> int:
        return len(self.passed)

    @property
    def reject_share(self) -> float:
        return self.rows_rejected / self.rows_in if self.rows_in else 0.0

    @property
    def table_failures(self) -> list[ExpectationOutcome]:
        return [o for o in self.outcomes if o.fails_table]

    def rejected_by_reason(self) -> dict[str, int]:
        """Rows flagged by each row-level expectation (a row with two reasons counts in both)."""
        return {o.key: o.unexpected_count for o in self.outcomes if o.row_level and o.unexpected_count}


@dataclass(frozen=True)
class ValidationResult:
    """The verdict on both tables; the stage passes when ``failures()`` is empty."""

    logs: TableValidation
    catalog: TableValidation
    max_reject_share: float

    def failures(self) -> list[str]:
        """Why the validation fails as a whole, one sentence per cause; empty when it passes."""
        messages: list[str] = []
        for table in (self.catalog, self.logs):
            messages += _table_failure_messages(table)
            if table.reject_share > self.max_reject_share:
                messages.append(
                    f"{table.source}: {table.rows_rejected} of {table.rows_in} rows rejected "
                    f"({table.reject_share:.2%}), above validate.max_reject_share = {self.max_reject_share:.2%}")
        return messages

    @property
    def passed(self) -> bool:
        return not self.failures()


def _table_failure_messages(table: TableValidation) -> list[str]:
    missing = {o.columns[0] for o in table.outcomes
               if o.expectation == "expect_column_to_exist" and not o.success}
    messages = []
    for outcome in table.table_failures:
        # Whatever else fails on a missing column adds nothing to "the column is missing".
        if outcome.expectation != "expect_column_to_exist" and missing.intersection(outcome.columns):
            continue
        if outcome.expectation == "expect_column_to_exist":
            detail = "the column is missing"
        elif outcome.error is not None:
            detail = f"could not be evaluated: {outcome.error}"
        else:
            detail = f"observed {', '.join(outcome.examples) or 'nothing'}"
        where = f"column {', '.join(outcome.columns)}" if outcome.columns else "table"
        messages.append(f"{table.source}: {where}: expected {outcome.description} "
                        f"[{outcome.key}], {detail} (all {table.rows_in} rows)")
    return messages


def reject_messages(table: TableValidation) -> list[str]:
    """One line per row-level expectation that rejected rows: file, column, rows, values.

    Rows are 0-based row numbers of the input file, followed by the rows' ``id_column``
    values (ingest sorts rows by time, so the id is what finds a row in the source export).
    """
    ids = {}
    if table.id_column is not None and table.id_column in table.rejected.columns:
        ids = dict(zip(table.rejected[SOURCE_ROW], table.rejected[table.id_column].astype("string")))
    lines = []
    for outcome in table.outcomes:
        if not outcome.row_level or not outcome.unexpected_count or outcome.error is not None:
            continue
        more = ", ..." if len(outcome.rows) > EXAMPLES else ""
        rows = ", ".join(map(str, outcome.rows[:EXAMPLES])) + more
        named = ", ".join(str(ids.get(r)) for r in outcome.rows[:EXAMPLES]) + more
        who = f"; {table.id_column} {named}" if ids else ""
        lines.append(f"{table.source}: column {', '.join(outcome.columns)}: {outcome.unexpected_count} row(s) "
                     f"rejected, expected {outcome.description} [{outcome.key}]: rows {rows} (0-based{who}); "
                     f"values {', '.join(outcome.examples)}")
    return lines


# --------------------------------------------------------------------------- GX


def gx_context() -> Any:
    """An ephemeral GX context (in memory only) without progress bars."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    return context


def _columns_of(kwargs: dict[str, Any]) -> tuple[str, ...]:
    if "column" in kwargs:
        return (kwargs["column"],)
    if "column_A" in kwargs:
        return (kwargs["column_A"], kwargs["column_B"])
    if "column_list" in kwargs:
        return tuple(kwargs["column_list"])
    return ()


def _as_text(value: Any) -> str:
    if isinstance(value, dict):
        return "(" + ", ".join(f"{k}={v}" for k, v in value.items()) + ")"
    return repr(value) if isinstance(value, str) else str(value)


def _exception_message(info: Any) -> str | None:
    """The first error GX caught while evaluating an expectation, else None.

    GX 1.x reports it either flat ({"raised_exception": ...}) or keyed by the metric that failed.
    """
    if not isinstance(info, dict) or not info:
        return None
    entries = [info] if "raised_exception" in info else [v for v in info.values() if isinstance(v, dict)]
    for entry in entries:
        if entry.get("raised_exception"):
            return str(entry.get("exception_message") or "unknown error").splitlines()[0]
    return None


def _is_row_level(expectation: Any) -> bool:
    from great_expectations.expectations.expectation import (
        ColumnMapExpectation,
        ColumnPairMapExpectation,
        MulticolumnMapExpectation,
    )

    return isinstance(expectation, (ColumnMapExpectation, ColumnPairMapExpectation, MulticolumnMapExpectation))


def run_suite(context: Any, frame: pd.DataFrame, spec: SuiteSpec) -> list[ExpectationOutcome]:
    """Validate ``frame`` (RangeIndex) with the expectations of ``spec``; outcomes in suite order."""
    import great_expectations as gx

    # A context may validate several frames; each run gets its own names in it.
    run_name = f"liveslate_{spec.name}_{next(_RUNS)}"
    source = context.data_sources.add_pandas(run_name)
    batch_definition = source.add_dataframe_asset(spec.name).add_batch_definition_whole_dataframe(spec.name)
    suite = context.suites.add(gx.ExpectationSuite(name=run_name, expectations=list(spec.expectations)))
    batch = batch_definition.get_batch(batch_parameters={"dataframe": frame})
    result = batch.validate(suite, result_format={"result_format": "COMPLETE"})
    by_id = {r.expectation_config.id: r for r in result.results}
    outcomes = []
    for expectation in suite.expectations:
        verdict = by_id[expectation.id]
        kwargs = verdict.expectation_config.kwargs
        columns = _columns_of(kwargs)
        kind = verdict.expectation_config.type
        details = verdict.result or {}
        error = _exception_message(verdict.exception_info)
        row_level = _is_row_level(expectation)
        if row_level:
            rows = tuple(int(i) for i in details.get("unexpected_index_list") or ())
            examples = tuple(_as_text(v) for v in (details.get("unexpected_list") or ())[:EXAMPLES])
            count = int(details.get("unexpected_count") or 0)
        else:
            # A table-level verdict flags no row: the table as a whole is judged.
            rows, count = (), 0
            observed = details.get("observed_value")
            examples = () if observed is None else (str(observed),)
        outcomes.append(ExpectationOutcome(
            key=f"{kind}({', '.join(columns)})" if columns else kind,
            expectation=kind, columns=columns, description=expectation.description or kind,
            row_level=row_level, success=bool(verdict.success), unexpected_count=count,
            rows=rows, examples=examples, error=error))
    return outcomes


def split_rows(frame: pd.DataFrame, outcomes: list[ExpectationOutcome]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(passed, rejected): rejected rows keep their columns plus ``source_row`` and ``reject_reason``.

    ``frame`` has a RangeIndex, so GX's row indices are positions in it.
    """
    reasons: dict[int, list[str]] = {}
    for outcome in outcomes:
        if outcome.row_level and outcome.error is None:
            for row in outcome.rows:
                reasons.setdefault(row, []).append(outcome.key)
    flagged = sorted(reasons)
    keep = pd.Series(True, index=frame.index)
    keep.iloc[flagged] = False
    rejected = frame.iloc[flagged].copy()
    rejected.insert(len(rejected.columns), SOURCE_ROW, pd.Series(flagged, index=rejected.index, dtype="int64"))
    rejected.insert(len(rejected.columns), REJECT_REASON,
                    pd.Series(["; ".join(reasons[r]) for r in flagged], index=rejected.index, dtype="string"))
    return frame[keep.to_numpy()].reset_index(drop=True), rejected.reset_index(drop=True)


def validate_table(context: Any, source: str, original: pd.DataFrame, prepared: pd.DataFrame,
                   spec: SuiteSpec, id_column: str | None = None) -> TableValidation:
    """Run ``spec`` on ``prepared`` (``original`` plus derived columns) and split ``original``'s rows."""
    outcomes = run_suite(context, prepared, spec)
    passed, rejected = split_rows(original.reset_index(drop=True), outcomes)
    return TableValidation(name=spec.name, source=source, rows_in=len(original), outcomes=tuple(outcomes),
                           passed=passed, rejected=rejected, id_column=id_column)


def validate_tables(logs: pd.DataFrame, catalog: pd.DataFrame, config: ValidateConfig,
                    logs_source: str = "logs", catalog_source: str = "catalog") -> ValidationResult:
    """Validate the catalogue, then the logs against the accepted catalogue.

    ``logs_source`` / ``catalog_source`` name the input files in messages.
    """
    context = gx_context()
    catalog = catalog.reset_index(drop=True)
    catalog_result = validate_table(context, catalog_source, catalog, catalog,
                                    catalog_expectations(config, catalog), id_column="item_id")
    accepted = catalog_result.passed
    items = accepted["item_id"].dropna().astype(str).tolist() if "item_id" in accepted.columns else []
    logs = logs.reset_index(drop=True)
    prepared = prepare_logs(logs, accepted)
    logs_result = validate_table(context, logs_source, logs, prepared,
                                 log_expectations(config, prepared, items), id_column="impression_id")
    return ValidationResult(logs=logs_result, catalog=catalog_result, max_reject_share=config.max_reject_share)


def metrics(result: ValidationResult) -> dict[str, Any]:
    """metrics/validation.json: rows in / passed / rejected (by reason) and each expectation's verdict."""

    def table(t: TableValidation) -> dict[str, Any]:
        return {
            "source": t.source,
            "rows_in": t.rows_in,
            "rows_passed": t.rows_passed,
            "rows_rejected": t.rows_rejected,
            "reject_share": t.reject_share,
            "rejected_by_reason": t.rejected_by_reason(),
            # each expectation's verdict; its flagged-row count is in rejected_by_reason
            "expectations": {o.key: o.success for o in t.outcomes},
        }

    return {
        "passed": result.passed,
        "rows_in": result.logs.rows_in,
        "rows_passed": result.logs.rows_passed,
        "rows_rejected": result.logs.rows_rejected,
        "logs": table(result.logs),
        "catalog": table(result.catalog),
        "failures": result.failures(),
    }
