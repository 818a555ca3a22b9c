"""evaluate and select refuse unreadable inputs with the file named (exit 1), not a traceback."""

from pathlib import Path

from typer.testing import CliRunner

from liveslate.cli import app


def _project(tmp_path: Path) -> Path:
    params = tmp_path / "params.yaml"
    params.write_text("seed: 1\n")
    return params


def test_evaluate_names_a_garbage_test_split(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    params = _project(tmp_path)
    splits = tmp_path / "artifacts" / "splits"
    splits.mkdir(parents=True)
    (splits / "test.parquet").write_bytes(b"this is not parquet")
    result = CliRunner().invoke(app, ["evaluate", "--params", str(params)])
    assert result.exit_code == 1, result.output
    assert "test.parquet" in result.output
    assert "Traceback" not in result.output


def test_select_names_an_evaluation_file_that_is_not_json(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    params = _project(tmp_path)
    (tmp_path / "metrics").mkdir()
    (tmp_path / "metrics" / "evaluation.json").write_text('{"policies": {"sac": ')
    details = tmp_path / "artifacts" / "evaluation"
    details.mkdir(parents=True)
    (details / "details.json").write_text("{}")
    result = CliRunner().invoke(app, ["select", "--params", str(params)])
    assert result.exit_code == 1, result.output
    assert "evaluation.json" in result.output and "not valid JSON" in result.output
