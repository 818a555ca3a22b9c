"""Reference policies: the rows every evaluation table needs.

- ``UniformPolicy``: the uniform-random logging policy of OBD (``random@obd``): every
  ordered slate of k distinct candidates equally likely; P(j at p) = 1/m_row exactly.
- ``BTSReplicaPolicy``: Bernoulli Thompson sampling with the Open Bandit prior
  (``prior_bts.yaml``, the ``bts@obd`` logging policy): draw θ_i ~ Beta(α_i, β_i) per
  candidate, show the k largest in order. Its per-position marginals have no cheap
  closed form, so they come from a seeded Monte-Carlo sample of ``mc_samples`` slates
  per candidate set; the replica *is* that empirical distribution (slates are drawn
  from the sample), so propensities and slate probabilities are exact for it and
  converge to Bernoulli TS at rate 1/sqrt(mc_samples) (OBP uses 100,000 draws too).
- ``PopularityPolicy``: the training click-through rate of each item, smoothed toward
  the global training CTR by ``prior_impressions`` pseudo-impressions.

Uniform and BTS are stochastic logging policies: their ``action_dist`` and ``slate``
are their own distribution whatever ``explore.mode`` says (only ``explore.seed`` is read).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd
import yaml

from liveslate.policies import exploration
from liveslate.policies.base import Candidates, Exploration, Policy, Slate, make_slate
from liveslate.policies.registry import read_policy_files, write_policy_files

# Monte-Carlo draws of θ processed at once (bounds memory to chunk·m·8 bytes).
_BTS_CHUNK = 20_000


def _item_ids(values: Sequence[str]) -> tuple[str, ...]:
    return tuple(str(v) for v in values)


class UniformPolicy(Policy):
    """Uniformly random ordered slates; every candidate scores 0 (all tied)."""

    kind: ClassVar[str] = "uniform"
    explores_itself: ClassVar[bool] = True

    def __init__(self, item_ids: Sequence[str], name: str = "uniform") -> None:
        self.item_ids = _item_ids(item_ids)
        self.name = name

    def scores(self, contexts: pd.DataFrame, candidates: Candidates) -> np.ndarray:
        return np.where(candidates.mask, 0.0, -np.inf)

    def action_dist(self, contexts: pd.DataFrame, candidates: Candidates, k: int,
                    explore: Exploration) -> np.ndarray:
        self.check_batch(contexts, candidates)
        exploration.check_k(candidates.mask, k)
        uniform = candidates.mask / candidates.counts[:, None]
        return np.repeat(uniform[:, :, None], k, axis=2)

    def slate(self, contexts: pd.DataFrame, candidates: Candidates, k: int, explore: Exploration) -> Slate:
        self.check_batch(contexts, candidates)
        exploration.check_k(candidates.mask, k)
        positions = exploration.sample_uniform_slate(candidates.mask, k, np.random.default_rng(explore.seed))
        return make_slate(candidates, positions, self.action_dist(contexts, candidates, k, explore),
                          exploration.uniform_slate_probability(candidates.mask, k))

    def save(self, directory: Path) -> None:
        write_policy_files(directory, {"kind": self.kind, "name": self.name, "item_ids": list(self.item_ids)}, {}, {})

    @classmethod
    def load(cls, directory: Path) -> "UniformPolicy":
        config, _, _ = read_policy_files(directory, cls.kind)
        return cls(config["item_ids"], name=config["name"])


def read_bts_prior(path: Path, item_ids: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """prior_bts.yaml → (alpha [n_items], beta [n_items]) in ``item_ids`` order.

    The file maps a campaign (room) to lists ``alpha`` and ``beta`` indexed by the
    campaign-local item id, so ``men/5`` takes ``men.alpha[5]``. Items the prior does
    not cover get NaN (the replica refuses to rank them).
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: BTS prior not found")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:  # OSError: a directory, no permission
        raise ValueError(f"{path}: not a readable YAML prior ({' '.join(str(err).split())})") from err
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: expected a mapping room → {{alpha: [...], beta: [...]}}")
    prior: dict[str, tuple[float, float]] = {}
    for room, spec in raw.items():
        if not isinstance(spec, dict) or not {"alpha", "beta"} <= set(spec):
            raise ValueError(f"{path}: room {room!r}: expected keys alpha and beta")
        alpha, beta = spec["alpha"], spec["beta"]
        if not isinstance(alpha, list) or not isinstance(beta, list):
            raise ValueError(f"{path}: room {room!r}: alpha and beta must be lists (one value per room-local item)")
        if len(alpha) != len(beta):
            raise ValueError(f"{path}: room {room!r}: {len(alpha)} alpha values but {len(beta)} beta values")
        for local, (a, b) in enumerate(zip(alpha, beta)):
            # bool is an int to Python; inf would make the posterior mean inf/inf = NaN.
            numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (a, b))
            if not (numbers and np.isfinite(a) and np.isfinite(b) and a > 0 and b > 0):
                raise ValueError(f"{path}: room {room!r}, item {local}: alpha and beta must be finite numbers > 0, "
                                 f"got {a!r}, {b!r}")
            prior[f"{room}/{local}"] = (float(a), float(b))
    pairs = np.array([prior.get(str(item), (np.nan, np.nan)) for item in item_ids], dtype=np.float64)
    return pairs[:, 0].copy(), pairs[:, 1].copy()


class BTSReplicaPolicy(Policy):
    """Bernoulli Thompson sampling with a fixed Beta prior per item (no updates).

    alpha, beta: [n_items] in stable item index order (NaN = not covered by the prior).
    mc_samples: slates drawn per candidate set to estimate the marginals.
    mc_seed: seed of those draws; each candidate set gets its own stream derived from
        (mc_seed, its item indices, k), so results never depend on call order.
    Scores are the posterior means α/(α+β).
    """

    kind: ClassVar[str] = "bts_replica"
    explores_itself: ClassVar[bool] = True

    def __init__(self, item_ids: Sequence[str], alpha: np.ndarray, beta: np.ndarray, mc_samples: int = 100_000,
                 mc_seed: int = 0, name: str = "bts_replica") -> None:
        self.item_ids = _item_ids(item_ids)
        self.alpha = np.asarray(alpha, dtype=np.float64)
        self.beta = np.asarray(beta, dtype=np.float64)
        if self.alpha.shape != (len(self.item_ids),) or self.beta.shape != (len(self.item_ids),):
            raise ValueError(f"BTSReplicaPolicy: alpha {self.alpha.shape} and beta {self.beta.shape} must both be "
                             f"[{len(self.item_ids)}] (one per item)")
        if mc_samples < 1:
            raise ValueError(f"BTSReplicaPolicy.mc_samples: expected >= 1, got {mc_samples}")
        self.mc_samples = int(mc_samples)
        self.mc_seed = int(mc_seed)
        self.name = name
        self._cache: dict[tuple[bytes, int], tuple[np.ndarray, np.ndarray, dict[bytes, int]]] = {}

    @classmethod
    def from_prior_file(cls, path: Path, item_ids: Sequence[str], mc_samples: int = 100_000,
                        mc_seed: int = 0) -> "BTSReplicaPolicy":
        alpha, beta = read_bts_prior(path, item_ids)
        return cls(item_ids, alpha, beta, mc_samples=mc_samples, mc_seed=mc_seed)

    def _prior(self, items: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        unknown = items[(items >= len(self.item_ids))]
        if unknown.size:
            raise ValueError(f"{self.name}: item index {int(unknown[0])} is beyond the {len(self.item_ids)} "
                             "items of the prior's item index")
        alpha, beta = self.alpha[items], self.beta[items]
        missing = items[np.isnan(alpha)]
        if missing.size:
            raise ValueError(f"{self.name}: item {self.item_ids[int(missing[0])]!r} has no BTS prior")
        return alpha, beta

    def scores(self, contexts: pd.DataFrame, candidates: Candidates) -> np.ndarray:
        out = np.full(candidates.items.shape, -np.inf)
        alpha, beta = self._prior(candidates.items[candidates.mask])
        out[candidates.mask] = alpha / (alpha + beta)
        return out

    def _sample(self, items: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, dict[bytes, int]]:
        """MC draws for one candidate set → (slates [S, k] local columns, marginals [m_row, k], slate counts)."""
        key = (items.tobytes(), k)
        if key not in self._cache:
            alpha, beta = self._prior(items)
            rng = np.random.default_rng([self.mc_seed, k, *items.tolist()])
            slates = []
            for start in range(0, self.mc_samples, _BTS_CHUNK):
                size = min(_BTS_CHUNK, self.mc_samples - start)
                theta = rng.beta(alpha[None, :], beta[None, :], size=(size, items.size))
                slates.append(exploration.greedy_positions(theta, np.ones_like(theta, dtype=bool), k))
            slates = np.concatenate(slates, axis=0)
            marginals = np.zeros((items.size, k))
            for p in range(k):
                marginals[:, p] = np.bincount(slates[:, p], minlength=items.size) / self.mc_samples
            codes, counts = np.unique(slates, axis=0, return_counts=True)
            self._cache[key] = (slates, marginals, {c.tobytes(): int(n) for c, n in zip(codes, counts)})
        return self._cache[key]

    def action_dist(self, contexts: pd.DataFrame, candidates: Candidates, k: int,
                    explore: Exploration) -> np.ndarray:
        self.check_batch(contexts, candidates)
        exploration.check_k(candidates.mask, k)
        dist = np.zeros((candidates.n, candidates.m, k))
        for row in range(candidates.n):
            columns = np.flatnonzero(candidates.mask[row])
            dist[row, columns, :] = self._sample(candidates.items[row, columns], k)[1]
        return dist

    def slate(self, contexts: pd.DataFrame, candidates: Candidates, k: int, explore: Exploration) -> Slate:
        self.check_batch(contexts, candidates)
        exploration.check_k(candidates.mask, k)
        rng = np.random.default_rng(explore.seed)
        draws = rng.integers(0, self.mc_samples, size=candidates.n)
        positions = np.zeros((candidates.n, k), dtype=np.int64)
        slate_probability = np.zeros(candidates.n)
        for row in range(candidates.n):
            columns = np.flatnonzero(candidates.mask[row])
            slates, _, counts = self._sample(candidates.items[row, columns], k)
            local = slates[draws[row]]
            positions[row] = columns[local]
            slate_probability[row] = counts[local.tobytes()] / self.mc_samples
        return make_slate(candidates, positions, self.action_dist(contexts, candidates, k, explore),
                          slate_probability)

    def save(self, directory: Path) -> None:
        import torch

        config = {"kind": self.kind, "name": self.name, "item_ids": list(self.item_ids),
                  "mc_samples": self.mc_samples, "mc_seed": self.mc_seed}
        write_policy_files(directory, config, {"alpha": torch.from_numpy(self.alpha),
                                               "beta": torch.from_numpy(self.beta)}, {})

    @classmethod
    def load(cls, directory: Path) -> "BTSReplicaPolicy":
        config, state, _ = read_policy_files(directory, cls.kind)
        return cls(config["item_ids"], state["alpha"].numpy(), state["beta"].numpy(),
                   mc_samples=config["mc_samples"], mc_seed=config["mc_seed"], name=config["name"])


class PopularityPolicy(Policy):
    """Scores = smoothed training CTR per item: (clicks_i + s·ctr) / (impressions_i + s).

    ctr: [n_items] in stable item index order; items beyond it (new items) score the
    global training CTR ``default_ctr``.
    """

    kind: ClassVar[str] = "popularity"

    def __init__(self, item_ids: Sequence[str], ctr: np.ndarray, default_ctr: float,
                 name: str = "popularity") -> None:
        self.item_ids = _item_ids(item_ids)
        self.ctr = np.asarray(ctr, dtype=np.float64)
        if self.ctr.shape != (len(self.item_ids),):
            raise ValueError(f"PopularityPolicy: ctr has shape {self.ctr.shape}, expected [{len(self.item_ids)}]")
        self.default_ctr = float(default_ctr)
        self.name = name

    @classmethod
    def from_logs(cls, logs: pd.DataFrame, item_ids: Sequence[str], prior_impressions: float = 10.0) -> "PopularityPolicy":
        """Fit on canonical training logs (one row per item shown; ``click`` 0/1)."""
        if prior_impressions < 0:
            raise ValueError(f"prior_impressions: expected >= 0, got {prior_impressions}")
        index = pd.Index(_item_ids(item_ids))
        positions = index.get_indexer(logs["item_id"].astype(str))
        if (positions < 0).any():
            row = int(np.flatnonzero(positions < 0)[0])
            raise ValueError(f"logs row {row}: item_id {logs['item_id'].iloc[row]!r} is not in the item index")
        clicks = np.bincount(positions, weights=logs["click"].to_numpy(dtype=np.float64), minlength=len(index))
        shown = np.bincount(positions, minlength=len(index)).astype(np.float64)
        global_ctr = float(clicks.sum() / shown.sum()) if shown.sum() else 0.0
        with np.errstate(invalid="ignore", divide="ignore"):
            ctr = (clicks + prior_impressions * global_ctr) / (shown + prior_impressions)
        return cls(index, np.nan_to_num(ctr, nan=global_ctr), global_ctr)

    def scores(self, contexts: pd.DataFrame, candidates: Candidates) -> np.ndarray:
        values = self.click_probability(contexts, candidates.items.ravel(), np.zeros(candidates.items.size))
        return np.where(candidates.mask, values.reshape(candidates.items.shape), -np.inf)

    def click_probability(self, contexts: pd.DataFrame, items: np.ndarray, positions: np.ndarray) -> np.ndarray:
        """[N] the item's smoothed training CTR (context and position play no role)."""
        items = np.asarray(items, dtype=np.int64)
        known = items < len(self.ctr)
        return np.where(known, self.ctr[np.where(known, items, 0)], self.default_ctr)

    def pl_logits(self, scores: np.ndarray) -> np.ndarray:
        """log CTR, so that PL at τ = 1 picks an item with probability ctr_i / Σ ctr."""
        return np.log(np.clip(scores, 1e-12, None))

    def save(self, directory: Path) -> None:
        import torch

        config = {"kind": self.kind, "name": self.name, "item_ids": list(self.item_ids),
                  "default_ctr": self.default_ctr}
        write_policy_files(directory, config, {"ctr": torch.from_numpy(self.ctr)}, {})

    @classmethod
    def load(cls, directory: Path) -> "PopularityPolicy":
        config, state, _ = read_policy_files(directory, cls.kind)
        return cls(config["item_ids"], state["ctr"].numpy(), config["default_ctr"], name=config["name"])


def build_reference_policies(train_logs: pd.DataFrame, item_ids: Sequence[str], bts_prior: Path | None,
                             bts_mc_samples: int, popularity_prior_impressions: float,
                             seed: int) -> dict[str, Policy]:
    """{"uniform", "popularity", "bts_replica" (when ``bts_prior`` is given)} as configured in params `policies`."""
    policies: dict[str, Policy] = {
        "uniform": UniformPolicy(item_ids),
        "popularity": PopularityPolicy.from_logs(train_logs, item_ids, popularity_prior_impressions),
    }
    if bts_prior is not None:
        policies["bts_replica"] = BTSReplicaPolicy.from_prior_file(bts_prior, item_ids, mc_samples=bts_mc_samples,
                                                                   mc_seed=seed)
    return policies
