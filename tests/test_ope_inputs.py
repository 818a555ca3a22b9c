"""OPE inputs are aligned by (impression_id, position) and bad input is refused with the rows named."""

from __future__ import annotations

import numpy as np
import pytest

from liveslate.ope.bootstrap import BootstrapConfig
from liveslate.ope.estimators import DM, DR, IPS, SNIPS, estimate_all
from liveslate.ope.inputs import ActionDist, LoggedRows, RewardPredictions, align
from ope_synthetic import draw, make_bandit

FAST = BootstrapConfig(n_resamples=100, confidence=0.95, seed=3)


def logged(propensity=(0.5, 0.25, 0.5), reward=(1.0, 0.0, 1.0), ids=("i0", "i1", "i2")):
    return LoggedRows(impression_id=np.array(ids, dtype=object), position=np.array([0, 1, 0]),
                      candidate=np.array([0, 1, 2]), reward=np.array(reward), propensity=np.array(propensity))


def uniform_dist(ids=("i0", "i1", "i2"), positions=(0, 1, 0), m=3):
    return ActionDist.at_position(np.array(ids, dtype=object), np.array(positions), np.full((len(ids), m), 1.0 / m))


@pytest.mark.parametrize("propensity, reward, message", [
    ((0.5, 0.0, 0.5), (1.0, 0.0, 1.0), r"logs.propensity: expected a probability in \(0, 1\] at 1 row\(s\): \(impression 'i1', position 1\)"),
    ((0.5, 1.5, 0.5), (1.0, 0.0, 1.0), r"logs.propensity.*\(impression 'i1', position 1\)"),
    ((0.5, np.nan, 0.5), (1.0, 0.0, 1.0), r"logs.propensity.*\(impression 'i1', position 1\)"),
    ((0.5, 0.5, 0.5), (1.0, np.inf, 1.0), r"logs.reward: non-finite value at 1 row\(s\): \(impression 'i1', position 1\)"),
])
def test_bad_logged_rows_are_rejected_with_rows_named(propensity, reward, message):
    with pytest.raises(ValueError, match=message):
        logged(propensity=propensity, reward=reward)


def test_reward_outside_the_reward_range_is_rejected():
    with pytest.raises(ValueError, match=r"logs.reward: outside the reward range \[0.0, 1.0\].*'i2'"):
        align(logged(reward=(1.0, 0.0, 2.0)), uniform_dist())


def test_duplicate_keys_are_rejected():
    with pytest.raises(ValueError, match=r"logs: \(impression id, position\) is not unique: 2 row\(s\)"):
        logged(ids=("i0", "i0", "i0"))  # positions 0, 1, 0: rows 0 and 2 collide


def test_negative_action_dist_entry_is_rejected_with_rows_named():
    values = np.full((3, 3), 1.0 / 3)
    values[2] = [-0.2, 0.6, 0.6]
    with pytest.raises(ValueError, match=r"action_dist: negative entry at 1 row\(s\): \(impression 'i2', position 0\)"):
        ActionDist.at_position(np.array(["i0", "i1", "i2"], dtype=object), np.array([0, 1, 0]), values)


def test_action_dist_that_is_not_a_distribution_per_position_is_rejected():
    values = np.full((2, 4, 2), 0.25)
    values[1, :, 1] = [0.5, 0.5, 0.5, 0.0]  # position 1 of impression b sums to 1.5
    with pytest.raises(ValueError, match=r"not a distribution over candidates \(position 1 sums to 1.5 instead of 1\) at 1 row\(s\): \(impression 'b'\)"):
        ActionDist.per_impression(np.array(["a", "b"], dtype=object), values)
    nan = np.full((2, 4, 2), 0.25)
    nan[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match=r"action_dist: non-finite entry at 1 row\(s\): \(impression 'a'\)"):
        ActionDist.per_impression(np.array(["a", "b"], dtype=object), nan)


def test_probability_on_padding_is_rejected():
    mask = np.array([[True, True, False]] * 3)
    with pytest.raises(ValueError, match="probability on a padded"):
        ActionDist.at_position(np.array(["i0", "i1", "i2"], dtype=object), np.array([0, 1, 0]),
                               np.full((3, 3), 1.0 / 3), mask=mask)


def test_logged_item_in_a_padded_column_is_rejected():
    mask = np.array([[True, True, False]] * 3)
    dist = ActionDist.at_position(np.array(["i0", "i1", "i2"], dtype=object), np.array([0, 1, 0]),
                                  np.tile([0.5, 0.5, 0.0], (3, 1)), mask=mask)
    with pytest.raises(ValueError, match=r"logged item sits in a padded candidate column at 1 row\(s\): \(impression 'i2'"):
        align(logged(), dist)


def test_reward_predictions_of_another_split_are_rejected():
    synthetic = draw(make_bandit(), 40, seed=1)
    other = draw(make_bandit(), 40, seed=2)  # same shapes, different impression ids
    foreign = RewardPredictions(other.logs.impression_id, other.logs.position, np.zeros((40, 5)))
    with pytest.raises(ValueError, match=r"reward_predictions: no entry for logged 40 row\(s\): \(impression 's1/0'"):
        align(synthetic.logs, synthetic.action_dist, foreign)
    # All logged keys covered, plus rows of another split: still refused, those rows named.
    ids = np.concatenate([synthetic.logs.impression_id, other.logs.impression_id[:3]])
    positions = np.concatenate([synthetic.logs.position, other.logs.position[:3]])
    extra = RewardPredictions(ids, positions, np.zeros((43, 5)))
    with pytest.raises(ValueError, match=r"another split\? 3 row\(s\): \(impression 's2/0'"):
        align(synthetic.logs, synthetic.action_dist, extra)


def test_action_dist_for_other_impressions_is_rejected():
    with pytest.raises(ValueError, match=r"action_dist: no entry for logged 1 row\(s\): \(impression 'i2', position 0\)"):
        align(logged(), uniform_dist(ids=("i0", "i1", "x9")))


def test_alignment_is_by_key_not_by_order():
    synthetic = draw(make_bandit(), 300, seed=4)
    table = synthetic.bandit.click * 0.8
    inputs = align(synthetic.logs, synthetic.action_dist, synthetic.predictions(table))
    reference = estimate_all([IPS(), SNIPS(), DM(), DR()], inputs, FAST)
    order = np.random.default_rng(0).permutation(300)
    dist, predictions = synthetic.action_dist, synthetic.predictions(table)
    shuffled_dist = ActionDist.at_position(dist.impression_id[order], dist.position[order], dist.values[order])
    shuffled_predictions = RewardPredictions(predictions.impression_id[order], predictions.position[order],
                                             predictions.values[order])
    shuffled = estimate_all([IPS(), SNIPS(), DM(), DR()], align(synthetic.logs, shuffled_dist, shuffled_predictions),
                            FAST)
    for name, result in reference.items():
        assert shuffled[name].value == pytest.approx(result.value, rel=1e-12)
        np.testing.assert_allclose(shuffled[name].contributions, result.contributions)


def test_per_impression_layout_matches_the_logged_position_layout():
    # Two rows per impression (positions 0 and 1), a [c, m, k] distribution per impression.
    ids = np.array(["a", "a", "b", "b"], dtype=object)
    logs = LoggedRows(impression_id=ids, position=np.array([0, 1, 0, 1]), candidate=np.array([2, 0, 1, 1]),
                      reward=np.array([1.0, 0.0, 0.0, 1.0]), propensity=np.full(4, 1.0 / 3))
    full = np.zeros((2, 3, 2))
    full[0, :, 0], full[0, :, 1] = [0.2, 0.2, 0.6], [0.5, 0.25, 0.25]
    full[1, :, 0], full[1, :, 1] = [0.1, 0.8, 0.1], [0.3, 0.3, 0.4]
    per_impression = align(logs, ActionDist.per_impression(np.array(["b", "a"], dtype=object), full[::-1]))
    at_position = align(logs, ActionDist.at_position(ids, np.array([0, 1, 0, 1]),
                                                     np.stack([full[0, :, 0], full[0, :, 1], full[1, :, 0], full[1, :, 1]])))
    np.testing.assert_allclose(per_impression.evaluation_probability, [0.6, 0.5, 0.8, 0.3])
    np.testing.assert_allclose(per_impression.action_dist, at_position.action_dist)
    # Rows of one impression are resampled together (cluster bootstrap).
    np.testing.assert_array_equal(per_impression.impression_codes(), [0, 0, 1, 1])
    assert SNIPS().estimate(per_impression, FAST).value == pytest.approx((0.6 * 1 + 0.3 * 1) / (0.6 + 0.5 + 0.8 + 0.3))
