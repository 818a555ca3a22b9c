"""`liveslate validate`: artifacts/interim → artifacts/validated + artifacts/rejects, with the GX verdict."""

from __future__ import annotations

from pathlib import Path

from liveslate.stages.common import ParamsOption, fail, open_project, say

TABLES = ("logs", "catalog")


def _shown(path: Path, root: Path) -> str:
    """``path`` relative to the project root when it lies inside it (shorter messages)."""
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


def main(params: ParamsOption = Path("params.yaml")) -> None:
    """Check the interim logs and catalogue with the Great Expectations suites of params `validate`.

    Rows failing a row-level expectation go to artifacts/rejects/ with a `reject_reason`; the others to artifacts/validated/.

    Writes metrics/validation.json and reports/validation.html.

    Exits 1 when a table-level expectation fails (a missing column, a wrong dtype, too few rows).

    Exits 1 when more than validate.max_reject_share of a table's rows are rejected; exits 2 on a bad params file.
    """
    project = open_project(params)  # before the heavy imports: a params typo fails at once

    import pandas as pd

    from liveslate.data.validate import metrics, reject_messages, validate_tables
    from liveslate.data.validation_report import render_report
    from liveslate.io import write_json, write_parquet, write_text
    from liveslate.tracking import stage_run

    interim = project.artifacts / "interim"
    sources = {name: interim / f"{name}.parquet" for name in TABLES}
    frames = {}
    for name, path in sources.items():
        if not path.exists():
            fail(f"{path}: not found; run `liveslate ingest` first")
        try:
            frames[name] = pd.read_parquet(path)
        except (OSError, ValueError) as err:
            fail(f"{path}: not a readable Parquet file: {err}")

    result = validate_tables(frames["logs"], frames["catalog"], project.params.validate,
                             logs_source=_shown(sources["logs"], project.root),
                             catalog_source=_shown(sources["catalog"], project.root))
    tables = {"logs": result.logs, "catalog": result.catalog}

    rejects = project.artifacts / "rejects"
    for name, table in tables.items():
        write_parquet(rejects / f"{name}.parquet", table.rejected)
    report = project.reports / "validation.html"
    write_text(report, render_report(result, _shown(rejects, project.root)))
    summary = metrics(result)
    metrics_path = project.metrics / "validation.json"
    write_json(metrics_path, summary)
    validated = project.artifacts / "validated"
    for name, table in tables.items():
        target = validated / f"{name}.parquet"
        if result.passed:
            write_parquet(target, table.passed)
        elif target.exists():
            # Outputs of an earlier input must not pass for this input's validated data.
            target.unlink()

    with stage_run(project.root, project.params, "validate", project.params.validate,
                   input_paths=tuple(sources.values())) as mlflow:
        mlflow.set_tag("validation_passed", str(result.passed).lower())
        mlflow.log_metrics({
            "rows_in": result.logs.rows_in,
            "rows_passed": result.logs.rows_passed,
            "rows_rejected": result.logs.rows_rejected,
            "reject_share": result.logs.reject_share,
            "catalog_rows_rejected": result.catalog.rows_rejected,
        })
        mlflow.log_artifact(str(report))
        mlflow.log_artifact(str(metrics_path))

    for table in tables.values():
        for line in reject_messages(table):
            say(f"rejected: {line}")
    say(f"validate: logs {result.logs.rows_in} in, {result.logs.rows_passed} passed, "
        f"{result.logs.rows_rejected} rejected; catalogue {result.catalog.rows_in} in, "
        f"{result.catalog.rows_passed} passed, {result.catalog.rows_rejected} rejected → "
        f"{_shown(rejects, project.root)}; report {_shown(report, project.root)}")
    if not result.passed:
        fail("validation failed:\n  " + "\n  ".join(result.failures()))
