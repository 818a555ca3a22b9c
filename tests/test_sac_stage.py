"""`liveslate train --policy sac` end to end on synthetic splits in a temporary project."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

import policy_synthetic as synth
from liveslate.cli import app
from liveslate.policies.registry import load_policy
from liveslate.policies.sac import SacPolicy

SAC = {"steps": 200, "batch_size": 128, "embedding_dim": 4, "hidden": 16, "actor_lr": 0.003, "critic_lr": 0.01,
       "alpha_lr": 0.01, "tau": 0.05, "eval_every": 50, "use_kg": True}
PARAMS = {"seed": 11, "validate": {"slate_size": 3},
          "train": {"patience": 10, "bootstrap_resamples": 200, "threads": 1, "sac": SAC}}


@pytest.fixture
def project(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # MLflow puts run artefacts under ./mlruns
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(PARAMS))
    splits = tmp_path / "artifacts" / "splits"
    splits.mkdir(parents=True)
    synth.logs(800, seed=1).to_parquet(splits / "train.parquet")
    synth.logs(300, seed=2, start="2024-02-01").to_parquet(splits / "valid.parquet")
    (tmp_path / "artifacts" / "validated").mkdir()
    synth.catalog().to_parquet(tmp_path / "artifacts" / "validated" / "catalog.parquet")
    vectors, ids = synth.item_vectors()
    (tmp_path / "artifacts" / "kg").mkdir()
    np.savez(tmp_path / "artifacts" / "kg" / "item_vectors.npz", vectors=vectors, item_ids=ids)
    return tmp_path


def train(root):
    return CliRunner().invoke(app, ["train", "--policy", "sac", "--params", str(root / "params.yaml"),
                                    "--no-progress"])


def test_sac_stage_saves_the_policy_and_logs_updates_per_second(project):
    result = train(project)
    assert result.exit_code == 0, result.output
    policy = load_policy(project / "artifacts" / "models" / "sac")
    assert isinstance(policy, SacPolicy) and policy.architecture["kg_dim"] == 4

    metrics = json.loads((project / "metrics" / "train_sac.json").read_text())
    training = metrics["training"]
    assert training["updates_per_second"] > 0 and training["steps_run"] <= SAC["steps"]
    assert training["train_transitions"] == 800 and training["terminal_share"] == 1.0
    # The stage's choice log-likelihood of the clicked item uses the actor's scores (log π).
    assert "sac" in metrics["valid_loglik"]["choice"]["policies"]

    curve = pd.read_csv(project / "plots" / "train_sac.csv")
    assert curve.columns[0] == "step" and "updates_per_second" in curve.columns
    assert len(curve) == training["steps_run"] // SAC["eval_every"]

    import mlflow

    history = mlflow.MlflowClient().get_metric_history(metrics["registry"]["run_id"], "updates_per_second")
    assert sorted(m.step for m in history) == curve["step"].tolist()
    assert all(m.value > 0 for m in history)


def test_sac_stage_stops_on_a_nan_reward_naming_the_step_and_term(project):
    train_split = project / "artifacts" / "splits" / "train.parquet"
    logs = pd.read_parquet(train_split)
    logs.loc[5, "reward"] = np.nan
    logs.to_parquet(train_split)
    result = train(project)
    assert result.exit_code == 1
    assert "train sac: step" in result.output and "loss term 'critic_td' is nan" in result.output
