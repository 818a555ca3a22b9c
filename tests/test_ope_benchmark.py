"""The ope-benchmark stage on a sub-sample of the real Open Bandit logs (small params profile)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from liveslate.cli import app
from liveslate.config import IngestConfig, ObdConfig
from liveslate.data.ingest import ingest
from liveslate.io import write_parquet

REPO = Path(__file__).resolve().parents[1]
OBD = REPO / "data" / "obd"
ROWS = 1500
ESTIMATORS = ["ips", "clipped_ips", "snips", "dm", "dr", "sndr", "switch_dr", "dros"]

pytestmark = pytest.mark.skipif(not (OBD / "bts" / "all" / "all.csv").exists(), reason="OBD sample not fetched")


def project(tmp_path: Path, **ope_overrides) -> Path:
    ope = {"bootstrap_resamples": 100, "benchmark": {"campaign": "all", "resamples": 30, "slate_size": 3}}
    ope.update(ope_overrides)
    params = {
        "seed": 7,
        "paths": {"data": str(REPO / "data")},
        "ingest": {"obd": {"campaigns": ["all"], "policies": ["random", "bts"], "max_rows_per_file": ROWS}},
        "policies": {"bts_prior": str(OBD / "prior_bts.yaml"), "bts_mc_samples": 5000},
        "ope": ope,
    }
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    return path


def validated_sample(tmp_path: Path) -> None:
    """Equivalent of the validate stage's output for the first ROWS rows of each `all` log."""
    logs, catalog = ingest(IngestConfig(obd=ObdConfig(campaigns=("all",), policies=("random", "bts"),
                                                       max_rows_per_file=ROWS)), REPO / "data", REPO)
    write_parquet(tmp_path / "artifacts" / "validated" / "logs.parquet", logs)
    write_parquet(tmp_path / "artifacts" / "validated" / "catalog.parquet", catalog)


@pytest.mark.slow
def test_stage_writes_relative_errors_against_the_on_policy_truth(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    validated_sample(tmp_path)
    result = CliRunner().invoke(app, ["ope-benchmark", "--params", str(project(tmp_path))])
    assert result.exit_code == 0, result.output
    payload = json.loads((tmp_path / "metrics" / "ope_benchmark.json").read_text())
    raw = {p: pd.read_csv(OBD / p / "all" / "all.csv", nrows=ROWS) for p in ("random", "bts")}

    # Ground truths are the on-policy mean clicks, read here straight from the CSV files.
    bts, uniform = payload["directions"]["bts_from_random"], payload["directions"]["uniform_from_bts"]
    assert bts["ground_truth"]["value"] == pytest.approx(raw["bts"]["click"].mean())
    assert uniform["ground_truth"]["value"] == pytest.approx(raw["random"]["click"].mean())
    assert bts["ground_truth"]["n"] == ROWS and bts["n_rows"] == ROWS
    assert bts["reward_model"]["folds"] == 2

    # IPS of the uniform policy on the BTS logs, by hand: mean(click · (1/80) / propensity).
    by_hand = float((raw["bts"]["click"] * (1 / 80) / raw["bts"]["propensity_score"]).mean())
    assert uniform["estimators"]["ips"]["value"] == pytest.approx(by_hand)

    for direction in payload["directions"].values():
        truth = direction["ground_truth"]["value"]
        assert list(direction["estimators"]) == ESTIMATORS
        for name, r in direction["estimators"].items():
            assert np.isfinite([r["value"], r["ci_low"], r["ci_high"], r["relative_error_mean"],
                                r["relative_error_std"]]).all(), name
            assert r["relative_error_mean"] >= 0 and r["relative_error_std"] >= 0
            assert r["relative_error_full_sample"] == pytest.approx(abs(r["value"] - truth) / truth)
            assert r["ci_low"] <= r["value"] <= r["ci_high"]
    assert payload["resamples"] == 30 and payload["primary"] == "dr"
    assert len(payload["replica_vs_bts_logs"]["total_variation_by_position"]) == 3
    page = (tmp_path / "reports" / "ope_benchmark.html").read_text()
    assert "bts_from_random" in page and "uniform_from_bts" in page and page.count("<tr>") >= 3 * (len(ESTIMATORS) + 1)


def test_missing_validated_logs_are_named(tmp_path):
    result = CliRunner().invoke(app, ["ope-benchmark", "--params", str(project(tmp_path))])
    assert result.exit_code == 1
    assert "artifacts/validated/logs.parquet: not found; run `liveslate validate` first" in result.output


@pytest.mark.parametrize("overrides, message", [
    ({"primary": "dm", "estimators": ["ips", "dr"]}, "ope.primary: expected one of ope.estimators"),
    ({"benchmark": {"resamples": 10}}, "ope.benchmark.resamples: expected >= 30"),
    ({"clip_max_weight": -1.0}, "ope.clip_max_weight: expected a positive finite number"),
    ({"estimators": ["ips", "magic"]}, r"ope.estimators\[1\]: expected one of"),
    ({"reward_model": {"folds": 1}}, "ope.reward_model.folds: cross-fitting needs K >= 2"),
])
def test_bad_ope_params_are_rejected_with_the_key_named(tmp_path, overrides, message):
    result = CliRunner().invoke(app, ["ope-benchmark", "--params", str(project(tmp_path, **overrides))])
    assert result.exit_code == 2
    assert re.search(message, result.output), result.output
