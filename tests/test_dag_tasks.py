"""The daily DAG's task bodies (liveslate.loop.daily) on their own, without Airflow."""

from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path

import pytest
import yaml

from liveslate.loop import daily


def test_commands_find_the_venv_tools_when_the_venv_is_not_activated(tmp_path, monkeypatch):
    # An Airflow worker started as .venv/bin/airflow has the system PATH only; `dvc repro` then runs
    # the stage commands (`liveslate ...`) through a shell, which must still find them.
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    found = daily._run(["sh", "-c", "command -v liveslate; command -v dvc"], tmp_path, "look-up").split()
    assert [Path(p) for p in found] == [Path(sys.executable).parent / "liveslate", Path(sys.executable).parent / "dvc"]


def test_a_command_s_output_goes_to_the_task_log(tmp_path, capsys):
    assert daily._run(["sh", "-c", "echo stage ran; echo progress >&2"], tmp_path, "echo") == "stage ran\n"
    assert capsys.readouterr().out == "stage ran\n"


def test_a_failing_command_names_itself_and_its_last_lines(tmp_path):
    with pytest.raises(daily.TaskError, match=r"(?s)look-up failed \(exit 3\): sh -c .*the reason"):
        daily._run(["sh", "-c", "echo the reason >&2; exit 3"], tmp_path, "look-up")


def test_run_params_hold_the_day_as_a_string(tmp_path):
    # DVC records params in dvc.lock as JSON: an unquoted YAML date would load as a date and fail there.
    path = daily.write_run_params(tmp_path, "2026-12-01")
    assert yaml.safe_load(path.read_text()) == {"run": {"interval_end": "2026-12-01"}}


@pytest.mark.parametrize(("decision", "expected"), [({"promoted": True}, True), ({"promoted": False}, False)])
def test_gate_follows_the_selection(tmp_path, decision, expected):
    path = tmp_path / "selection.json"
    path.write_text(json.dumps({"champion": "deepfm", **decision}))
    assert daily.gate(str(path)) is expected


def test_gate_refuses_a_selection_without_a_decision(tmp_path):
    path = tmp_path / "selection.json"
    path.write_text(json.dumps({"champion": "deepfm"}))
    with pytest.raises(daily.TaskError, match="no 'promoted' field"):
        daily.gate(str(path))


def test_waiting_for_a_day_that_closes_too_late_fails_for_a_retry():
    now = dt.datetime(2026, 12, 2, 12, tzinfo=dt.timezone.utc)
    with pytest.raises(daily.TaskError, match="closes at 2026-12-03T00:30:00"):
        daily.wait_until_closed(dt.date(2026, 12, 2), dt.timedelta(minutes=30), dt.timedelta(hours=2), now=now)
    daily.wait_until_closed(dt.date(2026, 12, 1), dt.timedelta(minutes=30), dt.timedelta(hours=2), now=now)
