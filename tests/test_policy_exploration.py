"""Exploration maths and reference policies against closed forms and brute force."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from scipy import integrate, special, stats

from liveslate.policies import exploration
from liveslate.policies.base import Candidates, Exploration
from liveslate.policies.reference import BTSReplicaPolicy, PopularityPolicy, read_bts_prior

ROOT = Path(__file__).resolve().parents[1]


def brute_force_pl(logits: np.ndarray, mask: np.ndarray, k: int) -> np.ndarray:
    """P(j at p) by summing the PL probability of every ordered slate (written out directly)."""
    n, m = logits.shape
    out = np.zeros((n, m, k))
    for row in range(n):
        columns = np.flatnonzero(mask[row])
        weights = np.exp(logits[row] - logits[row, columns].max())
        for slate in itertools.permutations(columns, k):
            probability, left = 1.0, set(columns.tolist())
            for column in slate:
                probability *= weights[column] / sum(weights[c] for c in left)
                left.remove(column)
            for p, column in enumerate(slate):
                out[row, column, p] += probability
    return out


@pytest.fixture
def ragged():
    rng = np.random.default_rng(0)
    logits = rng.normal(scale=2.0, size=(5, 6))
    mask = np.ones((5, 6), dtype=bool)
    mask[1, 3:] = False
    mask[2, [0, 4]] = False
    return logits, mask


@pytest.mark.parametrize("k", [1, 2, 3])
def test_exact_pl_marginals_match_brute_force(ragged, k):
    logits, mask = ragged
    np.testing.assert_allclose(exploration.plackett_luce_marginals(logits, mask, k),
                               brute_force_pl(logits, mask, k), atol=1e-12)


def test_pl_marginals_finite_at_extreme_temperatures(ragged):
    logits, mask = ragged
    cold = exploration.plackett_luce_marginals(logits / 1e-9, mask, 3)
    np.testing.assert_allclose(cold.sum(axis=1), 1.0, atol=1e-12)
    greedy = exploration.greedy_positions(np.where(mask, logits, -np.inf), mask, 3)
    np.testing.assert_array_equal(cold, exploration.one_hot_dist(greedy, 6))
    hot = exploration.plackett_luce_marginals(logits / 1e9, mask, 3)
    np.testing.assert_allclose(hot, (mask / mask.sum(1, keepdims=True))[:, :, None].repeat(3, 2), atol=1e-8)


def test_monte_carlo_pl_fallback_converges(ragged):
    logits, mask = ragged
    truth = brute_force_pl(logits, mask, 3)
    errors = []
    for samples in (50, 3200):
        estimate = exploration.plackett_luce_marginals(logits, mask, 3, max_prefixes=0, mc_samples=samples, seed=1)
        np.testing.assert_allclose(estimate.sum(axis=1), 1.0, atol=1e-12)
        assert np.all(estimate[:, :, 0][mask] > 0), "position 0 is the exact softmax"
        errors.append(np.abs(estimate - truth).max())
    # An entry's standard error is at most 0.5/sqrt(samples); allow 4 of them at the larger sample.
    assert errors[1] < errors[0] / 2 and errors[1] < 4 * 0.5 / np.sqrt(3200)


def test_pl_sampling_frequencies_and_slate_probability(ragged):
    logits, mask = ragged
    row_logits, row_mask = np.repeat(logits[:1], 20_000, 0), np.repeat(mask[:1], 20_000, 0)
    slates = exploration.sample_plackett_luce(row_logits, row_mask, 2, seed=3)
    truth = brute_force_pl(logits[:1], mask[:1], 2)[0]
    for p in range(2):
        frequency = np.bincount(slates[:, p], minlength=6) / len(slates)
        bound = 4 * np.sqrt(truth[:, p] * (1 - truth[:, p]) / len(slates)) + 1e-9
        assert np.all(np.abs(frequency - truth[:, p]) <= bound)
    log_probability = exploration.plackett_luce_log_probability(logits[:1], mask[:1], np.array([[2, 0]]))
    w = np.exp(logits[0])
    assert math.isclose(np.exp(log_probability[0]), w[2] / w.sum() * w[0] / (w.sum() - w[2]), rel_tol=1e-12)


def test_epsilon_greedy_sampling_matches_closed_form():
    mask = np.array([[True] * 4 + [False]] * 40_000)
    greedy = np.tile(np.array([[2, 0]]), (40_000, 1))
    positions, probability = exploration.sample_epsilon_greedy(greedy, mask, 0.4, seed=9)
    dist = exploration.epsilon_greedy_dist(greedy[:1], mask[:1], 0.4)[0]
    np.testing.assert_allclose(dist[:, 0], [0.1, 0.1, 0.7, 0.1, 0.0])
    for p in range(2):
        frequency = np.bincount(positions[:, p], minlength=5) / len(positions)
        assert np.all(np.abs(frequency - dist[:, p]) < 0.01)
    is_greedy = (positions == greedy).all(axis=1)
    np.testing.assert_allclose(probability[is_greedy], 0.6 + 0.4 / 12)
    np.testing.assert_allclose(probability[~is_greedy], 0.4 / 12)


def test_candidates_reject_bad_input():
    with pytest.raises(ValueError, match="row 1 has no unmasked candidate"):
        Candidates(items=np.zeros((2, 2), dtype=np.int64), mask=np.array([[True, False], [False, False]]))
    with pytest.raises(ValueError, match="negative item index"):
        Candidates(items=np.array([[-1]]), mask=np.array([[True]]))
    with pytest.raises(ValueError, match="k=3 exceeds the 2 unmasked candidate"):
        exploration.check_k(np.array([[True, True, True], [True, True, False]]), 3)
    with pytest.raises(ValueError, match="temperature"):
        Exploration(mode="plackett_luce", temperature=0.0)
    with pytest.raises(ValueError, match="mode"):
        Exploration(mode="softmax")


def test_whole_rooms_candidates_follow_the_item_index():
    catalog = pd.DataFrame({"item_id": ["b/0", "a/1", "a/0", "b/1"], "room_id": ["b", "a", "a", "b"],
                            "first_seen": pd.to_datetime(["2020-01-02", "2020-01-01", "2020-01-01", "2020-01-01"])})
    index = pd.Index(["a/0", "a/1", "b/1", "b/0"])
    candidates = Candidates.whole_rooms(["b", "a", "b"], catalog, index)
    np.testing.assert_array_equal(candidates.items, [[2, 3], [0, 1], [2, 3]])
    with pytest.raises(ValueError, match="no item in the catalogue"):
        Candidates.whole_rooms(["c"], catalog, index)


# --------------------------------------------------------------------------- BTS replica


def prob_first_beats_second(a1: int, b1: int, a2: int, b2: int) -> float:
    """P(θ1 > θ2) for θ_i ~ Beta(a_i, b_i), integer a2 (closed-form sum, Evan Miller 2015)."""
    total = 0.0
    for i in range(a2):
        total += math.exp(special.betaln(a1 + i, b1 + b2) - math.log(b2 + i)
                          - special.betaln(1 + i, b2) - special.betaln(a1, b1))
    return 1.0 - total


def test_two_item_closed_form_agrees_with_quadrature():
    value, _ = integrate.quad(lambda x: stats.beta.pdf(x, 7, 30) * stats.beta.cdf(x, 4, 25), 0, 1)
    assert math.isclose(prob_first_beats_second(7, 30, 4, 25), value, rel_tol=1e-8)


def test_bts_marginals_match_closed_form_and_converge():
    alpha, beta = np.array([7.0, 4.0]), np.array([30.0, 25.0])
    truth = prob_first_beats_second(7, 30, 4, 25)
    expected = np.array([[truth, 1 - truth], [1 - truth, truth]])
    candidates = Candidates.from_lists([[0, 1]])
    contexts = pd.DataFrame(index=[0])
    mean_errors = []
    for samples in (1_000, 10_000, 100_000):
        errors = []
        for seed in range(8):
            policy = BTSReplicaPolicy(["a/0", "a/1"], alpha, beta, mc_samples=samples, mc_seed=seed)
            dist = policy.action_dist(contexts, candidates, 2, Exploration())[0]
            assert np.abs(dist - expected).max() <= 4.5 * math.sqrt(truth * (1 - truth) / samples)
            errors.append(abs(dist[0, 0] - truth))
        mean_errors.append(np.mean(errors))
    assert mean_errors[0] > mean_errors[1] > mean_errors[2]


def test_bts_prior_file_maps_room_local_ids():
    path = ROOT / "data" / "obd" / "prior_bts.yaml"
    if not path.exists():
        pytest.skip("data/obd/prior_bts.yaml not fetched")
    raw = yaml.safe_load(path.read_text())
    alpha, beta = read_bts_prior(path, ["men/5", "all/0", "women/45", "kids/0"])
    assert alpha[0] == raw["men"]["alpha"][5] and beta[2] == raw["women"]["beta"][45]
    assert alpha[1] == raw["all"]["alpha"][0] and np.isnan(alpha[3])
    policy = BTSReplicaPolicy(["men/5", "all/0", "women/45", "kids/0"], alpha, beta, mc_samples=10)
    with pytest.raises(ValueError, match="'kids/0' has no BTS prior"):
        policy.scores(pd.DataFrame(index=[0]), Candidates.from_lists([[0, 3]]))


def test_bts_prior_rejects_bad_file(tmp_path):
    path = tmp_path / "prior.yaml"
    path.write_text("men:\n  alpha: [1.0, 2.0]\n  beta: [1.0]\n")
    with pytest.raises(ValueError, match="room 'men': 2 alpha values but 1 beta"):
        read_bts_prior(path, ["men/0"])
    path.write_text("men:\n  alpha: [1.0, -2.0]\n  beta: [1.0, 1.0]\n")
    with pytest.raises(ValueError, match="room 'men', item 1"):
        read_bts_prior(path, ["men/0"])


def test_popularity_is_training_ctr():
    logs = pd.DataFrame({"item_id": ["a", "a", "a", "a", "b", "b", "c"], "click": [1, 0, 0, 0, 1, 1, 0]})
    raw = PopularityPolicy.from_logs(logs, ["a", "b", "c", "d"], prior_impressions=0.0)
    np.testing.assert_allclose(raw.ctr, [0.25, 1.0, 0.0, 3 / 7])
    smoothed = PopularityPolicy.from_logs(logs, ["a", "b", "c", "d"], prior_impressions=7.0)
    np.testing.assert_allclose(smoothed.ctr, [(1 + 3) / 11, (2 + 3) / 9, 3 / 8, 3 / 7])
    with pytest.raises(ValueError, match="row 0: item_id 'x' is not in the item index"):
        PopularityPolicy.from_logs(pd.DataFrame({"item_id": ["x"], "click": [0]}), ["a"])
