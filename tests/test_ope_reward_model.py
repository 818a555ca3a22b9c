"""The cross-fitted reward model: folds, recovery of known click rates, DR on top of it."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from liveslate.config import ConfigError, OpeRewardModelConfig
from liveslate.ope.bootstrap import BootstrapConfig
from liveslate.ope.estimators import DM, DR, estimate_all
from liveslate.ope.inputs import align
from liveslate.ope.reward_model import cross_fit_reward_model, fold_of_impressions
from ope_synthetic import N_ITEMS, draw, make_bandit

CONFIG = OpeRewardModelConfig(folds=2, l2=0.1, max_iter=200)


def fit(synthetic, config=CONFIG, seed=0):
    n = len(synthetic.logs)
    candidates = np.tile(np.arange(N_ITEMS), (n, 1))
    return cross_fit_reward_model(synthetic.frame, synthetic.logs.candidate, candidates, N_ITEMS, config, seed)


def test_folds_keep_impressions_together_and_are_seeded():
    ids = np.array(["a", "b", "a", "c", "b", "d", "e", "f"], dtype=object)
    fold = fold_of_impressions(ids, 3, seed=1)
    assert fold[0] == fold[2] and fold[1] == fold[4]
    assert set(fold) == {0, 1, 2}
    np.testing.assert_array_equal(fold, fold_of_impressions(ids, 3, seed=1))
    with pytest.raises(ValueError, match="2 impression"):
        fold_of_impressions(np.array(["a", "b"], dtype=object), 3, seed=0)


def test_fewer_than_two_folds_is_a_config_error():
    with pytest.raises(ConfigError, match="ope.reward_model.folds"):
        OpeRewardModelConfig(folds=1)


def test_model_recovers_known_click_rates_and_records_k():
    bandit = make_bandit()
    synthetic = draw(bandit, 20000, seed=0)
    predictions = fit(synthetic, OpeRewardModelConfig(folds=3, l2=0.1))
    assert predictions.folds == 3 and "K=3" in predictions.model
    truth = bandit.click[synthetic.context][np.arange(20000), :, synthetic.logs.position]  # [n, items]
    # The simulator's click model is the model's own main-effects logistic form.
    assert np.abs(predictions.values - truth).max() < 0.05
    assert ((predictions.values > 0) & (predictions.values < 1)).all()


def test_cross_fitting_never_predicts_a_row_with_a_model_that_saw_it():
    # A context level unique to every row would let an in-sample model memorise each
    # reward; out of fold the level is unknown, so predictions cannot track the rewards.
    synthetic = draw(make_bandit(), 600, seed=2)
    frame = synthetic.frame.assign(ctx_row=pd.array([f"r{i}" for i in range(600)], dtype="string"))
    memorising = type(synthetic)(logs=synthetic.logs, action_dist=synthetic.action_dist, frame=frame,
                                 context=synthetic.context, bandit=synthetic.bandit)
    values = fit(memorising, OpeRewardModelConfig(folds=2, l2=1e-4, max_iter=500)).values
    logged = values[np.arange(600), synthetic.logs.candidate]
    reward = synthetic.logs.reward
    gap = logged[reward == 1].mean() - logged[reward == 0].mean()
    assert gap < 0.2  # an in-sample fit at this penalty separates them almost perfectly


def test_a_fold_without_any_click_predicts_a_smoothed_rate():
    synthetic = draw(make_bandit(), 200, seed=3)
    frame = synthetic.frame.assign(reward=np.float32(0.0))
    silent = type(synthetic)(logs=synthetic.logs, action_dist=synthetic.action_dist, frame=frame,
                             context=synthetic.context, bandit=synthetic.bandit)
    values = fit(silent).values
    assert np.isfinite(values).all() and (values > 0).all() and values.max() < 0.01


def test_dr_with_the_cross_fitted_model_estimates_the_known_value():
    bandit = make_bandit()
    synthetic = draw(bandit, 5000, seed=21)
    inputs = align(synthetic.logs, synthetic.action_dist, fit(synthetic))
    assert inputs.reward_model_folds == 2
    results = estimate_all([DM(), DR()], inputs, BootstrapConfig(300, 0.95, 1))
    assert results["dr"].ci_low <= bandit.value <= results["dr"].ci_high
    # A well-specified model: DM is close too, with a much narrower interval.
    assert abs(results["dm"].value - bandit.value) < 0.02
    assert results["dm"].ci_high - results["dm"].ci_low < results["dr"].ci_high - results["dr"].ci_low
