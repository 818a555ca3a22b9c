"""Rolling-origin backtest on tiny synthetic multi-day logs with planted effects.

- A stable effect (item 0 clicked far more than the rest every day): popularity fitted on
  the past ranks it first, so it beats uniform random, whose MRR is exactly H_5 / 5.
- A reversal (item 0 best on the training day, item 4 best on the test day): a backtest
  that trains only on the past ranks the test day's winner last, so popularity falls
  below uniform; one that leaked the test day into training would rank it first.
- A learned policy (DeepFM without KG, a few epochs) retrains on every fold.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

import evaluation_synthetic as synth
from liveslate.cli import app
from liveslate.config import ConfigError, Params, from_mapping
from liveslate.evaluation.backtest import budget_params, day_folds, run_backtest
from liveslate.schema import item_index

UNIFORM_MRR = sum(1 / r for r in range(1, 6)) / 5
STABLE = [0.45, 0.05, 0.05, 0.05, 0.05]


def params(**backtest) -> Params:
    return from_mapping(Params, {
        "seed": 2,
        "validate": {"slate_size": synth.SLATE},
        "policies": {"popularity_prior_impressions": 0.0, "bts_mc_samples": 1000},
        "ope": {"primary": "dr", "estimators": ["dr"], "bootstrap_resamples": 200},
        "evaluate": {"ope_logging_policies": []},
        "train": {"threads": 1, "patience": 2,
                  "deepfm_nokg": {"use_kg": False, "embedding_dim": 4, "hidden": [8], "dropout": 0.0, "lr": 0.05,
                                  "batch_size": 128, "max_epochs": 30}},
        "backtest": {"policies": [], "references": ["uniform", "popularity"], "min_train_days": 1, **backtest},
    })


def run(logs, p: Params, tmp_path):
    catalog = synth.catalog()
    prior = tmp_path / "prior.yaml"
    prior.write_text(synth.prior_yaml([1] * 5, [1] * 5))
    return run_backtest(logs, catalog, item_index(catalog), p, prior, progress=False)


def test_folds_pool_every_day_after_the_first(tmp_path):
    logs = synth.logs(np.tile(STABLE, (4, 1)), rows_per_day=500, seed=3)
    payload = run(logs, params(), tmp_path)
    days = logs["ts"].dt.floor("D")
    first = days.min()
    assert [f["test_day"] for f in payload["folds"]] == ["2024-03-02", "2024-03-03", "2024-03-04"]
    assert [f["train_rows"] for f in payload["folds"]] == [500, 1000, 1500]
    assert [f["test_clicks"] for f in payload["folds"]] == [int(logs.loc[days == d, "click"].sum())
                                                            for d in sorted(days.unique())[1:]]
    counts = payload["counts"]
    assert counts["rows"] == 1500 and counts["clicks"] == int(logs.loc[days > first, "click"].sum())
    uniform, popularity = payload["policies"]["uniform"], payload["policies"]["popularity"]
    assert uniform["mrr"] == pytest.approx(UNIFORM_MRR, abs=1e-12)
    assert popularity["mrr_ci"][0] > UNIFORM_MRR
    assert set(popularity["ope"]) == {"dr"} and math.isfinite(popularity["ope"]["dr"]["value"])
    # Policy value: popularity shows item 0 with probability 0.9 + 0.1/5 at position 0 (ε-greedy, ε = 0.1).
    assert popularity["ope"]["dr"]["ci_low"] > uniform["ope"]["dr"]["ci_high"]


def test_a_fold_never_trains_on_its_test_day(tmp_path):
    reversed_day = [0.02, 0.05, 0.05, 0.05, 0.45]
    logs = synth.logs(np.array([STABLE, reversed_day]), rows_per_day=800, seed=4)
    payload = run(logs, params(), tmp_path)
    assert len(payload["folds"]) == 1
    popularity = payload["policies"]["popularity"]
    # Day 1's favourite (item 0) is ranked first, day 2's (item 4) last: far below ties.
    assert popularity["mrr_ci"][1] < UNIFORM_MRR
    assert popularity["hit_at_1"] < 0.1


def test_learned_policy_retrains_per_fold_with_its_budget(tmp_path):
    logs = synth.logs(np.tile(STABLE, (3, 1)), rows_per_day=600, seed=5)
    p = params(policies=["deepfm_nokg"], references=["uniform"], train_overrides={"deepfm_nokg": {"max_epochs": 4}})
    payload = run(logs, p, tmp_path)
    assert list(payload["policies"]) == ["deepfm_nokg", "uniform"]
    assert payload["policies"]["deepfm_nokg"]["mrr_ci"][0] > UNIFORM_MRR
    assert any("without KG item vectors" in note for note in payload["notes"])


def test_budget_overrides_are_checked_by_name():
    p = params()
    assert budget_params(p, "deepfm_nokg", {"max_epochs": 2}, use_kg=False).train.deepfm_nokg.max_epochs == 2
    with pytest.raises(ConfigError, match=r"backtest.train_overrides.deepfm_nokg.max_epochz: not a field"):
        budget_params(p, "deepfm_nokg", {"max_epochz": 2}, use_kg=False)
    with pytest.raises(ConfigError, match=r"backtest.train_overrides.deepfm_nokg.max_epochs: expected >= 1"):
        budget_params(p, "deepfm_nokg", {"max_epochs": 0}, use_kg=False)
    with pytest.raises(ConfigError, match=r"backtest.train_overrides.nonsense: expected one of"):
        from_mapping(Params, {"backtest": {"train_overrides": {"nonsense": {"steps": 1}}}})


def test_too_few_days_is_an_error():
    logs = synth.logs(np.array([STABLE]), rows_per_day=50, seed=1)
    with pytest.raises(ValueError, match=r"span 1 day\(s\); backtest.min_train_days = 1 leaves no day"):
        day_folds(logs, 1)


def test_stage_rejects_a_bad_override_before_any_work(tmp_path):
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({
        "backtest": {"policies": ["deepfm_nokg"], "train_overrides": {"deepfm_nokg": {"epochs": 3}}}}))
    result = CliRunner().invoke(app, ["backtest", "--params", str(tmp_path / "params.yaml")])
    assert result.exit_code == 2 and "backtest.train_overrides.deepfm_nokg.epochs: not a field" in result.output
