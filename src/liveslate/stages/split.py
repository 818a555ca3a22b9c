"""`liveslate split`: validated logs → artifacts/splits/{train,valid,test}.parquet by time."""

from __future__ import annotations

from pathlib import Path

from liveslate.stages.common import ParamsOption, fail, open_project, read_input_parquet, say


def main(params: ParamsOption = Path("params.yaml")) -> None:
    """Cut the validated logs by time at the fractions of params `split`; no impression crosses a cut."""
    from liveslate.data.split import split_by_time
    from liveslate.schema import LOG_REQUIRED
    from liveslate.io import write_json, write_parquet
    from liveslate.tracking import stage_run

    project = open_project(params)
    source = project.artifacts / "validated" / "logs.parquet"
    logs = read_input_parquet(source, "run `liveslate validate` first", LOG_REQUIRED)
    try:
        parts = split_by_time(logs, project.params.split)
    except ValueError as err:
        fail(str(err))
    out = project.artifacts / "splits"
    summary = {}
    for name, frame in parts.items():
        write_parquet(out / f"{name}.parquet", frame)
        summary[name] = {
            "rows": len(frame),
            "clicks": int(frame["click"].sum()),
            "ts_min": str(frame["ts"].min()) if len(frame) else None,
            "ts_max": str(frame["ts"].max()) if len(frame) else None,
        }
    write_json(project.metrics / "split.json", summary)
    with stage_run(project.root, project.params, "split", project.params.split) as mlflow:
        mlflow.log_metrics({f"{k}_rows": v["rows"] for k, v in summary.items()})
    say("split: " + ", ".join(f"{k} {v['rows']} rows / {v['clicks']} clicks" for k, v in summary.items()))
