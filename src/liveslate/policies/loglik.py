"""Validation log-likelihoods of a policy against the reference policies, with bootstrap CIs.

Two measures, both averaged per row and reported with a seeded percentile bootstrap:

- **choice log-likelihood** (every policy): over the clicked validation rows,
  log P_policy(clicked item shown first | context, the room's candidates), where
  P_policy is the policy's first-position distribution under Plackett–Luce sampling at
  τ = 1 (``action_dist(..., k=1, plackett_luce)``; the uniform and BTS replicas use their
  own distribution). Under uniform logging, P(item | click, x) ∝ CTR(x, item), so a
  model whose PL weights follow the CTR scores best. Uniform scores −log m exactly.
- **click log-likelihood** (policies with ``click_probability``, e.g. DeepFM): the mean
  Bernoulli log-likelihood of every validation row's click under the predicted CTR,
  against popularity (item CTR) and the training base rate (no features).

Differences are paired (same resampled rows), so their intervals account for the
shared noise of the few validation clicks.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from liveslate.policies.base import Candidates, Exploration, Policy
from liveslate.policies.dataset import item_positions
from liveslate.policies.training import bootstrap_mean_interval

CHOICE = Exploration(mode="plackett_luce", temperature=1.0)


def clicked_rows(logs: pd.DataFrame) -> pd.DataFrame:
    return logs[logs["click"].to_numpy() == 1].reset_index(drop=True)


def choice_log_likelihood(policy: Policy, clicked: pd.DataFrame, catalog: pd.DataFrame,
                          index: pd.Index) -> np.ndarray:
    """[n_clicked] log-probability of each clicked row's item under the policy's first-position choice."""
    if clicked.empty:
        return np.zeros(0)
    candidates = Candidates.whole_rooms(clicked["room_id"].astype(str).tolist(), catalog, index)
    items = item_positions(clicked["item_id"], index, "clicked validation rows")
    hit = candidates.mask & (candidates.items == items[:, None])
    missing = np.flatnonzero(~hit.any(axis=1))
    if missing.size:
        row = int(missing[0])
        raise ValueError(f"clicked row {row}: item {clicked['item_id'].iloc[row]!r} is not in the catalogue of "
                         f"room {clicked['room_id'].iloc[row]!r}")
    dist = policy.action_dist(clicked, candidates, 1, CHOICE)[:, :, 0]
    probability = dist[np.arange(len(clicked)), hit.argmax(axis=1)]
    with np.errstate(divide="ignore"):
        return np.log(probability)


def bernoulli_log_likelihood(probability: np.ndarray, clicks: np.ndarray) -> np.ndarray:
    """[n] log P(click_i) under Bernoulli(probability_i), probabilities clipped to [1e-12, 1 − 1e-12]."""
    p = np.clip(np.asarray(probability, dtype=np.float64), 1e-12, 1 - 1e-12)
    clicks = np.asarray(clicks, dtype=np.float64)
    return clicks * np.log(p) + (1 - clicks) * np.log1p(-p)


def compare(columns: dict[str, np.ndarray], subject: str, n_resamples: int, confidence: float,
            seed: int) -> dict[str, Any]:
    """Mean and paired-bootstrap interval of each column, and of subject − each other column."""
    names = list(columns)
    others = [n for n in names if n != subject]
    stacked = np.column_stack([columns[n] for n in names] + [columns[subject] - columns[n] for n in others])
    finite = np.isfinite(stacked).all(axis=0)
    low, high = bootstrap_mean_interval(np.where(np.isfinite(stacked), stacked, 0.0), n_resamples, confidence, seed)
    means = stacked.mean(axis=0)

    def entry(j: int) -> dict[str, float | None]:
        if not finite[j]:
            # A zero probability on a clicked item: the log-likelihood is −∞, not a number to average.
            return {"value": None, "ci_low": None, "ci_high": None}
        return {"value": float(means[j]), "ci_low": float(low[j]), "ci_high": float(high[j])}

    return {
        "policies": {name: entry(j) for j, name in enumerate(names)},
        "difference": {f"{subject}_minus_{name}": entry(len(names) + j) for j, name in enumerate(others)},
    }


def validation_log_likelihoods(policy: Policy, references: dict[str, Policy], valid: pd.DataFrame,
                               catalog: pd.DataFrame, index: pd.Index, base_rate: float, n_resamples: int,
                               confidence: float, seed: int) -> dict[str, Any]:
    """Both measures for ``policy`` against ``references`` (e.g. popularity, uniform) on the validation logs."""
    clicked = clicked_rows(valid)
    out: dict[str, Any] = {"n_rows": int(len(valid)), "n_clicks": int(len(clicked)), "confidence": confidence}
    if len(clicked):
        choice = {policy.name: choice_log_likelihood(policy, clicked, catalog, index)}
        for name, reference in references.items():
            choice[name] = choice_log_likelihood(reference, clicked, catalog, index)
        out["choice"] = compare(choice, policy.name, n_resamples, confidence, seed)
    else:
        out["choice"] = None
    if hasattr(policy, "click_probability") and len(valid):
        items = item_positions(valid["item_id"], index, "valid split")
        positions = valid["position"].to_numpy(dtype=np.int64)
        clicks = valid["click"].to_numpy()
        click = {policy.name: bernoulli_log_likelihood(policy.click_probability(valid, items, positions), clicks)}
        for name, reference in references.items():
            if hasattr(reference, "click_probability"):
                click[name] = bernoulli_log_likelihood(reference.click_probability(valid, items, positions), clicks)
        click["base_rate"] = bernoulli_log_likelihood(np.full(len(valid), base_rate), clicks)
        out["click"] = compare(click, policy.name, n_resamples, confidence, seed + 1)
    return out
