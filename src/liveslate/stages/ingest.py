"""`liveslate ingest`: configured sources → artifacts/interim/{logs,catalog}.parquet."""

from __future__ import annotations

from pathlib import Path

from liveslate.stages.common import ParamsOption, fail, open_project, say


def main(params: ParamsOption = Path("params.yaml")) -> None:
    """Read every source in params `ingest.sources` and write canonical logs and catalogue."""
    import datetime as dt

    from liveslate.data.ingest import read_sources
    from liveslate.data.served import read_interval_end
    from liveslate.io import write_json, write_parquet
    from liveslate.tracking import stage_run

    project = open_project(params)
    try:
        # run.yaml (the daily DAG's data interval) bounds the window of served days.
        result = read_sources(project.params.ingest, project.data, project.root,
                              interval_end=read_interval_end(project.root / "run.yaml"),
                              attribution_window=dt.timedelta(minutes=project.params.spool.attribution_window_minutes))
    except (FileNotFoundError, ValueError) as err:
        fail(str(err))
    logs, catalog = result.logs, result.catalog
    out = project.artifacts / "interim"
    canonical_rejects = None
    if result.canonical is not None:
        # Rows of the users' export whose cells do not fit the schema's types, with file, line, reason;
        # checked before the tables are written, so a refused export leaves no new interim tables.
        canonical_rejects = result.canonical.rejects
        write_parquet(out / "canonical_rejects.parquet", canonical_rejects)
        _report_canonical_rejects(canonical_rejects, len(result.canonical.logs) + len(result.canonical.catalog),
                                  out / "canonical_rejects.parquet", project.params.validate.max_reject_share,
                                  stale=(out / "logs.parquet", out / "catalog.parquet"))
    write_parquet(out / "logs.parquet", logs)
    write_parquet(out / "catalog.parquet", catalog)
    if result.served is not None:
        # Served lines that could not become rows, each with its file, line and reason.
        write_parquet(out / "served_rejects.parquet", result.served.rejects)
    summary = {
        "rows": len(logs),
        "impressions": int(logs["impression_id"].nunique()),
        "clicks": int(logs["click"].sum()),
        "items": len(catalog),
        "rows_by_policy": {str(k): int(v) for k, v in logs["policy"].value_counts().sort_index().items()},
    }
    if result.served is not None:
        summary["served"] = result.served.counts
    if canonical_rejects is not None:
        summary["canonical"] = {"rows_rejected": int(len(canonical_rejects)),
                                "files": sorted({str(f) for f in canonical_rejects["file"]})}
    write_json(out / "summary.json", summary)
    with stage_run(project.root, project.params, "ingest", project.params.ingest) as mlflow:
        mlflow.log_metrics({"rows": summary["rows"], "clicks": summary["clicks"], "items": summary["items"]})
    if result.served is not None:
        counts = result.served.counts
        say(f"ingest: served days {counts['days'] or 'none'}: {counts['impressions']} impressions, "
            f"{counts['feedback_used']} feedback events used, {counts['feedback_late']} after the attribution "
            f"window dropped, {counts['lines_rejected']} line(s) rejected → {out / 'served_rejects.parquet'}")
    say(f"ingest: {summary['rows']} rows, {summary['clicks']} clicks, {summary['items']} items → {out}")


def _report_canonical_rejects(rejects, rows_kept: int, path: Path, max_share: float, stale: tuple[Path, ...]) -> None:
    """Name the first rejected rows; fail (exit 1) when they exceed validate.max_reject_share of the export's
    rows (logs and catalogue), as validate does for its own rejects: a mostly unreadable export is not data.
    On failure the ``stale`` tables of an earlier run are removed, so validate cannot pass them for this input."""
    if not len(rejects):
        return
    for record in rejects.head(5).itertuples():
        say(f"rejected: {record.file}: line {record.line}: {record.reason}")
    if len(rejects) > 5:
        say(f"rejected: ... and {len(rejects) - 5} more row(s), all in {path}")
    share = len(rejects) / (len(rejects) + rows_kept)
    if share > max_share:
        for table in stale:
            table.unlink(missing_ok=True)
        fail(f"ingest: {len(rejects)} row(s) of the canonical export ({share:.2%}) do not fit the schema's types, "
             f"above validate.max_reject_share = {max_share:.2%}; see {path}")
