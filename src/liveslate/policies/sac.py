"""The offline discrete SAC policy: the actor's masked softmax over each row's candidates.

``scores`` are the actor's log-probabilities log π(j | x) over the row's candidates
(masked −inf), so:
- mode ``none`` / greedy: the top-k of π (stable tie-break by column);
- mode ``plackett_luce`` with τ = 1: sampling without replacement from π itself, the
  maximum-entropy policy SAC learnt (τ < 1 sharpens it, τ > 1 flattens it); the
  whole-slate probability and the per-position marginals come from ``exploration.py``
  (exact marginals for small rooms, a documented Monte-Carlo estimate for large ones);
- mode ``epsilon``: the interface's ε-greedy around the top-k.
``q_values`` gives the twin-minimum critic value of every candidate (diagnostics).

Saved as config.json (architecture + item index), weights.pt (the state_dict of every
network: actor, critics, targets, temperature) and encoders.json (the context encoder).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import torch

from liveslate.policies.base import Candidates, Policy
from liveslate.policies.encoders import FeatureEncoder
from liveslate.policies.network_inputs import encode_request
from liveslate.policies.registry import read_policy_files, write_policy_files
from liveslate.policies.sac_losses import policy_terms
from liveslate.policies.sac_networks import SacNetworks

# Rows per forward pass when scoring: bounds memory at [chunk, m, hidden] floats.
_SCORE_CHUNK = 4096


def build_sac_networks(architecture: dict[str, Any], kg_vectors: torch.Tensor | None) -> SacNetworks:
    """SacNetworks from the JSON ``architecture`` (see ``SacPolicy``) and optional KG vectors."""
    return SacNetworks(
        cardinalities=[int(c) for c in architecture["cardinalities"]],
        numeric_dim=int(architecture["numeric_dim"]),
        n_items=int(architecture["n_items"]),
        embedding_dim=int(architecture["embedding_dim"]),
        hidden=int(architecture["hidden"]),
        kg_vectors=kg_vectors,
        alpha_mode=str(architecture["alpha_mode"]),
        alpha_init=float(architecture["alpha_init"]),
    )


class SacPolicy(Policy):
    """Discrete SAC actor as a slate policy.

    architecture: {"cardinalities": [context field cardinalities], "numeric_dim": int,
    "n_items": int, "embedding_dim": int, "hidden": int, "kg_dim": int (0 = no KG vectors),
    "alpha_mode": "auto"|"fixed", "alpha_init": float, "reward_scale": float (the critics
    learnt rewards divided by it)}.
    """

    kind: ClassVar[str] = "sac"

    def __init__(self, name: str, item_ids: Sequence[str], nets: SacNetworks, context_encoder: FeatureEncoder,
                 architecture: dict[str, Any]) -> None:
        self.name = name
        self.item_ids = tuple(str(i) for i in item_ids)
        if len(self.item_ids) != int(architecture["n_items"]):
            raise ValueError(f"{name}: {len(self.item_ids)} item ids but the networks hold "
                             f"{architecture['n_items']} items")
        self.nets = nets.eval()
        self.context_encoder = context_encoder
        self.architecture = dict(architecture)

    # ------------------------------------------------------------------ predictions
    def _encoded(self, contexts: pd.DataFrame, candidates: Candidates) -> tuple[torch.Tensor, ...]:
        return encode_request(self.name, len(self.item_ids), self.context_encoder, contexts, candidates)

    def _chunks(self, contexts: pd.DataFrame, candidates: Candidates, fn) -> np.ndarray:
        codes, values, items, mask = self._encoded(contexts, candidates)
        out = np.empty(candidates.items.shape, dtype=np.float64)
        with torch.no_grad():
            for start in range(0, candidates.n, _SCORE_CHUNK):
                rows = slice(start, start + _SCORE_CHUNK)
                out[rows] = fn(codes[rows], values[rows], items[rows], mask[rows]).double().numpy()
        return np.where(candidates.mask, out, -np.inf)

    def scores(self, contexts: pd.DataFrame, candidates: Candidates) -> np.ndarray:
        """[n, m] log π(j | x) of the actor over each row's candidates; masked −inf."""
        def log_pi(codes, values, items, mask):
            return policy_terms(self.nets.actor(codes, values, items), mask).log_probs
        return self._chunks(contexts, candidates, log_pi)

    def q_values(self, contexts: pd.DataFrame, candidates: Candidates) -> np.ndarray:
        """[n, m] min(Q1, Q2)(x, j) in reward units: the conservative critics' value of each candidate; masked −inf."""
        scale = float(self.architecture.get("reward_scale", 1.0))

        def q_min(codes, values, items, mask):
            return torch.minimum(self.nets.critic1(codes, values, items), self.nets.critic2(codes, values, items))
        return self._chunks(contexts, candidates, q_min) * scale

    @property
    def alpha(self) -> float:
        """The temperature α the actor was trained with at the end (≥ 0)."""
        return float(self.nets.alpha())

    # ------------------------------------------------------------------ persistence
    def save(self, directory: Path) -> None:
        config = {"kind": self.kind, "name": self.name, "item_ids": list(self.item_ids),
                  "architecture": self.architecture}
        write_policy_files(directory, config, self.nets.state_dict(), {"context": self.context_encoder.to_json()})

    @classmethod
    def load(cls, directory: Path) -> "SacPolicy":
        config, state, encoders = read_policy_files(directory, cls.kind)
        try:
            architecture = config["architecture"]
            kg_dim = int(architecture["kg_dim"])
            context = encoders["context"]
        except (KeyError, TypeError, ValueError) as err:
            raise ValueError(f"{Path(directory)}: malformed SAC policy files ({err!r})") from err
        # The KG vectors are a buffer of the state_dict; a placeholder of the right shape is overwritten on load.
        placeholder = torch.zeros(int(architecture["n_items"]), kg_dim) if kg_dim else None
        nets = build_sac_networks(architecture, placeholder)
        nets.load_state_dict(state)
        return cls(config["name"], config["item_ids"], nets, FeatureEncoder.from_json(context), architecture)
