"""liveslate daily retrain: collect yesterday's served logs, rebuild with DVC, deploy if promoted.

This file only builds operators. It imports nothing heavy (no torch, pandas, Great
Expectations, MLflow or BentoML) and does no I/O at parse time: every task body is a
function in ``liveslate.loop.daily``, imported when the task runs. The pipeline graph
itself lives in ``dvc.yaml``; this DAG only runs ``dvc repro`` for one data interval.
"""

from __future__ import annotations

import datetime as dt
import os

from airflow.sdk import DAG, task
from airflow.timetables.interval import DeltaDataIntervalTimetable

# The project directory (where params.yaml and dvc.yaml live); by default the repo above dags/.
PROJECT_DIR = os.environ.get("LIVESLATE_PROJECT_DIR", os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

DOC = """
### liveslate daily retrain

One run per UTC day (data interval = that day, explicitly one day long). A run triggered by hand
at time T covers the day before T: `airflow dags test liveslate_daily 2026-12-03` processes 2026-12-02.

1. **collect** — wait until the day is closed (its end + the attribution window), check that its spool
   folder is not empty, copy it into `data/served/<day>/`, merge the catalogue snapshot, `dvc add data`.
2. **retrain** — write `run.yaml` (the interval, read by `dvc.yaml`) and run `dvc repro`; `select`
   decides inside the pipeline whether the challenger replaces the champion.
3. **gate** — read `metrics/selection.json`; stop here unless `promoted`.
4. **deploy** — start the new Bento on 127.0.0.1, stop the old one only after the new one is ready,
   record it in `artifacts/deploy/staging.json` (the previous one is kept for rollback).
5. **publish** — `dvc push` to the configured remote and commit `dvc.lock`, `data.dvc`, `run.yaml`
   and `metrics/` on the publish branch.

Only paths and small JSON records travel through XCom.
"""

default_args = {
    "owner": "liveslate",
    # Tests set LIVESLATE_DAG_RETRIES=0 so that a planned failure ends the run at once.
    "retries": int(os.environ.get("LIVESLATE_DAG_RETRIES", "2")),
    "retry_delay": dt.timedelta(minutes=10),
}

with DAG(
    dag_id="liveslate_daily",
    description="Daily retrain of the liveslate slate policy on the latest closed day of served logs",
    # An explicit one-day interval: the run for day D covers [D 00:00, D+1 00:00) UTC, whatever
    # this Airflow version makes of cron strings.
    schedule=DeltaDataIntervalTimetable(dt.timedelta(days=1)),
    start_date=dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc),
    catchup=False,
    max_active_runs=1,
    default_args=default_args,
    tags=["liveslate", "retrain", "mlops"],
    doc_md=DOC,
) as dag:

    @task(task_id="collect")
    def collect(data_interval_start=None) -> dict:
        from liveslate.loop import daily

        return daily.collect(PROJECT_DIR, data_interval_start.date())

    @task(task_id="retrain")
    def retrain(collected: dict) -> str:
        from liveslate.loop import daily

        return daily.retrain(PROJECT_DIR, collected)

    # Only deploy is skipped when nothing was promoted; publish still records the day's data and metrics.
    @task.short_circuit(task_id="gate", ignore_downstream_trigger_rules=False)
    def gate(selection_path: str) -> bool:
        from liveslate.loop import daily

        return daily.gate(selection_path)

    @task(task_id="deploy")
    def deploy() -> str:
        from liveslate.loop import daily

        return daily.deploy(PROJECT_DIR)

    @task(task_id="publish", trigger_rule="none_failed")
    def publish(collected: dict) -> str:
        from liveslate.loop import daily

        return daily.publish(PROJECT_DIR, collected)

    collected = collect()
    selection = retrain(collected)
    decision = gate(selection)
    deployed = deploy()
    published = publish(collected)
    decision >> deployed >> published
    selection >> published
