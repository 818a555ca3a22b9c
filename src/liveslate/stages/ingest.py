"""`liveslate ingest`: configured sources → artifacts/interim/{logs,catalog}.parquet."""

from __future__ import annotations

from pathlib import Path

from liveslate.stages.common import ParamsOption, fail, open_project, say


def main(params: ParamsOption = Path("params.yaml")) -> None:
    """Read every source in params `ingest.sources` and write canonical logs and catalogue."""
    from liveslate.data.ingest import ingest
    from liveslate.io import write_json, write_parquet
    from liveslate.tracking import stage_run

    project = open_project(params)
    try:
        logs, catalog = ingest(project.params.ingest, project.data, project.root)
    except (FileNotFoundError, ValueError) as err:
        fail(str(err))
    out = project.artifacts / "interim"
    write_parquet(out / "logs.parquet", logs)
    write_parquet(out / "catalog.parquet", catalog)
    summary = {
        "rows": len(logs),
        "impressions": int(logs["impression_id"].nunique()),
        "clicks": int(logs["click"].sum()),
        "items": len(catalog),
        "rows_by_policy": {str(k): int(v) for k, v in logs["policy"].value_counts().sort_index().items()},
    }
    write_json(out / "summary.json", summary)
    with stage_run(project.root, project.params, "ingest", project.params.ingest) as mlflow:
        mlflow.log_metrics({"rows": summary["rows"], "clicks": summary["clicks"], "items": summary["items"]})
    say(f"ingest: {summary['rows']} rows, {summary['clicks']} clicks, {summary['items']} items → {out}")
