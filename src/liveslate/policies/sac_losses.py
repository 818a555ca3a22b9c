"""Loss terms of offline discrete Soft Actor-Critic, on plain tensors.

Discrete SAC (Haarnoja et al. 2018; Christodoulou 2019) over a *masked* action set:
every row has its own candidate items (the room's catalogue), padded to ``m`` columns
with a boolean ``mask`` (True = real candidate). Because the action set is finite, every
expectation over the policy is an exact sum over the candidates instead of a sampled
estimate. Offline, the critics carry a conservative penalty (CQL(H), Kumar et al. 2020).

Shapes: ``B`` rows, ``m`` candidate columns. ``logits``/``q`` are ``[B, m]`` float,
``mask`` is ``[B, m]`` bool with at least one True per row, ``action`` is ``[B]`` int64
(a column index into the row's candidates), ``reward``/``done`` are ``[B]``.

No function here takes ``log`` of a probability: log-probabilities come from
``log_softmax`` and are set to 0 on masked columns, where the probability is exactly 0,
so ``π · log π`` is 0 there instead of ``0 · (−inf) = NaN``. A temperature ``α = 0`` is
therefore an ordinary value.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = [
    "PolicyTerms",
    "actor_loss",
    "behaviour_cloning_loss",
    "cql_penalty",
    "critic_loss",
    "policy_terms",
    "soft_value",
    "target_entropy",
    "td_target",
    "temperature_loss",
]


@dataclass(frozen=True)
class PolicyTerms:
    """The actor's distribution over each row's candidates.

    probs: ``[B, m]``, exactly 0 on masked columns, rows sum to 1.
    log_probs: ``[B, m]``, log π on real candidates and 0 on masked columns (never −inf).
    entropy: ``[B]``, H(π(·|s)) = −Σ π log π in nats.
    mask: ``[B, m]`` bool, the real candidates.
    """

    probs: torch.Tensor
    log_probs: torch.Tensor
    entropy: torch.Tensor
    mask: torch.Tensor


def policy_terms(logits: torch.Tensor, mask: torch.Tensor) -> PolicyTerms:
    """Masked softmax of ``logits`` ``[B, m]`` over the True columns of ``mask``."""
    masked = logits.masked_fill(~mask, float("-inf"))
    log_probs = torch.log_softmax(masked, dim=-1).masked_fill(~mask, 0.0)
    probs = torch.softmax(masked, dim=-1).masked_fill(~mask, 0.0)
    entropy = -(probs * log_probs).sum(dim=-1)
    return PolicyTerms(probs=probs, log_probs=log_probs, entropy=entropy, mask=mask)


def soft_value(policy: PolicyTerms, q_min: torch.Tensor, alpha: torch.Tensor | float) -> torch.Tensor:
    """Soft state value V(s) = Σ_j π(j|s) [Q(s, j) − α log π(j|s)], shape ``[B]``.

    ``q_min`` is the element-wise minimum of the twin (target) critics, ``[B, m]``; its
    masked columns may hold anything (even non-finite values): they are zeroed here
    before being weighted by π = 0.
    """
    q = q_min.masked_fill(~policy.mask, 0.0)
    return (policy.probs * (q - alpha * policy.log_probs)).sum(dim=-1)


def td_target(reward: torch.Tensor, done: torch.Tensor, gamma: float, next_value: torch.Tensor) -> torch.Tensor:
    """Bellman target y = r + γ (1 − done) V(s'), shape ``[B]``.

    Terminal rows use r alone: ``torch.where`` drops ``next_value`` there entirely, so a
    terminal row's (meaningless, possibly padded) next state cannot leak a NaN into y.
    """
    bootstrapped = reward + gamma * next_value
    return torch.where(done.bool(), reward, bootstrapped)


def critic_loss(q: torch.Tensor, action: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared TD error of one critic on the logged actions: mean (Q(s, a) − y)²."""
    q_taken = q.gather(1, action.unsqueeze(1)).squeeze(1)
    return torch.mean((q_taken - target) ** 2)


def cql_penalty(q: torch.Tensor, action: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """CQL(H) regulariser: mean over rows of logsumexp_j Q(s, j) − Q(s, a).

    The log-sum-exp runs over the row's real candidates only, so the penalty is ≥ 0 (a
    soft maximum is at least the logged item's value). Minimising it pushes down the value
    of every candidate in proportion to its softmax weight while pushing up the logged one,
    so items the logs never show end up valued below the logged ones.
    """
    q_taken = q.gather(1, action.unsqueeze(1)).squeeze(1)
    lse = torch.logsumexp(q.masked_fill(~mask, float("-inf")), dim=-1)
    return torch.mean(lse - q_taken)


def actor_loss(policy: PolicyTerms, q_min: torch.Tensor, alpha: torch.Tensor | float) -> torch.Tensor:
    """Policy improvement: mean over rows of Σ_j π(j|s) [α log π(j|s) − Q(s, j)].

    ``q_min`` must be detached by the caller: the actor does not train the critics.
    """
    q = q_min.masked_fill(~policy.mask, 0.0)
    return torch.mean((policy.probs * (alpha * policy.log_probs - q)).sum(dim=-1))


def behaviour_cloning_loss(policy: PolicyTerms, action: torch.Tensor) -> torch.Tensor:
    """Negative log-likelihood of the logged actions under the actor: mean −log π(a|s)."""
    return -torch.mean(policy.log_probs.gather(1, action.unsqueeze(1)).squeeze(1))


def target_entropy(mask: torch.Tensor, ratio: float) -> torch.Tensor:
    """Per-row target entropy = ratio × log |candidates of the row|, shape ``[B]``, nats.

    A row with one candidate has target 0, which its (zero-entropy) policy meets exactly.
    """
    count = mask.sum(dim=-1).to(torch.float32)
    return ratio * torch.log(count)


def temperature_loss(log_alpha: torch.Tensor, entropy: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Temperature loss log α · mean(H(π(·|s)) − H̄(s)) with the entropy gap detached.

    Its gradient with respect to log α is the mean entropy excess: when the policy is more
    random than the target, gradient descent lowers α (less entropy bonus), and vice versa.
    Written in log α rather than α so the step size is relative to α's scale.
    """
    gap = (entropy - target).detach()
    return log_alpha * torch.mean(gap)

