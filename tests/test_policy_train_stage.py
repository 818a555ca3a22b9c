"""The `liveslate train` stage end to end on synthetic splits in a temporary project."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from typer.testing import CliRunner

import policy_synthetic as synth
from liveslate.cli import app
from liveslate.policies.registry import load_policy

PARAMS = {
    "seed": 11,
    "validate": {"slate_size": 3},
    "train": {
        "patience": 2, "bootstrap_resamples": 200, "threads": 1,
        "deepfm": {"use_kg": True, "embedding_dim": 4, "hidden": [8], "dropout": 0.0, "lr": 0.05,
                   "batch_size": 256, "max_epochs": 3},
        "deepfm_nokg": {"use_kg": False, "embedding_dim": 4, "hidden": [8], "dropout": 0.0, "lr": 0.05,
                        "batch_size": 256, "max_epochs": 3},
    },
}


@pytest.fixture(scope="module")
def tracking_uri(tmp_path_factory):
    """One SQLite tracking store for the module: creating one runs MLflow's migrations (seconds)."""
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"


@pytest.fixture
def project(tmp_path, monkeypatch, tracking_uri):
    monkeypatch.chdir(tmp_path)  # MLflow puts run artefacts under ./mlruns
    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking_uri)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(PARAMS))
    splits = tmp_path / "artifacts" / "splits"
    splits.mkdir(parents=True)
    synth.logs(800, seed=1).to_parquet(splits / "train.parquet")
    synth.logs(300, seed=2, start="2024-02-01").to_parquet(splits / "valid.parquet")
    (tmp_path / "artifacts" / "validated").mkdir()
    synth.catalog().to_parquet(tmp_path / "artifacts" / "validated" / "catalog.parquet")
    return tmp_path


def write_vectors(root) -> None:
    vectors, ids = synth.item_vectors()
    (root / "artifacts" / "kg").mkdir(parents=True, exist_ok=True)
    np.savez(root / "artifacts" / "kg" / "item_vectors.npz", vectors=vectors, item_ids=ids)


def train(root, policy: str):
    return CliRunner().invoke(app, ["train", "--policy", policy, "--params", str(root / "params.yaml"),
                                    "--no-progress"])


def test_train_stage_writes_model_metrics_curves_and_registers(project):
    write_vectors(project)
    result = train(project, "deepfm")
    assert result.exit_code == 0, result.output
    model_dir = project / "artifacts" / "models" / "deepfm"
    assert sorted(p.name for p in model_dir.iterdir()) == ["config.json", "encoders.json", "weights.pt"]
    policy = load_policy(model_dir)
    assert policy.name == "deepfm" and policy.net.kg_projection is not None

    metrics = json.loads((project / "metrics" / "train_deepfm.json").read_text())
    valid = pd.read_parquet(project / "artifacts" / "splits" / "valid.parquet")
    loglik = metrics["valid_loglik"]
    assert loglik["n_clicks"] == int(valid["click"].sum()) == metrics["rows"]["valid_clicks"]
    # Uniform over a room's 6 items: log(1/6) on every clicked row, so the interval is a point.
    uniform = loglik["choice"]["policies"]["uniform"]
    assert uniform["value"] == pytest.approx(-math.log(6)) == uniform["ci_low"] == pytest.approx(uniform["ci_high"])
    deepfm = loglik["choice"]["policies"]["deepfm"]
    assert deepfm["ci_low"] <= deepfm["value"] <= deepfm["ci_high"]
    difference = loglik["choice"]["difference"]["deepfm_minus_uniform"]
    assert difference["value"] == pytest.approx(deepfm["value"] + math.log(6))
    assert set(loglik["click"]["policies"]) == {"deepfm", "popularity", "base_rate"}

    curve = pd.read_csv(project / "plots" / "train_deepfm.csv")
    assert list(curve.columns) == ["step", "epoch", "train_loss", "valid_loss"]
    assert len(curve) == metrics["training"]["epochs_run"]

    import mlflow

    client = mlflow.MlflowClient()
    version = client.get_model_version("liveslate-policy", metrics["registry"]["version"])
    assert version.tags["policy"] == "deepfm"
    assert {"data_hash", "input_hash", "git_commit"} <= set(version.tags)
    downloaded = mlflow.artifacts.download_artifacts(f"models:/liveslate-policy/{version.version}",
                                                     dst_path=str(project / "download"))
    reloaded = load_policy(downloaded)
    for key, tensor in policy.net.state_dict().items():
        assert torch.equal(tensor, reloaded.net.state_dict()[key])


def test_rerun_gives_identical_numbers_and_a_new_version(project):
    write_vectors(project)
    assert train(project, "deepfm_nokg").exit_code == 0
    first = json.loads((project / "metrics" / "train_deepfm_nokg.json").read_text())
    weights = torch.load(project / "artifacts" / "models" / "deepfm_nokg" / "weights.pt", weights_only=True)
    import shutil

    shutil.rmtree(project / "artifacts" / "checkpoints")  # a fresh run, not a resume
    assert train(project, "deepfm_nokg").exit_code == 0
    second = json.loads((project / "metrics" / "train_deepfm_nokg.json").read_text())
    again = torch.load(project / "artifacts" / "models" / "deepfm_nokg" / "weights.pt", weights_only=True)
    assert int(second["registry"]["version"]) == int(first["registry"]["version"]) + 1
    first.pop("registry"), second.pop("registry")
    assert first == second
    assert all(torch.equal(weights[k], again[k]) for k in weights)


def test_missing_kg_vectors_is_a_clear_error(project):
    result = train(project, "deepfm")
    assert result.exit_code == 1
    assert "item_vectors.npz: KG item vectors not found" in result.output
    assert "use_kg: false" in result.output


def test_kg_vectors_missing_an_item_are_rejected(project):
    vectors, ids = synth.item_vectors()
    (project / "artifacts" / "kg").mkdir(parents=True)
    np.savez(project / "artifacts" / "kg" / "item_vectors.npz", vectors=vectors[1:], item_ids=ids[1:])
    result = train(project, "deepfm")
    assert result.exit_code == 1 and f"no vector for 1 item(s) of the catalogue, e.g. ['{ids[0]}']" in result.output


def test_unknown_policy_and_bad_params_are_rejected(project):
    result = train(project, "xgboost")
    assert result.exit_code == 2 and "not a trainable policy" in result.output
    bad = dict(PARAMS, train={**PARAMS["train"], "deepfm": {**PARAMS["train"]["deepfm"], "dropout": 1.5}})
    (project / "params.yaml").write_text(yaml.safe_dump(bad))
    result = train(project, "deepfm")
    assert result.exit_code == 2 and "train.deepfm.dropout" in result.output
