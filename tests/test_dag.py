"""The daily Airflow DAG: thin at parse time, one-day intervals, retries, and a clean failure on an empty day.

Airflow reads its configuration when first imported, so every check that imports it runs
in a fresh interpreter with its own AIRFLOW_HOME.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DAGS = REPO / "dags"


def _airflow_env(tmp_path: Path, project: Path) -> dict:
    return {
        **os.environ,
        "AIRFLOW_HOME": str(tmp_path / "airflow_home"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "LIVESLATE_PROJECT_DIR": str(project),
        "LIVESLATE_DAG_RETRIES": "0",
    }


def _python(code: str, env: dict, timeout: int = 300) -> str:
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=timeout)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


INSPECT = r"""
import datetime as dt, json, sys
from airflow.models.dagbag import DagBag
bag = DagBag(dag_folder=sys.argv[1] if len(sys.argv) > 1 else "dags")
dag = bag.dags["liveslate_daily"]
heavy = [m for m in ("torch", "torch_geometric", "great_expectations", "mlflow", "bentoml", "pandas") if m in sys.modules]
interval = dag.timetable.infer_manual_data_interval(run_after=dt.datetime(2026, 12, 3, 6, 0, tzinfo=dt.timezone.utc))
print(json.dumps({
    "errors": {k: str(v) for k, v in bag.import_errors.items()},
    "heavy": heavy,
    "tasks": {t.task_id: sorted(t.upstream_task_ids) for t in dag.tasks},
    "retries": {t.task_id: t.retries for t in dag.tasks},
    "retry_delay_s": {t.task_id: t.retry_delay.total_seconds() for t in dag.tasks},
    "trigger_rules": {t.task_id: getattr(t.trigger_rule, "value", str(t.trigger_rule)) for t in dag.tasks},
    "timetable": type(dag.timetable).__name__,
    "interval": [interval.start.isoformat(), interval.end.isoformat()],
    "catchup": dag.catchup, "max_active_runs": dag.max_active_runs, "tags": sorted(dag.tags),
    "doc": bool(dag.doc_md),
}))
"""


@pytest.fixture(scope="module")
def dag_facts(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("dagbag")
    env = _airflow_env(tmp, tmp)
    env.pop("LIVESLATE_DAG_RETRIES")  # the shipped default
    return json.loads(_python(INSPECT, env).strip().splitlines()[-1])


def test_dag_imports_cleanly_without_heavy_modules(dag_facts):
    assert dag_facts["errors"] == {}
    assert dag_facts["heavy"] == []


def test_dag_structure(dag_facts):
    assert dag_facts["tasks"] == {
        "collect": [],
        "retrain": ["collect"],
        "gate": ["retrain"],
        "deploy": ["gate"],
        "publish": ["collect", "deploy", "retrain"],
    }
    # publish records the day even when the gate skipped deploy; a failure still stops it
    assert dag_facts["trigger_rules"]["publish"] == "none_failed"


def test_the_data_interval_is_exactly_one_day(dag_facts):
    assert dag_facts["timetable"] == "DeltaDataIntervalTimetable"
    assert dag_facts["interval"] == ["2026-12-02T06:00:00+00:00", "2026-12-03T06:00:00+00:00"]


def test_retries_and_run_settings(dag_facts):
    assert set(dag_facts["retries"].values()) == {2}
    assert min(dag_facts["retry_delay_s"].values()) >= 60
    assert dag_facts["catchup"] is False and dag_facts["max_active_runs"] == 1
    assert "liveslate" in dag_facts["tags"] and dag_facts["doc"]


@pytest.fixture(scope="module")
def airflow_db(tmp_path_factory):
    """One migrated Airflow SQLite database for the dag.test() runs of this module."""
    tmp = tmp_path_factory.mktemp("airflow")
    env = _airflow_env(tmp, tmp)
    done = subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return tmp


def run_dag(airflow_db: Path, project: Path, run_after: str) -> tuple[dict, str]:
    env = _airflow_env(airflow_db, project)
    done = subprocess.run([sys.executable, str(REPO / "tests" / "dag_runner.py"), run_after, str(DAGS)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    log = done.stdout + done.stderr
    lines = [l for l in done.stdout.splitlines() if l.startswith("DAG_RUN_RESULT ")]
    assert lines, log[-3000:]
    return json.loads(lines[-1].removeprefix("DAG_RUN_RESULT ")), log


def test_an_empty_day_fails_at_collect_and_nothing_downstream_runs(airflow_db, tmp_path):
    project = tmp_path / "project"
    (project / "spool" / "2026-12-01").mkdir(parents=True)  # the folder exists, but nothing was served
    (project / "params.yaml").write_text("spool:\n  directory: spool\n")
    result, log = run_dag(airflow_db, project, "2026-12-02T00:00:00+00:00")  # covers 2026-12-01
    assert result["state"] == "failed"
    assert result["tasks"]["collect"] == "failed"
    assert {result["tasks"][t] for t in ("retrain", "gate", "deploy", "publish")} == {"upstream_failed"}
    assert "no impression lines" in log
    assert not (project / "data").exists()
