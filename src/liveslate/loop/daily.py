"""Bodies of the daily Airflow tasks (dags/liveslate_daily.py), as plain functions.

Each task is idempotent for its data interval: collect copies a day once, `dvc repro`
re-runs nothing when nothing changed, `select` promotes nothing twice, and publish
commits only when the recorded files changed. Tasks call the project's own command
line tools (`liveslate`, `dvc`, `bentoml`) in the project directory, so a task's
environment is exactly what a person would type.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import yaml

from liveslate.config import load_params
from liveslate.io import write_text
from liveslate.loop.spool import day_closed_at

RUN_PARAMS = "run.yaml"  # the data interval of the current run; written here, read by dvc.yaml
SELECTION = "metrics/selection.json"


class TaskError(RuntimeError):
    """A daily task that cannot go on; the message says why and what was left untouched."""


def command_env() -> dict[str, str]:
    """This process's environment with the interpreter's own bin folder first on PATH.

    `dvc repro` runs the stage commands of dvc.yaml (`liveslate ...`) through a shell, and an
    Airflow worker started as ``.venv/bin/airflow`` (or a test run as ``.venv/bin/python``)
    has not activated the virtual environment, so its PATH may not lead to `liveslate`.
    """
    scripts = str(Path(sys.executable).parent)  # not resolved: a venv's python is a symlink
    path = os.environ.get("PATH", "")
    return {**os.environ, "PATH": os.pathsep.join([scripts, path]) if path else scripts}


def _run(args: list[str], cwd: str | Path, what: str) -> str:
    completed = subprocess.run(args, cwd=cwd, capture_output=True, text=True, env=command_env())
    if completed.returncode != 0:
        tail = (completed.stderr or completed.stdout).strip().splitlines()[-15:]
        raise TaskError(f"{what} failed (exit {completed.returncode}): {' '.join(args)}\n" + "\n".join(tail))
    # The task log keeps what the command said (for dvc repro: the stages that ran and their summaries);
    # progress bars go to stderr and stay out of it.
    print(completed.stdout, end="", flush=True)
    return completed.stdout


def _liveslate(project: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "liveslate.cli", *args, "--params", str(project / "params.yaml")]


def _dvc(*args: str) -> list[str]:
    return [sys.executable, "-m", "dvc", *args]


def data_version(project: Path) -> str:
    spec = yaml.safe_load((project / "data.dvc").read_text())
    return str(spec["outs"][0]["md5"])


def wait_until_closed(day: dt.date, window: dt.timedelta, max_wait: dt.timedelta,
                      now: dt.datetime | None = None) -> None:
    """Sleep until the day is closed, if that is at most ``max_wait`` away; else fail (Airflow retries)."""
    now = now or dt.datetime.now(dt.timezone.utc)
    closes = day_closed_at(day, window)
    if now >= closes:
        return
    if closes - now > max_wait:
        raise TaskError(f"day {day} closes at {closes.isoformat()}, more than {max_wait} from now; retry later")
    time.sleep((closes - now).total_seconds())


def collect(project_dir: str, day: dt.date) -> dict:
    """Copy the closed day into data/served/<day>/ and record the new data version in data.dvc."""
    project = Path(project_dir)
    params = load_params(project / "params.yaml")
    wait_until_closed(day, dt.timedelta(minutes=params.spool.attribution_window_minutes), dt.timedelta(hours=2))
    _run(_liveslate(project, "collect", "--day", day.isoformat()), project, f"collect {day}")
    _run(_dvc("add", "data", "--quiet"), project, "dvc add data")
    return {"day": day.isoformat(), "data_version": data_version(project)}


def write_run_params(project: Path, day: str) -> Path:
    """The interval of this run as the file dvc.yaml reads (never a hand-edited file)."""
    path = project / RUN_PARAMS
    write_text(path, yaml.safe_dump({"run": {"interval_end": day}}, sort_keys=False))
    return path


def retrain(project_dir: str, collected: dict) -> str:
    """Run the whole pipeline for the collected day; return the path of selection.json."""
    project = Path(project_dir)
    write_run_params(project, collected["day"])
    _run(_dvc("repro"), project, f"dvc repro for {collected['day']}")
    selection = project / SELECTION
    if not selection.exists():
        raise TaskError(f"{selection}: the pipeline ran but wrote no selection decision")
    return str(selection)


def gate(selection_path: str) -> bool:
    """True only when select promoted a challenger in this run."""
    decision = json.loads(Path(selection_path).read_text())
    if "promoted" not in decision:
        raise TaskError(f"{selection_path}: no 'promoted' field; expected the select stage's decision")
    return bool(decision["promoted"])


def deploy(project_dir: str) -> str:
    """Start the champion's Bento for staging; return the path of the deployment record."""
    from liveslate.loop.deploy import deploy_staging

    return str(deploy_staging(Path(project_dir)))


def publish(project_dir: str, collected: dict) -> str:
    """Push data to the DVC remote and commit the run's records on the publish branch."""
    from liveslate.loop.publish import publish_run

    project = Path(project_dir)
    params = load_params(project / "params.yaml")
    if params.publish.dvc_push:
        _run(_dvc("push", "--quiet"), project, "dvc push")
    commit = publish_run(project, params.publish.branch, f"liveslate daily: data of {collected['day']}",
                         paths=[*params.publish.paths])
    return commit or ""

