"""Conditional-logit user choice model with a no-click option and a position bias (pure torch).

A viewer in context x shown slate A (item A_p at position p) picks one option among the
slate's items and **no click**:

    P(A_p | x, A) = exp(f(x, A_p) + b_p) / (1 + Σ_r exp(f(x, A_r) + b_r)),
    P(⊥ | x, A)   = 1 / (1 + Σ_r exp(f(x, A_r) + b_r)).

The no-click utility is pinned at 0 and the position bias at b_0 = 0: adding a constant
to every utility (or to f and subtracting it from b) leaves the probabilities unchanged,
so these two pins make the parameters identifiable. A context-dependent no-click appeal
lives in the context part of f. ``f(x, i)`` is therefore the log-odds of clicking i shown
alone at position 0. Positions at or beyond the last learned one share its bias.

Maximum likelihood uses every impression: a click on slot p contributes log P(A_p | x, A),
an impression without clicks log P(⊥ | x, A). An impression with several clicks contributes
one choice event per clicked slot, each against the full slate (a composite likelihood:
the one-choice model cannot express several clicks, and this keeps every click's signal).
On one-item impressions (OBD) the model is a logistic regression of click on f + b_p.
"""

from __future__ import annotations

import torch


def position_bias(free_bias: torch.Tensor) -> torch.Tensor:
    """[P] bias per position from the P − 1 learned values of positions 1..P−1 (b_0 = 0)."""
    return torch.cat([free_bias.new_zeros(1), free_bias])


def bias_at(bias: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """b at logged positions (any shape, int64); positions beyond the last learned share its bias."""
    return bias[positions.clamp(min=0, max=len(bias) - 1)]


def choice_logits(utility: torch.Tensor, positions: torch.Tensor, slot_mask: torch.Tensor,
                  bias: torch.Tensor) -> torch.Tensor:
    """[n, 1 + k] logits: column 0 = no click (0), column 1 + s = slot s (−inf where padded).

    utility: [n, k] f(x, item in slot s); positions: [n, k] int64 position of slot s;
    slot_mask: [n, k] bool, True = a shown item; bias: [P] from ``position_bias``.
    """
    logits = (utility + bias_at(bias, positions)).masked_fill(~slot_mask, float("-inf"))
    return torch.cat([utility.new_zeros(utility.shape[0], 1), logits], dim=1)


def choice_probabilities(logits: torch.Tensor) -> torch.Tensor:
    """[n, 1 + k] P(⊥), P(slot s) from ``choice_logits`` (padded slots get 0)."""
    return torch.softmax(logits, dim=1)


def choice_nll(logits: torch.Tensor, clicks: torch.Tensor, slot_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(sum of −log-likelihoods, number of choice events) of the logged outcomes.

    logits: [n, 1 + k] from ``choice_logits``; clicks: [n, k] 0/1 per slot (clicks on
    padded slots are ignored); each clicked slot is one event, an impression with no
    click is one no-click event. Divide the sum by the count for a mean per event.
    """
    log_prob = torch.log_softmax(logits, dim=1)
    clicked = (clicks > 0) & slot_mask
    no_click = ~clicked.any(dim=1)
    # where() keeps −inf log-probabilities of padded slots out of the sum (0·−inf = nan).
    click_terms = torch.where(clicked, log_prob[:, 1:], torch.zeros_like(log_prob[:, 1:])).sum()
    no_click_terms = torch.where(no_click, log_prob[:, 0], torch.zeros_like(log_prob[:, 0])).sum()
    events = clicked.sum() + no_click.sum()
    return -(click_terms + no_click_terms), events
