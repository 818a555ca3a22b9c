"""A small item-position bandit with a known policy value, for the OPE tests.

Contexts x ∈ {0..3} (uniform), m = 5 candidate items, k = 2 positions (uniform); each
logged row is one impression showing one item at one position (OBD style). Clicks are
Bernoulli(q(x, a, p)) with q = sigmoid(item + context + position effects). Logging and
evaluation policies are fixed softmax tables π(a | x, p) with full support, so the true
value V = Σ_x P(x) Σ_p P(p) Σ_a π_e(a | x, p) q(x, a, p) is exact.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from liveslate.ope.inputs import ActionDist, LoggedRows, RewardPredictions

N_CONTEXTS, N_ITEMS, N_POSITIONS = 4, 5, 2


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = np.exp(logits - logits.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


@dataclass(frozen=True)
class Bandit:
    """Tables indexed [x, a, p] (q) or [x, p, a] → stored as [x, p, a] for the policies."""

    click: np.ndarray      # [x, a, p] click probability
    logging: np.ndarray    # [x, p, a]
    evaluation: np.ndarray  # [x, p, a]

    @property
    def value(self) -> float:
        """Exact value of the evaluation policy (uniform x and p)."""
        per = np.einsum("xpa,xap->xp", self.evaluation, self.click)
        return float(per.mean())

    @property
    def logging_value(self) -> float:
        return float(np.einsum("xpa,xap->xp", self.logging, self.click).mean())


def make_bandit() -> Bandit:
    """A fixed instance (not seed-dependent): the truth stays the same across seeds."""
    item = np.array([-1.5, -0.5, 0.0, -1.0, 0.5])
    context = np.array([-0.5, 0.0, 0.3, -0.2])
    position = np.array([0.0, -0.7])
    click = 1.0 / (1.0 + np.exp(-(item[None, :, None] + context[:, None, None] + position[None, None, :])))
    grid = np.arange(N_ITEMS)[None, None, :]
    logging = _softmax((0.3 * np.sin(grid + np.arange(N_CONTEXTS)[:, None, None])
                        + np.zeros((N_CONTEXTS, N_POSITIONS, 1))).reshape(-1, N_ITEMS)).reshape(N_CONTEXTS, N_POSITIONS, N_ITEMS)
    evaluation = _softmax((0.8 * np.cos(grid * 1.3 + np.arange(N_POSITIONS)[None, :, None])
                           + 0.4 * np.arange(N_CONTEXTS)[:, None, None] * (grid == 4)).reshape(-1, N_ITEMS)
                          ).reshape(N_CONTEXTS, N_POSITIONS, N_ITEMS)
    return Bandit(click=click, logging=logging, evaluation=evaluation)


@dataclass(frozen=True)
class SyntheticLogs:
    logs: LoggedRows
    action_dist: ActionDist
    frame: pd.DataFrame          # canonical-like rows for the reward model
    context: np.ndarray          # [n]
    bandit: Bandit

    def predictions(self, table: np.ndarray, folds: int = 0) -> RewardPredictions:
        """Keyed predictions from a fixed [x, a, p] table (independent of the sampled rewards)."""
        values = table[self.context][:, :, :].transpose(0, 2, 1)[np.arange(len(self.context)), self.logs.position]
        return RewardPredictions(self.logs.impression_id, self.logs.position, values, folds=folds, model="table")


def draw(bandit: Bandit, n: int, seed: int) -> SyntheticLogs:
    rng = np.random.default_rng(seed)
    context = rng.integers(0, N_CONTEXTS, size=n)
    position = rng.integers(0, N_POSITIONS, size=n)
    logging = bandit.logging[context, position]                  # [n, a]
    item = (rng.random(n)[:, None] > np.cumsum(logging, axis=1)).sum(axis=1)
    item = np.minimum(item, N_ITEMS - 1)
    reward = (rng.random(n) < bandit.click[context, item, position]).astype(float)
    ids = np.array([f"s{seed}/{i}" for i in range(n)], dtype=object)
    logs = LoggedRows(impression_id=ids, position=position, candidate=item, reward=reward,
                      propensity=logging[np.arange(n), item])
    action_dist = ActionDist.at_position(ids, position, bandit.evaluation[context, position])
    frame = pd.DataFrame({"impression_id": pd.array(ids, dtype="string"), "position": position.astype("int16"),
                          "reward": reward.astype("float32"),
                          "ctx_segment": pd.array([f"u{c}" for c in context], dtype="string")})
    return SyntheticLogs(logs=logs, action_dist=action_dist, frame=frame, context=context, bandit=bandit)
