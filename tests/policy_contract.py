"""The contract every Policy passes (DESIGN.md, "Policies"); reusable by every policy's tests.

Usage from any test module in tests/ (pytest puts tests/ on sys.path)::

    from policy_contract import check_policy_contract

    def test_my_policy_contract(tmp_path):
        check_policy_contract(my_policy, contexts, candidates, k=2, tmp_path=tmp_path)

``contexts``: n rows of raw ``ctx_*`` columns the policy understands; ``candidates``: a
Candidates batch of n rows whose rows hold at least k + 1 unmasked candidates and
whose padding (if any) is masked. Expected values are derived here from first
principles (closed forms written out again, not read from liveslate.policies.exploration).

Checked: shapes; k unique items per slate drawn from the unmasked candidates; item
indices read off the candidates; propensities equal action_dist at the shown positions;
every position's column sums to 1 within 1e-6 (as given, with equal scores, with all
but one candidate masked, with a single candidate, with temperature near 0); masked
entries 0; ε-greedy marginals equal (1-ε)·1[greedy] + ε/m_row; mode ``none`` is
one-hot on greedy_slate; equal scores give uniform Plackett–Luce marginals; save →
load gives identical scores, distributions and slates; the same seed gives the same
slate; k larger than a row's candidates raises ValueError naming the row. Policies
with ``explores_itself`` (logging-policy replicas) must give one distribution for
every exploration mode instead of the ε / none / PL closed forms.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from liveslate.policies.base import Candidates, Exploration, Policy
from liveslate.policies.registry import load_policy

SUM_TOLERANCE = 1e-6
EPSILON = 0.3
NEAR_ZERO_TEMPERATURE = 1e-6


def exploration_modes(seed: int = 11) -> list[Exploration]:
    return [
        Exploration(mode="none", seed=seed),
        Exploration(mode="epsilon", epsilon=EPSILON, seed=seed),
        Exploration(mode="plackett_luce", temperature=1.0, seed=seed),
        Exploration(mode="plackett_luce", temperature=NEAR_ZERO_TEMPERATURE, seed=seed),
    ]


def _assert_distribution(dist: np.ndarray, candidates: Candidates, k: int, label: str) -> None:
    assert dist.shape == (candidates.n, candidates.m, k), f"{label}: action_dist shape {dist.shape}"
    assert np.all(np.isfinite(dist)), f"{label}: action_dist holds non-finite values"
    assert np.all(dist >= -1e-12), f"{label}: action_dist holds negative probabilities"
    assert np.all(dist[~candidates.mask] == 0.0), f"{label}: action_dist puts mass on masked candidates"
    sums = dist.sum(axis=1)
    worst = np.abs(sums - 1.0).max()
    assert worst <= SUM_TOLERANCE, f"{label}: a position's column sums to {sums.ravel()[np.abs(sums - 1).argmax()]}"
    # An item cannot be in two positions at once: its marginals over positions sum to ≤ 1.
    assert np.all(dist.sum(axis=2) <= 1.0 + SUM_TOLERANCE), f"{label}: an item's marginals over positions exceed 1"


def _assert_slate(policy: Policy, contexts: pd.DataFrame, candidates: Candidates, k: int,
                  explore: Exploration, dist: np.ndarray, label: str) -> None:
    slate = policy.slate(contexts, candidates, k, explore)
    n = candidates.n
    assert slate.positions.shape == (n, k), f"{label}: positions shape {slate.positions.shape}"
    assert slate.items.shape == (n, k), f"{label}: items shape {slate.items.shape}"
    assert slate.propensities.shape == (n, k), f"{label}: propensities shape {slate.propensities.shape}"
    assert slate.slate_probability.shape == (n,), f"{label}: slate_probability shape {slate.slate_probability.shape}"
    assert np.issubdtype(slate.positions.dtype, np.integer) and np.issubdtype(slate.items.dtype, np.integer)
    for row in range(n):
        shown = slate.positions[row]
        assert len(set(shown.tolist())) == k, f"{label}: row {row} shows a candidate twice: {shown}"
        assert np.all((shown >= 0) & (shown < candidates.m)), f"{label}: row {row} column out of range"
        assert candidates.mask[row, shown].all(), f"{label}: row {row} shows a masked candidate"
        assert np.array_equal(slate.items[row], candidates.items[row, shown]), f"{label}: row {row} items mismatch"
    expected = dist[np.arange(n)[:, None], slate.positions, np.arange(k)[None, :]]
    np.testing.assert_allclose(slate.propensities, expected, rtol=0, atol=1e-12,
                               err_msg=f"{label}: propensities differ from action_dist at the shown positions")
    assert np.all(slate.propensities > 0) and np.all(slate.propensities <= 1 + 1e-12), \
        f"{label}: a propensity is outside (0, 1]"
    assert np.all(slate.slate_probability > 0) and np.all(slate.slate_probability <= 1 + 1e-12), \
        f"{label}: a slate probability is outside (0, 1]"
    # The whole ordered slate is a sub-event of each of its item-at-position events.
    assert np.all(slate.slate_probability <= slate.propensities.min(axis=1) + 1e-9), \
        f"{label}: slate probability exceeds a per-position propensity"
    again = policy.slate(contexts, candidates, k, explore)
    assert np.array_equal(again.positions, slate.positions), f"{label}: the same seed gave different slates"
    np.testing.assert_array_equal(again.propensities, slate.propensities)
    np.testing.assert_array_equal(again.slate_probability, slate.slate_probability)


def _one_hot(positions: np.ndarray, m: int) -> np.ndarray:
    n, k = positions.shape
    out = np.zeros((n, m, k))
    for row in range(n):
        for p in range(k):
            out[row, positions[row, p], p] = 1.0
    return out


def _check_batch(policy: Policy, contexts: pd.DataFrame, candidates: Candidates, k: int, label: str) -> dict:
    """Every mode on one batch; returns {mode label: action_dist} for the save/load comparison."""
    scores = policy.scores(contexts, candidates)
    assert scores.shape == (candidates.n, candidates.m), f"{label}: scores shape {scores.shape}"
    assert np.all(np.isneginf(scores[~candidates.mask])), f"{label}: masked scores must be -inf"
    assert np.all(np.isfinite(scores[candidates.mask])), f"{label}: unmasked scores must be finite"
    dists = {}
    for explore in exploration_modes():
        mode_label = f"{label}/{explore.mode}(eps={explore.epsilon}, tau={explore.temperature})"
        dist = policy.action_dist(contexts, candidates, k, explore)
        _assert_distribution(dist, candidates, k, mode_label)
        _assert_slate(policy, contexts, candidates, k, explore, dist, mode_label)
        dists[mode_label] = dist
    if policy.explores_itself:
        reference = next(iter(dists.values()))
        for mode_label, dist in dists.items():
            np.testing.assert_allclose(dist, reference, atol=1e-12,
                                       err_msg=f"{mode_label}: a self-exploring policy changed with the mode")
        return dists
    greedy = policy.greedy_slate(contexts, candidates, k)
    assert greedy.shape == (candidates.n, k), f"{label}: greedy_slate shape {greedy.shape}"
    one_hot = _one_hot(greedy, candidates.m)
    none = policy.action_dist(contexts, candidates, k, Exploration(mode="none"))
    np.testing.assert_allclose(none, one_hot, atol=0, err_msg=f"{label}: mode none is not one-hot on greedy_slate")
    none_slate = policy.slate(contexts, candidates, k, Exploration(mode="none"))
    np.testing.assert_array_equal(none_slate.positions, greedy, err_msg=f"{label}: mode none slate != greedy_slate")
    np.testing.assert_array_equal(none_slate.slate_probability, np.ones(candidates.n))
    epsilon = policy.action_dist(contexts, candidates, k, Exploration(mode="epsilon", epsilon=EPSILON))
    m_row = candidates.mask.sum(axis=1).astype(float)
    closed_form = (1 - EPSILON) * one_hot + EPSILON * (candidates.mask / m_row[:, None])[:, :, None]
    np.testing.assert_allclose(epsilon, closed_form, atol=1e-12,
                               err_msg=f"{label}: ε-greedy marginals differ from (1-ε)·1[greedy] + ε/m")
    _check_near_zero_temperature(policy, contexts, candidates, k, label)
    return dists


def _check_near_zero_temperature(policy: Policy, contexts: pd.DataFrame, candidates: Candidates, k: int,
                                 label: str) -> None:
    """Where the k+1 largest PL logits are well separated, τ → 0 gives the top-k one-hot."""
    scores = policy.scores(contexts, candidates)
    logits = np.where(candidates.mask, policy.pl_logits(np.where(candidates.mask, scores, 0.0)), -np.inf)
    dist = policy.action_dist(contexts, candidates, k,
                              Exploration(mode="plackett_luce", temperature=NEAR_ZERO_TEMPERATURE))
    for row in range(candidates.n):
        order = np.argsort(-logits[row], kind="stable")
        top = logits[row, order[: k + 1]]
        top = top[np.isfinite(top)]
        if np.all(np.diff(-top) > 1e-3):
            expected = np.zeros((candidates.m, k))
            expected[order[:k], np.arange(k)] = 1.0
            np.testing.assert_allclose(dist[row], expected, atol=1e-6,
                                       err_msg=f"{label}: row {row}: τ→0 PL is not the top-k slate")


def check_policy_contract(policy: Policy, contexts: pd.DataFrame, candidates: Candidates, k: int,
                          tmp_path: Path) -> None:
    """Run the whole Policy contract on ``policy``; raises AssertionError naming the broken rule."""
    contexts = contexts.reset_index(drop=True)
    assert candidates.n == len(contexts), "contexts and candidates must have the same number of rows"
    assert k >= 2 and np.all(candidates.mask.sum(axis=1) >= k + 1), \
        "give the contract rows with at least k + 1 unmasked candidates and k >= 2"
    label = f"{policy.name}"
    dists = _check_batch(policy, contexts, candidates, k, label)

    # Equal scores: every column of a row holds the same item, so an item-wise scorer
    # ties them all; Plackett–Luce then puts 1/m_row on each candidate at every position.
    first = candidates.items[np.arange(candidates.n), candidates.mask.argmax(axis=1)]
    same = Candidates(items=np.repeat(first[:, None], candidates.m, axis=1), mask=candidates.mask.copy())
    _check_batch(policy, contexts, same, k, f"{label}/equal-scores")
    same_scores = policy.scores(contexts, same)
    for explore in (Exploration(mode="plackett_luce", temperature=1.0),
                    Exploration(mode="plackett_luce", temperature=NEAR_ZERO_TEMPERATURE)):
        dist = policy.action_dist(contexts, same, k, explore)
        for row in range(same.n):
            unmasked = same_scores[row][same.mask[row]]
            if not policy.explores_itself and np.ptp(unmasked) == 0.0:
                expected = np.where(same.mask[row], 1.0 / same.mask[row].sum(), 0.0)
                for p in range(k):
                    np.testing.assert_allclose(dist[row, :, p], expected, atol=1e-9,
                                               err_msg=f"{label}: equal scores, PL τ={explore.temperature}")

    # All but one candidate masked, and a single candidate: the only slate has probability 1.
    only = np.zeros_like(candidates.mask)
    only[np.arange(candidates.n), candidates.mask.argmax(axis=1)] = True
    lonely = Candidates(items=candidates.items.copy(), mask=only)
    single = Candidates(items=first[:, None].copy(), mask=np.ones((candidates.n, 1), dtype=bool))
    for edge, edge_label in ((lonely, "all-but-one-masked"), (single, "single-candidate")):
        for explore in exploration_modes():
            dist = policy.action_dist(contexts, edge, 1, explore)
            _assert_distribution(dist, edge, 1, f"{label}/{edge_label}/{explore.mode}")
            np.testing.assert_allclose(dist[:, :, 0], edge.mask.astype(float), atol=SUM_TOLERANCE)
            slate = policy.slate(contexts, edge, 1, explore)
            np.testing.assert_allclose(slate.propensities, 1.0, atol=SUM_TOLERANCE)
            np.testing.assert_allclose(slate.slate_probability, 1.0, atol=SUM_TOLERANCE)
        with pytest.raises(ValueError, match="row"):
            policy.action_dist(contexts, edge, 2, Exploration())
        with pytest.raises(ValueError, match="row"):
            policy.slate(contexts, edge, 2, Exploration())

    # Save → load: identical outputs.
    directory = Path(tmp_path) / f"saved-{policy.name}"
    policy.save(directory)
    loaded = load_policy(directory)
    assert type(loaded) is type(policy), f"load_policy gave {type(loaded).__name__}, expected {type(policy).__name__}"
    assert loaded.name == policy.name
    np.testing.assert_array_equal(loaded.scores(contexts, candidates), policy.scores(contexts, candidates))
    for explore, (mode_label, dist) in zip(exploration_modes(), dists.items()):
        np.testing.assert_array_equal(loaded.action_dist(contexts, candidates, k, explore), dist,
                                      err_msg=f"{mode_label}: action_dist changed after save → load")
        before, after = policy.slate(contexts, candidates, k, explore), loaded.slate(contexts, candidates, k, explore)
        np.testing.assert_array_equal(after.positions, before.positions, err_msg=f"{mode_label}: slate changed")
        np.testing.assert_array_equal(after.propensities, before.propensities)
