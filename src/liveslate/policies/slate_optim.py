"""Slate optimisation under a conditional-logit choice model (SlateQ, Ie et al. 2019).

A viewer shown slate ``A`` (item ``A_p`` at position ``p``) clicks item ``A_p`` with
probability ``w_p u_{A_p} / (v_0 + Σ_r w_r u_{A_r})`` and clicks nothing with probability
``v_0 / (v_0 + Σ_r w_r u_{A_r})``, where ``u_i = exp(utility of i at position 0)`` is the
item's attraction, ``w_p = exp(position bias of p)`` and ``v_0`` the no-click attraction.
With item-wise long-term values ``q_i = Q̄(x, i)`` and the no-click value ``q_0``, the slate
value is the ratio

    F(A) = (v_0 q_0 + Σ_p w_p u_{A_p} q_{A_p}) / (v_0 + Σ_p w_p u_{A_p}).

Three optimisers, all returning ordered slates of **exactly k distinct items** (the Policy
interface always shows k items):

* ``top_k``  — the k items with the largest ``u_i (q_i − q_0)`` (the SlateQ paper's top-k).
* ``greedy`` — fill the positions from the most to the least attractive one, each time adding
  the item that maximises the value of the partial slate.
* ``exact``  — the optimum of F over ordered k-slates by Dinkelbach's parametric search:
  ``G(λ) = max_A Σ_p w_p u_{A_p} (q_{A_p} − λ) + v_0 (q_0 − λ)`` is decreasing in λ and its
  root is the optimal value. For a fixed λ the maximiser is exact and cheap: take the k
  items with the largest ``c_i = u_i (q_i − λ)`` and give the largest ``c`` to the largest
  ``w`` (rearrangement inequality; it holds for negative ``c`` too, which is what makes the
  exactly-k optimum differ from the at-most-k one, where items with ``c_i ≤ 0`` would be
  dropped). Iterating ``λ ← F(A(λ))`` increases λ monotonically and stops, after a handful
  of sorts, at a slate with ``G(λ) = 0``, i.e. the global optimum.

``top_k`` and ``greedy`` choose a set and then order it optimally with the same parametric
search restricted to that set, so every optimiser puts its most valuable items in the
positions the position bias favours. Everything is vectorised over a batch of requests;
ties break towards the lower candidate column (stable sorts), so results never depend on
anything but the inputs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

SlateMethod = Literal["exact", "greedy", "top_k"]
SLATE_METHODS: tuple[str, ...] = ("exact", "greedy", "top_k")


@dataclass(frozen=True)
class SlateInstance:
    """A batch of slate problems; n requests, m candidate columns, k positions.

    attraction:      [n, m] ≥ 0, ``u_i``: exp(choice utility of the item at position 0).
    value:           [n, m] item-wise long-term value ``Q̄(x, i)`` (reward units).
    null_attraction: [n] > 0, ``v_0``: attraction of the no-click option.
    null_value:      [n] ``Q̄(x, ⊥)``: value of a no-click (0 for one-step problems).
    position_weight: [k] > 0, ``w_p = exp(position bias of p)``; its length is the slate size.
    mask:            [n, m] bool, True = a real candidate (padding is never chosen).
    """

    attraction: torch.Tensor
    value: torch.Tensor
    null_attraction: torch.Tensor
    null_value: torch.Tensor
    position_weight: torch.Tensor
    mask: torch.Tensor

    def __post_init__(self) -> None:
        n, m = self.attraction.shape
        if self.value.shape != (n, m) or self.mask.shape != (n, m):
            raise ValueError(f"value {tuple(self.value.shape)} and mask {tuple(self.mask.shape)} "
                             f"must match attraction {(n, m)}")
        if self.null_attraction.shape != (n,) or self.null_value.shape != (n,):
            raise ValueError(f"null_attraction and null_value must have shape ({n},)")
        if self.position_weight.ndim != 1 or len(self.position_weight) < 1:
            raise ValueError("position_weight must be a non-empty vector, one weight per position")
        if self.mask.dtype != torch.bool:
            raise ValueError(f"mask must be bool, got {self.mask.dtype}")
        if bool((self.position_weight <= 0).any()) or bool((self.null_attraction <= 0).any()):
            raise ValueError("position weights and no-click attractions must be > 0")
        if bool((self.attraction[self.mask] < 0).any()):
            raise ValueError("attractions of real candidates must be >= 0")
        counts = self.mask.sum(dim=1)
        short = torch.nonzero(counts < self.k).flatten()
        if len(short):
            row = int(short[0])
            raise ValueError(f"row {row}: slate size k={self.k} exceeds its {int(counts[row])} candidates")

    @property
    def k(self) -> int:
        return len(self.position_weight)


@dataclass(frozen=True)
class SlateSolution:
    """slates: [n, k] int64 candidate columns, slates[:, p] shown at position p; value: [n] F(slate);
    iterations: [n] int64 sorts of the exact search after its top-k start, the last one confirming
    optimality (None from the heuristics)."""

    slates: torch.Tensor
    value: torch.Tensor
    iterations: torch.Tensor | None = None


def slate_value(instance: SlateInstance, slates: torch.Tensor) -> torch.Tensor:
    """F(A) [n] of ordered slates [n, k] (candidate columns) under the choice model."""
    u = torch.gather(instance.attraction, 1, slates) * instance.position_weight
    q = torch.gather(instance.value, 1, slates)
    v0, q0 = instance.null_attraction, instance.null_value
    return (v0 * q0 + (u * q).sum(dim=1)) / (v0 + u.sum(dim=1))


def click_probabilities(instance: SlateInstance, slates: torch.Tensor) -> torch.Tensor:
    """[n, k + 1]: P(no click), then P(click on slates[:, p]) for each position p."""
    u = torch.gather(instance.attraction, 1, slates) * instance.position_weight
    weights = torch.cat([instance.null_attraction[:, None], u], dim=1)
    return weights / weights.sum(dim=1, keepdim=True)


def position_order(position_weight: torch.Tensor) -> torch.Tensor:
    """[k] positions from the most to the least attractive (ties: earlier position first)."""
    return torch.sort(position_weight, descending=True, stable=True).indices


def _place(ranked: torch.Tensor, order: torch.Tensor) -> torch.Tensor:
    """Put the r-th ranked column [n, k] at position order[r]."""
    slates = torch.empty_like(ranked)
    slates[:, order] = ranked
    return slates


def _best_for_lambda(instance: SlateInstance, lam: torch.Tensor, order: torch.Tensor) -> torch.Tensor:
    """argmax_A Σ_p w_p u_{A_p} (q_{A_p} − λ) over ordered k-slates, [n, k] (rearrangement)."""
    gain = instance.attraction * (instance.value - lam[:, None])
    gain = gain.masked_fill(~instance.mask, float("-inf"))
    ranked = torch.sort(gain, dim=1, descending=True, stable=True).indices[:, : instance.k]
    return _place(ranked, order)


def _ranked_by(key: torch.Tensor, instance: SlateInstance) -> torch.Tensor:
    """The k columns with the largest key [n, m] (masked excluded), as a bool set [n, m]."""
    key = key.masked_fill(~instance.mask, float("-inf"))
    ranked = torch.sort(key, dim=1, descending=True, stable=True).indices[:, : instance.k]
    chosen = torch.zeros_like(instance.mask)
    chosen.scatter_(1, ranked, True)
    return chosen


def exact_slates(instance: SlateInstance, max_iterations: int = 100) -> SlateSolution:
    """The optimal ordered k-slate of every row by Dinkelbach iteration (see module doc).

    Starts from the top-k slate's value; each iteration costs one sort of [n_active, m].
    ``max_iterations`` only guards against a floating-point cycle: exact arithmetic
    terminates in finitely many steps and in practice it takes 2–6.
    """
    order = position_order(instance.position_weight)
    slates = _best_for_lambda(instance, instance.null_value.clone(), order)  # = the top-k slate
    lam = slate_value(instance, slates)
    tolerance = 64 * torch.finfo(lam.dtype).eps
    active = torch.arange(len(lam))
    iterations = torch.zeros(len(lam), dtype=torch.int64)
    for _ in range(max_iterations):
        if len(active) == 0:
            break
        iterations[active] += 1
        sub = SlateInstance(instance.attraction[active], instance.value[active],
                            instance.null_attraction[active], instance.null_value[active],
                            instance.position_weight, instance.mask[active])
        candidate = _best_for_lambda(sub, lam[active], order)
        candidate_value = slate_value(sub, candidate)
        improved = candidate_value > lam[active] + tolerance * (1.0 + lam[active].abs())
        rows = active[improved]
        slates[rows] = candidate[improved]
        lam[rows] = candidate_value[improved]
        active = rows
    return SlateSolution(slates=slates, value=lam, iterations=iterations)


def order_optimally(instance: SlateInstance, chosen: torch.Tensor) -> SlateSolution:
    """Best ordering of each row's chosen set (bool [n, m], exactly k True per row).

    Solved on the k chosen columns alone (an [n, k] problem), so ordering costs sorts of
    k entries rather than of the whole candidate row.
    """
    columns = torch.nonzero(chosen)[:, 1].reshape(len(chosen), instance.k)  # row-major: each row's k columns
    sub = SlateInstance(torch.gather(instance.attraction, 1, columns), torch.gather(instance.value, 1, columns),
                        instance.null_attraction, instance.null_value, instance.position_weight,
                        torch.ones_like(columns, dtype=torch.bool))
    ordered = exact_slates(sub)
    return SlateSolution(slates=torch.gather(columns, 1, ordered.slates), value=ordered.value)


def top_k_slates(instance: SlateInstance) -> SlateSolution:
    """The k items with the largest u_i (q_i − q_0), ordered optimally."""
    key = instance.attraction * (instance.value - instance.null_value[:, None])
    return order_optimally(instance, _ranked_by(key, instance))


def greedy_slates(instance: SlateInstance) -> SlateSolution:
    """Add one item at a time (most attractive position first) maximising the partial slate's value."""
    u, q, w = instance.attraction, instance.value, instance.position_weight
    numerator = instance.null_attraction * instance.null_value
    denominator = instance.null_attraction.clone()
    chosen = torch.zeros_like(instance.mask)
    rows = torch.arange(len(numerator))
    for position in position_order(w).tolist():
        weighted = w[position] * u
        value = (numerator[:, None] + weighted * q) / (denominator[:, None] + weighted)
        value = value.masked_fill(~instance.mask | chosen, float("-inf"))
        best = torch.argmax(value, dim=1)  # first maximum = lowest column on ties
        chosen[rows, best] = True
        numerator = numerator + weighted[rows, best] * q[rows, best]
        denominator = denominator + weighted[rows, best]
    return order_optimally(instance, chosen)


def optimise_slates(instance: SlateInstance, method: SlateMethod) -> SlateSolution:
    """Dispatch on the configured optimiser name."""
    if method == "exact":
        return exact_slates(instance)
    if method == "greedy":
        return greedy_slates(instance)
    if method == "top_k":
        return top_k_slates(instance)
    raise ValueError(f"slate method must be one of {', '.join(SLATE_METHODS)}, got {method!r}")
