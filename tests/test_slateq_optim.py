"""Slate optimisers against brute-force enumeration of every ordered k-slate."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from liveslate.policies.slate_optim import (
    SlateInstance,
    click_probabilities,
    exact_slates,
    greedy_slates,
    optimise_slates,
    slate_value,
    top_k_slates,
)


def brute_force(attraction, value, v0, q0, weight, columns, k):
    """max F over every ordered k-permutation of ``columns`` for ONE request (numpy, float64)."""
    perms = np.array(list(itertools.permutations(columns, k)), dtype=np.int64).reshape(-1, k)
    u = attraction[perms] * weight
    return float(np.max((v0 * q0 + (u * value[perms]).sum(axis=1)) / (v0 + u.sum(axis=1))))


def brute_force_at_most(attraction, value, v0, q0, weight, columns, k):
    """max F over ordered slates of 0..k items (the relaxation the interface does NOT want)."""
    return max([q0] + [brute_force(attraction, value, v0, q0, weight[:size], columns, size)
                       for size in range(1, k + 1)])


def random_instances(rng, n, m, k, *, spread, monotone_positions, pad, decoy=False):
    """A batch of n random problems with m columns of which some may be padding.

    ``decoy`` makes column 0 very attractive with a middling value (0.5–0.7 of the best):
    alone it is the best one-item slate, but it drags every larger slate towards its own
    value — the trap in which greedy construction fails.
    """
    attraction = np.exp(rng.normal(0.0, spread, size=(n, m)))
    value = rng.uniform(-0.5, 2.0, size=(n, m))
    if decoy:
        attraction[:, 0] = np.exp(rng.uniform(3.0, 5.0, size=n))
        value[:, 0] = rng.uniform(0.5, 0.7, size=n) * value[:, 1:].max(axis=1, initial=0.0)
    v0 = np.exp(rng.normal(0.0, spread, size=n))
    q0 = rng.uniform(-0.2, 0.5, size=n)
    weight = np.exp(rng.normal(0.0, 0.7, size=k))
    if monotone_positions:
        weight = np.sort(weight)[::-1].copy()
    mask = np.ones((n, m), dtype=bool)
    if pad:
        for row in range(n):
            real = rng.integers(k, m + 1)
            mask[row, rng.permutation(m)[: m - real]] = False
    return attraction, value, v0, q0, weight, mask


def as_instance(attraction, value, v0, q0, weight, mask):
    t = lambda a: torch.as_tensor(np.ascontiguousarray(a), dtype=torch.float64)  # noqa: E731
    return SlateInstance(t(attraction), t(value), t(v0), t(q0), t(weight), torch.as_tensor(mask))


CONFIGS = [
    # (spread of log-attractions, positions sorted by weight?, padded rows?, decoy column?)
    (0.5, True, False, False),
    (2.0, True, True, False),
    (2.0, False, True, False),
    (0.5, True, False, True),
]


@pytest.mark.parametrize("spread,monotone,pad,decoy", CONFIGS)
def test_exact_equals_brute_force_and_heuristics_never_beat_it(spread, monotone, pad, decoy):
    rng = np.random.default_rng(7)
    strictly_worse = {"top_k": 0, "greedy": 0}
    instances = 0
    for k in (1, 2, 3, 4):
        for m in (k, k + 1, 6, 10) if k < 4 else (4, 7, 9):
            n = 24 if m <= 7 else 12
            arrays = random_instances(rng, n, m, k, spread=spread, monotone_positions=monotone, pad=pad, decoy=decoy)
            instance = as_instance(*arrays)
            exact = exact_slates(instance)
            attraction, value, v0, q0, weight, mask = arrays
            for row in range(n):
                columns = np.flatnonzero(mask[row])
                truth = brute_force(attraction[row], value[row], v0[row], q0[row], weight, columns, k)
                assert exact.value[row].item() == pytest.approx(truth, rel=1e-10, abs=1e-12)
                chosen = exact.slates[row].tolist()
                assert len(set(chosen)) == k and all(mask[row, chosen])
            assert int(exact.iterations.min()) >= 1 and int(exact.iterations.max()) <= 10
            # the returned value is the value of the returned slate, not just a number
            torch.testing.assert_close(slate_value(instance, exact.slates), exact.value)
            for name, solve in (("top_k", top_k_slates), ("greedy", greedy_slates)):
                heuristic = solve(instance)
                torch.testing.assert_close(slate_value(instance, heuristic.slates), heuristic.value)
                assert bool((heuristic.value <= exact.value + 1e-12).all()), name
                strictly_worse[name] += int((heuristic.value < exact.value - 1e-9).sum())
            instances += n
    assert instances >= 200
    # The comparison can tell an exact optimiser from a heuristic: top-k loses whenever the
    # attractions are spread out, greedy falls into the decoy trap.
    if spread >= 2.0 or decoy:
        assert strictly_worse["top_k"] > 0, strictly_worse
    if decoy:
        assert strictly_worse["greedy"] > 0, strictly_worse
    print(f"spread={spread} monotone={monotone} pad={pad} decoy={decoy}: {instances} instances, "
          f"strictly worse than exact: {strictly_worse}")


def test_greedy_falls_into_the_decoy_trap():
    # Alone: decoy 100·0.5/101 = 0.495 beats 0.9/2 = 0.45, so greedy starts with it and ends
    # at (50 + 0.9)/102 = 0.499; the optimum pairs the two others: 1.8/3 = 0.6.
    arrays = (np.array([[100.0, 1.0, 1.0]]), np.array([[0.5, 0.9, 0.9]]), np.array([1.0]), np.array([0.0]),
              np.array([1.0, 1.0]), np.ones((1, 3), bool))
    instance = as_instance(*arrays)
    assert greedy_slates(instance).value.item() == pytest.approx(50.9 / 102)
    assert exact_slates(instance).value.item() == pytest.approx(0.6)
    assert sorted(exact_slates(instance).slates[0].tolist()) == [1, 2]


def test_solves_exactly_k_not_at_most_k():
    # Item 1 alone is worth 1/2, but the interface shows exactly 2 items and every partner
    # drags the value down: {1, 2} = (1 + 5·0.2)/(1 + 1 + 5) = 2/7 beats {0, 1} = 2/12 and
    # {0, 2} = 2/16. The relaxed (at most k) optimum would be the lone item 1.
    attraction = np.array([[10.0, 1.0, 5.0]])
    value = np.array([[0.1, 1.0, 0.2]])
    arrays = (attraction, value, np.array([1.0]), np.array([0.0]), np.array([1.0, 1.0]), np.ones((1, 3), bool))
    solution = exact_slates(as_instance(*arrays))
    assert solution.value.item() == pytest.approx(2.0 / 7.0)
    assert sorted(solution.slates[0].tolist()) == [1, 2]
    relaxed = brute_force_at_most(attraction[0], value[0], 1.0, 0.0, np.array([1.0, 1.0]), [0, 1, 2], 2)
    assert relaxed == pytest.approx(0.5)


def test_best_items_take_the_most_attractive_positions():
    # Position 2 has the largest weight; with equal attractions the highest value goes there.
    arrays = (np.ones((1, 4)), np.array([[0.1, 0.9, 0.5, 0.3]]), np.array([1.0]), np.array([0.0]),
              np.array([0.5, 0.2, 2.0]), np.ones((1, 4), bool))
    for method in ("exact", "greedy", "top_k"):
        slate = optimise_slates(as_instance(*arrays), method).slates[0].tolist()
        assert slate == [2, 3, 1], method


def test_exact_certificate_at_catalogue_scale():
    # Optimality certificate without enumeration: at the returned λ* no slate has a positive
    # Σ w u (q − λ*) + v0 (q0 − λ*), i.e. G(λ*) = 0 (computed here by a full sort in numpy).
    rng = np.random.default_rng(3)
    n, m, k = 64, 2000, 5
    arrays = random_instances(rng, n, m, k, spread=2.0, monotone_positions=False, pad=False)
    solution = exact_slates(as_instance(*arrays))
    attraction, value, v0, q0, weight, _ = arrays
    lam = solution.value.numpy()
    gain = np.sort(attraction * (value - lam[:, None]), axis=1)[:, ::-1][:, :k]
    g = (gain * np.sort(weight)[::-1]).sum(axis=1) + v0 * (q0 - lam)
    assert np.all(g <= 1e-9 * (1 + np.abs(lam)))
    assert bool((solution.value >= top_k_slates(as_instance(*arrays)).value - 1e-12).all())


def test_click_probabilities_sum_to_one_and_follow_the_model():
    arrays = (np.array([[1.0, 3.0]]), np.zeros((1, 2)), np.array([2.0]), np.array([0.0]),
              np.array([1.0, 0.5]), np.ones((1, 2), bool))
    probs = click_probabilities(as_instance(*arrays), torch.tensor([[1, 0]]))
    # weights: no-click 2, item 1 at position 0 → 3·1, item 0 at position 1 → 1·0.5; total 5.5
    torch.testing.assert_close(probs, torch.tensor([[2 / 5.5, 3 / 5.5, 0.5 / 5.5]], dtype=torch.float64))


@pytest.mark.parametrize("change,match", [
    (dict(k_too_big=True), r"row 0: slate size k=3 exceeds its 2 candidates"),
    (dict(weight=np.array([1.0, 0.0])), "position weights"),
    (dict(v0=np.array([0.0])), "no-click attractions"),
])
def test_bad_instances_are_rejected(change, match):
    mask = np.array([[True, True, False]])
    weight = change.get("weight", np.array([1.0, 1.0, 1.0]) if change.get("k_too_big") else np.array([1.0, 1.0]))
    with pytest.raises(ValueError, match=match):
        as_instance(np.ones((1, 3)), np.ones((1, 3)), change.get("v0", np.array([1.0])), np.zeros(1), weight, mask)


def test_unknown_method_is_rejected():
    instance = as_instance(np.ones((1, 2)), np.ones((1, 2)), np.ones(1), np.zeros(1), np.ones(1), np.ones((1, 2), bool))
    with pytest.raises(ValueError, match="slate method must be one of exact, greedy, top_k"):
        optimise_slates(instance, "best")
