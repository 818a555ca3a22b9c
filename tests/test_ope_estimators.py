"""Known answers of the off-policy estimators (hand-computed cases and exact identities)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from liveslate.ope.bootstrap import BootstrapConfig
from liveslate.ope.estimators import (DM, DR, IPS, SNDR, SNIPS, ClippedIPS, DRos, SwitchDR, build_estimators,
                                      effective_sample_size, estimate_all)
from liveslate.ope.inputs import ActionDist, EvaluationProbability, LoggedRows, RewardPredictions, align
from ope_synthetic import draw, make_bandit

FAST = BootstrapConfig(n_resamples=200, confidence=0.95, seed=7)
IDS = np.array(["a", "b", "c", "d"], dtype=object)
POSITION = np.zeros(4, dtype=np.int64)


def hand_inputs(scale: float = 1.0, reward_range=(0.0, 1.0)):
    """rewards [1, 0, 1, 0] with importance weights [3, 1, 1, 1] · scale."""
    logs = LoggedRows(impression_id=IDS, position=POSITION, candidate=np.zeros(4, dtype=np.int64),
                      reward=[1.0, 0.0, 1.0, 0.0], propensity=[0.25, 0.5, 0.5, 0.5])
    evaluation = EvaluationProbability(IDS, POSITION, np.array([0.75, 0.5, 0.5, 0.5]) * scale)
    return align(logs, evaluation, reward_range=reward_range)


def test_ips_and_snips_hand_computed():
    results = estimate_all([IPS(), SNIPS()], hand_inputs(), FAST)
    # IPS = (3·1 + 1·0 + 1·1 + 1·0) / 4 = 1; SNIPS = 4 / 6.
    assert results["ips"].value == pytest.approx(1.0)
    assert results["snips"].value == pytest.approx(2.0 / 3.0)
    np.testing.assert_allclose(results["ips"].contributions, [3.0, 0.0, 1.0, 0.0])
    # ESS of [3, 1, 1, 1] = 6² / 12 = 3.
    assert results["ips"].ess == pytest.approx(3.0)


def test_clipped_ips_hand_computed():
    result = ClippedIPS(max_weight=2.0).estimate(hand_inputs(), FAST)
    assert result.value == pytest.approx((2.0 + 1.0) / 4.0)
    assert result.ess == pytest.approx(5.0**2 / 7.0)


def test_snips_is_invariant_to_scaling_the_weights():
    base = estimate_all([IPS(), SNIPS()], hand_inputs(), FAST)
    half = estimate_all([IPS(), SNIPS()], hand_inputs(scale=0.5), FAST)
    assert half["snips"].value == pytest.approx(base["snips"].value)
    assert (half["snips"].ci_low, half["snips"].ci_high) == pytest.approx((base["snips"].ci_low, base["snips"].ci_high))
    assert half["ips"].value == pytest.approx(base["ips"].value / 2)


def test_evaluation_equal_to_logging_gives_the_sample_mean():
    synthetic = draw(make_bandit(), 500, seed=3)
    logs = synthetic.logs
    same = EvaluationProbability(logs.impression_id, logs.position, logs.propensity)
    results = estimate_all([IPS(), SNIPS()], align(logs, same), FAST)
    assert results["ips"].value == pytest.approx(logs.reward.mean())
    assert results["snips"].value == pytest.approx(logs.reward.mean())
    assert results["ips"].ess == pytest.approx(len(logs))


def test_contributions_average_to_the_estimate_for_every_estimator():
    synthetic = draw(make_bandit(), 800, seed=11)
    table = np.clip(synthetic.bandit.click * 0.7 + 0.05, 0, 1)
    inputs = align(synthetic.logs, synthetic.action_dist, synthetic.predictions(table))
    estimators = build_estimators(("ips", "clipped_ips", "snips", "dm", "dr", "sndr", "switch_dr", "dros"),
                                  clip_max_weight=1.5, switch_threshold=1.5, dros_shrinkage=2.0)
    results = estimate_all(estimators, inputs, FAST)
    assert set(results) == {"ips", "clipped_ips", "snips", "dm", "dr", "sndr", "switch_dr", "dros"}
    for name, result in results.items():
        assert result.contributions.shape == (800,)
        assert result.contributions.mean() == pytest.approx(result.value, rel=1e-12), name
        assert result.ci_low <= result.value <= result.ci_high, name
    # The hyper-parameters bite on these weights (max ≈ 3.2), so the variants differ from their base.
    assert results["clipped_ips"].value != pytest.approx(results["ips"].value)
    assert results["switch_dr"].value != pytest.approx(results["dr"].value)


def test_dr_equals_dm_when_the_model_predicts_every_logged_reward():
    synthetic = draw(make_bandit(), 300, seed=5)
    logs = synthetic.logs
    rng = np.random.default_rng(0)
    values = rng.random((len(logs), 5))          # arbitrary for the candidates not logged
    values[np.arange(len(logs)), logs.candidate] = logs.reward  # exact for the logged one
    predictions = RewardPredictions(logs.impression_id, logs.position, values)
    inputs = align(logs, synthetic.action_dist, predictions)
    results = estimate_all([DM(), DR(), SNDR(), SwitchDR(threshold=2.0), DRos(shrinkage=1.0)], inputs, FAST)
    expected = float(np.einsum("ij,ij->i", inputs.action_dist, values).mean())
    for name in ("dm", "dr", "sndr", "switch_dr", "dros"):
        assert results[name].value == pytest.approx(expected, rel=1e-12), name


def test_switch_and_dros_interpolate_between_dm_and_dr():
    synthetic = draw(make_bandit(), 600, seed=9)
    inputs = align(synthetic.logs, synthetic.action_dist, synthetic.predictions(synthetic.bandit.click * 0.5))
    results = estimate_all([DM(), DR()], inputs, FAST)
    assert SwitchDR(threshold=math.inf).estimate(inputs, FAST).value == pytest.approx(results["dr"].value)
    assert SwitchDR(threshold=1e-9).estimate(inputs, FAST).value == pytest.approx(results["dm"].value)
    assert DRos(shrinkage=1e12).estimate(inputs, FAST).value == pytest.approx(results["dr"].value, rel=1e-6)
    assert DRos(shrinkage=1e-12).estimate(inputs, FAST).value == pytest.approx(results["dm"].value, rel=1e-6)


def test_dros_shrinks_weights_as_documented():
    # w = 3, λ = 3: ŵ = 3·3 / (9 + 3) = 0.75; w = 1: 3 / 4.
    logs = LoggedRows(impression_id=IDS, position=POSITION, candidate=np.zeros(4, dtype=np.int64),
                      reward=[1.0, 0.0, 1.0, 0.0], propensity=[0.25, 0.5, 0.5, 0.5])
    dist = ActionDist.at_position(IDS, POSITION, np.array([[0.75, 0.25], [0.5, 0.5], [0.5, 0.5], [0.5, 0.5]]))
    zero_model = RewardPredictions(IDS, POSITION, np.zeros((4, 2)))
    result = DRos(shrinkage=3.0).estimate(align(logs, dist, zero_model), FAST)
    assert result.value == pytest.approx((0.75 * 1 + 0.75 * 1) / 4)


def test_estimate_outside_the_reward_range_is_flagged_not_clipped():
    result = IPS().estimate(hand_inputs(scale=1.2), FAST)  # weights [3.6, 1.2, 1.2, 1.2]
    assert result.value == pytest.approx((3.6 + 1.2) / 4)
    assert result.value > 1.0 and result.outside_reward_range
    assert not SNIPS().estimate(hand_inputs(scale=1.2), FAST).outside_reward_range


def test_bootstrap_interval_is_seeded():
    inputs = align(*(lambda s: (s.logs, s.action_dist))(draw(make_bandit(), 400, seed=1)))
    first = SNIPS().estimate(inputs, BootstrapConfig(300, 0.95, seed=42))
    again = SNIPS().estimate(inputs, BootstrapConfig(300, 0.95, seed=42))
    other = SNIPS().estimate(inputs, BootstrapConfig(300, 0.95, seed=43))
    assert (first.ci_low, first.ci_high) == (again.ci_low, again.ci_high)
    assert (first.ci_low, first.ci_high) != (other.ci_low, other.ci_high)


def test_effective_sample_size():
    assert effective_sample_size(np.ones(10)) == pytest.approx(10.0)
    assert effective_sample_size(np.array([5.0, 0.0, 0.0])) == pytest.approx(1.0)
    assert effective_sample_size(np.zeros(3)) == 0.0


@pytest.mark.parametrize("make, message", [
    (lambda: ClippedIPS(max_weight=0.0), "clipped_ips.max_weight"),
    (lambda: ClippedIPS(max_weight=math.inf), "clipped_ips.max_weight"),
    (lambda: SwitchDR(threshold=-1.0), "switch_dr.threshold"),
    (lambda: DRos(shrinkage=math.nan), "dros.shrinkage"),
    (lambda: build_estimators(("ips", "ipss")), "unknown name"),
    (lambda: BootstrapConfig(n_resamples=1), "n_resamples"),
    (lambda: BootstrapConfig(confidence=1.0), "confidence"),
])
def test_bad_hyper_parameters_are_rejected(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_model_based_estimators_need_the_distribution_and_the_model():
    with pytest.raises(ValueError, match="dm: needs the evaluation policy's whole action_dist"):
        DM().estimate(hand_inputs(), FAST)
    synthetic = draw(make_bandit(), 50, seed=2)
    with pytest.raises(ValueError, match="dr: needs reward-model predictions"):
        DR().estimate(align(synthetic.logs, synthetic.action_dist), FAST)


def test_self_normalised_estimate_without_any_weight_is_an_error():
    logs = LoggedRows(impression_id=IDS, position=POSITION, candidate=np.zeros(4, dtype=np.int64),
                      reward=[1.0, 0.0, 1.0, 0.0], propensity=[0.5] * 4)
    never = align(logs, EvaluationProbability(IDS, POSITION, np.zeros(4)))
    with pytest.raises(ValueError, match="snips: undefined — every importance weight is 0"):
        SNIPS().estimate(never, FAST)
    assert IPS().estimate(never, FAST).value == 0.0
