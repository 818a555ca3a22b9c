"""SAC loss terms against hand-computed values (closed forms on tiny tensors)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from liveslate.policies.sac_losses import (
    actor_loss,
    behaviour_cloning_loss,
    cql_penalty,
    critic_loss,
    policy_terms,
    soft_value,
    target_entropy,
    td_target,
    temperature_loss,
)

# Two rows: row 0 has three real candidates, row 1 has two (its third column is padding,
# holding garbage that must never be read).
LOGITS = torch.tensor([[1.0, 2.0, 3.0], [0.5, -0.5, float("nan")]])
MASK = torch.tensor([[True, True, True], [True, True, False]])


def _softmax(values: list[float]) -> np.ndarray:
    e = np.exp(np.asarray(values) - max(values))
    return e / e.sum()


def test_policy_terms_match_masked_softmax_and_ignore_padding():
    terms = policy_terms(LOGITS, MASK)
    row0, row1 = _softmax([1.0, 2.0, 3.0]), _softmax([0.5, -0.5])
    np.testing.assert_allclose(terms.probs[0].numpy(), row0, rtol=1e-6)
    np.testing.assert_allclose(terms.probs[1, :2].numpy(), row1, rtol=1e-6)
    assert terms.probs[1, 2] == 0 and terms.log_probs[1, 2] == 0  # padding: π = 0, log π set to 0, not −inf
    assert torch.isfinite(terms.log_probs).all()
    expected_entropy = [-(row0 * np.log(row0)).sum(), -(row1 * np.log(row1)).sum()]
    np.testing.assert_allclose(terms.entropy.numpy(), expected_entropy, rtol=1e-6)


def test_soft_value_is_expected_q_minus_alpha_log_pi():
    terms = policy_terms(LOGITS, MASK)
    q = torch.tensor([[1.0, 0.0, 2.0], [3.0, 1.0, float("inf")]])  # inf on padding must not leak
    alpha = 0.5
    row0, row1 = _softmax([1.0, 2.0, 3.0]), _softmax([0.5, -0.5])
    expected = [
        (row0 * (np.array([1.0, 0.0, 2.0]) - alpha * np.log(row0))).sum(),
        (row1 * (np.array([3.0, 1.0]) - alpha * np.log(row1))).sum(),
    ]
    np.testing.assert_allclose(soft_value(terms, q, alpha).numpy(), expected, rtol=1e-6)


def test_td_target_uses_reward_alone_on_terminal_rows_even_with_nan_next_value():
    reward = torch.tensor([1.0, 0.0, 0.5])
    done = torch.tensor([True, False, False])
    next_value = torch.tensor([float("nan"), 2.0, -1.0])
    np.testing.assert_allclose(td_target(reward, done, 0.9, next_value).numpy(), [1.0, 1.8, -0.4], rtol=1e-6)


def test_critic_loss_is_mean_squared_error_on_the_logged_column():
    q = torch.tensor([[1.0, 2.0, 3.0], [0.0, 4.0, 0.0]])
    action = torch.tensor([2, 1])
    target = torch.tensor([2.0, 1.0])
    assert critic_loss(q, action, target).item() == pytest.approx(((3 - 2) ** 2 + (4 - 1) ** 2) / 2)


def test_cql_penalty_is_logsumexp_over_real_candidates_minus_logged_q():
    q = torch.tensor([[1.0, 2.0, 3.0], [0.5, -1.0, 100.0]])  # 100 is padding: excluded from the lse
    action = torch.tensor([0, 1])
    expected = ((math.log(math.exp(1) + math.exp(2) + math.exp(3)) - 1.0)
                + (math.log(math.exp(0.5) + math.exp(-1.0)) + 1.0)) / 2
    assert cql_penalty(q, action, MASK).item() == pytest.approx(expected, rel=1e-6)


def test_cql_gradient_lowers_the_unlogged_item_and_raises_the_logged_one():
    q = torch.zeros(1, 3, requires_grad=True)
    cql_penalty(q, torch.tensor([0]), torch.ones(1, 3, dtype=torch.bool)).backward()
    # d/dQ_j [lse − Q_0] = softmax_j − 1[j = 0] = 1/3 − 1, 1/3, 1/3
    np.testing.assert_allclose(q.grad.numpy(), [[1 / 3 - 1, 1 / 3, 1 / 3]], rtol=1e-6)


def test_actor_loss_with_alpha_zero_is_minus_expected_q_and_finite():
    terms = policy_terms(LOGITS, MASK)
    q = torch.tensor([[1.0, 0.0, 2.0], [3.0, 1.0, float("nan")]])
    row0, row1 = _softmax([1.0, 2.0, 3.0]), _softmax([0.5, -0.5])
    expected = -((row0 * [1.0, 0.0, 2.0]).sum() + (row1 * [3.0, 1.0]).sum()) / 2
    assert actor_loss(terms, q, 0.0).item() == pytest.approx(expected, rel=1e-6)
    logits = LOGITS.clone().requires_grad_(True)
    actor_loss(policy_terms(logits, MASK), q, 0.0).backward()
    assert torch.isfinite(logits.grad).all()


def test_actor_loss_with_alpha_adds_alpha_times_negative_entropy():
    terms = policy_terms(LOGITS, MASK)
    q = torch.zeros(2, 3)
    assert actor_loss(terms, q, 0.7).item() == pytest.approx(-0.7 * terms.entropy.mean().item(), rel=1e-6)


def test_behaviour_cloning_is_negative_log_likelihood_of_logged_items():
    terms = policy_terms(LOGITS, MASK)
    row0, row1 = _softmax([1.0, 2.0, 3.0]), _softmax([0.5, -0.5])
    expected = -(math.log(row0[2]) + math.log(row1[0])) / 2
    assert behaviour_cloning_loss(terms, torch.tensor([2, 0])).item() == pytest.approx(expected, rel=1e-6)


def test_target_entropy_is_ratio_times_log_candidate_count():
    mask = torch.tensor([[True, True, True, True], [True, True, False, False], [True, False, False, False]])
    np.testing.assert_allclose(target_entropy(mask, 0.5).numpy(), [0.5 * math.log(4), 0.5 * math.log(2), 0.0],
                               rtol=1e-6)


@pytest.mark.parametrize("entropy, sign", [(2.0, 1.0), (0.1, -1.0)])
def test_temperature_gradient_lowers_alpha_when_entropy_exceeds_target(entropy, sign):
    log_alpha = torch.tensor(0.0, requires_grad=True)
    temperature_loss(log_alpha, torch.tensor([entropy]), torch.tensor([1.0])).backward()
    # Gradient = entropy − target: positive (descent lowers α) when the policy is too random.
    assert log_alpha.grad.item() == pytest.approx(sign * abs(entropy - 1.0))
