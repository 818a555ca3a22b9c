"""train → evaluate → select → evaluate → select in a temporary project with synthetic splits.

Checks the stage outputs (evaluation.json in exactly the DESIGN.md shape, details with the
registry version behind each trained row, report, plots), that the champion row is the
alias holder loaded back from its registry source (same artefacts and data → the same
numbers as the row of the policy it came from), and that a second select moves nothing.
"""

from __future__ import annotations

import json
import math

import pytest
import yaml
from typer.testing import CliRunner

import evaluation_synthetic as synth
from liveslate.cli import app
from liveslate.evaluation.registry_ops import Registry

ROW_KEYS = {"mrr", "mrr_ci", "hit_at_1", "hit_at_1_ci", "ndcg_at_3", "ndcg_at_3_ci", "ope"}
PARAMS = {
    "seed": 5,
    "tracking": {"experiment": "evaluate-test", "registered_model": "evaluate-test-policy"},
    "validate": {"slate_size": synth.SLATE},
    "train": {"threads": 1, "patience": 2, "bootstrap_resamples": 100,
              "deepfm_nokg": {"use_kg": False, "embedding_dim": 4, "hidden": [8], "dropout": 0.0, "lr": 0.05,
                              "batch_size": 256, "max_epochs": 3}},
    "policies": {"bts_prior": "data/prior_bts.yaml", "bts_mc_samples": 2000},
    "ope": {"primary": "dr", "estimators": ["ips", "snips", "dm", "dr"], "bootstrap_resamples": 100},
    "evaluate": {"policies": ["deepfm", "deepfm_nokg"], "references": ["uniform", "bts_replica", "popularity"],
                 "baseline": "deepfm_nokg", "ope_logging_policies": []},
    "select": {"candidates": ["deepfm", "deepfm_nokg"], "margin": 0.0, "min_ess": 20.0},
}
CTR = [[0.4, 0.2, 0.1, 0.05, 0.02]]


@pytest.fixture
def project(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # MLflow puts run artefacts under ./mlruns
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(PARAMS))
    splits = tmp_path / "artifacts" / "splits"
    splits.mkdir(parents=True)
    for name, seed, rows in (("train", 1, 1500), ("valid", 2, 300), ("test", 3, 1500)):
        synth.logs(CTR, rows, seed=seed).to_parquet(splits / f"{name}.parquet")
    (tmp_path / "artifacts" / "validated").mkdir()
    synth.catalog().to_parquet(tmp_path / "artifacts" / "validated" / "catalog.parquet")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "prior_bts.yaml").write_text(synth.prior_yaml([5, 4, 3, 2, 1], [50] * 5))
    return tmp_path


def invoke(root, *args: str):
    result = CliRunner().invoke(app, [*args, "--params", str(root / "params.yaml")])
    assert result.exit_code == 0, result.output
    return result


def test_evaluate_select_and_the_champion_row(project):
    invoke(project, "train", "--policy", "deepfm_nokg", "--no-progress")
    first = invoke(project, "evaluate")
    assert "skipped deepfm:" in first.output

    evaluation = json.loads((project / "metrics" / "evaluation.json").read_text())
    assert set(evaluation) == {"policies", "logging", "counts"}
    assert list(evaluation["policies"]) == ["deepfm_nokg", "uniform", "bts_replica", "popularity"]
    for name, row in evaluation["policies"].items():
        assert set(row) == ROW_KEYS, name
        assert set(row["ope"]) == {"ips", "snips", "dm", "dr"}
        assert all(set(e) == {"value", "ci_low", "ci_high", "ess"} and all(map(math.isfinite, e.values()))
                   for e in row["ope"].values())
    assert set(evaluation["logging"]) == {"random@sim"} and evaluation["logging"]["random@sim"]["n"] == 1500
    details = json.loads((project / "artifacts" / "evaluation" / "details.json").read_text())
    trained = json.loads((project / "metrics" / "train_deepfm_nokg.json").read_text())
    assert details["versions"] == {"deepfm_nokg": trained["registry"]["version"]}
    assert details["champion"] is None and "deepfm" in details["skipped"]
    html = (project / "reports" / "evaluation.html").read_text()
    assert html.count("data:image/png;base64,") >= 4 and "origin poster" in html and "0.308" in html
    assert {p.name for p in (project / "plots" / "evaluation").iterdir()} >= {"policy_values.png", "per_position.png"}

    selection = json.loads(invoke(project, "select") and (project / "metrics" / "selection.json").read_text())
    version = trained["registry"]["version"]
    assert (selection["champion"], selection["registered_version"], selection["promoted"]) == \
        ("deepfm_nokg", version, True)
    registry = Registry(f"sqlite:///{project / 'mlflow.db'}", "evaluate-test-policy")
    assert registry.champion().version == version

    # The next evaluation re-evaluates the alias holder, loaded from its registry source.
    invoke(project, "evaluate")
    evaluation = json.loads((project / "metrics" / "evaluation.json").read_text())
    details = json.loads((project / "artifacts" / "evaluation" / "details.json").read_text())
    assert details["champion"] == {"version": version, "policy": "deepfm_nokg"}
    assert evaluation["policies"]["champion"] == evaluation["policies"]["deepfm_nokg"]

    again = json.loads(invoke(project, "select") and (project / "metrics" / "selection.json").read_text())
    assert (again["registered_version"], again["previous"], again["promoted"]) == (version, version, False)


def test_evaluate_without_the_test_split_names_it(tmp_path):
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"seed": 1}))
    result = CliRunner().invoke(app, ["evaluate", "--params", str(tmp_path / "params.yaml")])
    assert result.exit_code == 1 and "artifacts/splits/test.parquet: not found" in result.output
