"""The SlateQ policy (Ie et al. 2019): choice model × item-wise long-term values → optimised slates.

For a request with context x and candidates j:
- ``scores`` [n, m]: the value of showing candidate j alone at position 0,
  ``P(j | x, {j}) Q̄(x, j) + P(⊥ | x, {j}) Q̄(x, ⊥)`` — expected return in reward units
  (on one-step click logs: the click probability, since Q̄(x, j) = 1 per click there);
  masked −inf. This is what the ranking metrics sort by.
- ``greedy_slate``: the configured slate optimiser (``slate_method``: exact Dinkelbach
  optimum by default, greedy or top-k) over the conditional-logit slate value
  ``Σ_p P(A_p | x, A) Q̄(x, A_p) + P(⊥ | x, A) Q̄(x, ⊥)`` with the learned position bias;
  slates hold exactly k distinct candidates (see ``slate_optim``). Modes ``none`` and
  ``epsilon`` explore around this slate.
- ``pl_logits``: log of the single-item value, so Plackett–Luce at τ = 1 samples items in
  proportion to their expected return (rewards are ≥ 0; values are floored at 1e-12).
- ``click_probability``: the choice model's P(click) of an item shown alone at a position.

Saved as config.json (architecture + item index), weights.pt (state_dict of the choice
model and of the value network) and encoders.json (the context encoder).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import torch
from torch import nn

from liveslate.policies import exploration
from liveslate.policies.base import Candidates, Policy
from liveslate.policies.choice_model import bias_at
from liveslate.policies.encoders import FeatureEncoder
from liveslate.policies.network_inputs import encode_request
from liveslate.policies.registry import read_policy_files, write_policy_files
from liveslate.policies.slate_optim import optimise_slates, slate_value
from liveslate.policies.slateq_networks import ChoiceModel, ItemValue, build_modules
from liveslate.policies.slateq_training import slate_instance

# Rows per forward pass: bounds memory at [chunk, m, hidden] floats.
_SCORE_CHUNK = 4096
# Floor of the single-item value before its log becomes a Plackett–Luce logit.
_VALUE_FLOOR = 1e-12


def build_slateq_modules(architecture: dict[str, Any],
                         kg_vectors: torch.Tensor | None) -> tuple[ChoiceModel, ItemValue]:
    """(choice model, value network) from the JSON ``architecture`` (see ``SlateQPolicy``)."""
    return build_modules([int(c) for c in architecture["cardinalities"]], int(architecture["numeric_dim"]),
                         int(architecture["n_items"]), int(architecture["embedding_dim"]),
                         int(architecture["hidden"]), int(architecture["n_positions"]), kg_vectors)


class SlateQPolicy(Policy):
    """SlateQ as a slate policy.

    architecture: {"cardinalities": [context field cardinalities], "numeric_dim": int,
    "n_items": int, "embedding_dim": int, "hidden": int, "kg_dim": int (0 = no KG vectors),
    "n_positions": int (positions with a learned bias), "slate_method": "exact"|"greedy"|"top_k",
    "gamma": float, "target": "sarsa"|"q_learning"} (the last two document how Q̄ was trained).
    """

    kind: ClassVar[str] = "slateq"

    def __init__(self, name: str, item_ids: Sequence[str], choice: ChoiceModel, value: ItemValue,
                 context_encoder: FeatureEncoder, architecture: dict[str, Any]) -> None:
        self.name = name
        self.item_ids = tuple(str(i) for i in item_ids)
        if len(self.item_ids) != int(architecture["n_items"]):
            raise ValueError(f"{name}: {len(self.item_ids)} item ids but the networks hold "
                             f"{architecture['n_items']} items")
        if architecture["slate_method"] not in ("exact", "greedy", "top_k"):
            raise ValueError(f"{name}: slate_method must be exact, greedy or top_k, got {architecture['slate_method']!r}")
        self.choice = choice.eval()
        self.value = value.eval()
        self.context_encoder = context_encoder
        self.architecture = dict(architecture)

    @property
    def slate_method(self) -> str:
        return str(self.architecture["slate_method"])

    @property
    def position_bias(self) -> np.ndarray:
        """[n_positions] learned log-attraction of each position relative to position 0."""
        with torch.no_grad():
            return self.choice.bias().double().numpy()

    # ------------------------------------------------------------------ model outputs
    def _encoded(self, contexts: pd.DataFrame, candidates: Candidates) -> tuple[torch.Tensor, ...]:
        return encode_request(self.name, len(self.item_ids), self.context_encoder, contexts, candidates)

    def model_outputs(self, contexts: pd.DataFrame,
                      candidates: Candidates) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(utility f(x, j) [n, m], item values Q̄(x, j) [n, m], no-click value Q̄(x, ⊥) [n]), float64.

        Padded columns hold the outputs of item 0 and must be ignored by the caller.
        """
        codes, values, items, _ = self._encoded(contexts, candidates)
        utility = np.empty(candidates.items.shape)
        item_value = np.empty(candidates.items.shape)
        null_value = np.empty(candidates.n)
        with torch.no_grad():
            for start in range(0, candidates.n, _SCORE_CHUNK):
                rows = slice(start, start + _SCORE_CHUNK)
                utility[rows] = self.choice.utility(codes[rows], values[rows], items[rows]).double().numpy()
                q, q0 = self.value(codes[rows], values[rows], items[rows])
                item_value[rows] = q.double().numpy()
                null_value[rows] = q0.double().numpy()
        return utility, item_value, null_value

    # ------------------------------------------------------------------ Policy interface
    def scores(self, contexts: pd.DataFrame, candidates: Candidates) -> np.ndarray:
        """[n, m] value of each candidate shown alone at position 0 (reward units); masked −inf."""
        utility, item_value, null_value = self.model_outputs(contexts, candidates)
        click = 1.0 / (1.0 + np.exp(-utility))
        single = click * item_value + (1.0 - click) * null_value[:, None]
        return np.where(candidates.mask, single, -np.inf)

    def pl_logits(self, scores: np.ndarray) -> np.ndarray:
        """log of the single-item value: PL samples in proportion to expected return."""
        return np.log(np.maximum(scores, _VALUE_FLOOR))

    def _instance(self, contexts: pd.DataFrame, candidates: Candidates, k: int):
        utility, item_value, null_value = self.model_outputs(contexts, candidates)
        return slate_instance(torch.from_numpy(utility), torch.from_numpy(item_value),
                              torch.from_numpy(null_value), self.choice.bias().detach().double(),
                              torch.from_numpy(candidates.mask), k)

    def greedy_slate(self, contexts: pd.DataFrame, candidates: Candidates, k: int) -> np.ndarray:
        """[n, k] candidate columns of the ``slate_method`` slate; column p is shown at position p."""
        exploration.check_k(candidates.mask, k)
        solution = optimise_slates(self._instance(contexts, candidates, k), self.slate_method)
        return solution.slates.numpy().astype(np.int64)

    def slate_values(self, contexts: pd.DataFrame, candidates: Candidates, positions: np.ndarray) -> np.ndarray:
        """[n] model value Σ_p P(A_p | x, A) Q̄(x, A_p) + P(⊥ | x, A) Q̄(x, ⊥) of ordered slates [n, k] (columns)."""
        positions = np.asarray(positions, dtype=np.int64)
        exploration.check_k(candidates.mask, positions.shape[1])
        instance = self._instance(contexts, candidates, positions.shape[1])
        return slate_value(instance, torch.from_numpy(positions)).numpy()

    def click_probability(self, contexts: pd.DataFrame, items: np.ndarray, positions: np.ndarray) -> np.ndarray:
        """[N] P(click) of item index ``items[i]`` shown alone at ``positions[i]`` in context row i."""
        items = np.asarray(items, dtype=np.int64)
        candidates = Candidates(items=items[:, None], mask=np.ones((len(items), 1), dtype=bool))
        utility = self.model_outputs(contexts, candidates)[0][:, 0]
        bias = bias_at(torch.from_numpy(self.position_bias), torch.from_numpy(np.asarray(positions, np.int64)))
        return 1.0 / (1.0 + np.exp(-(utility + bias.numpy())))

    # ------------------------------------------------------------------ persistence
    def _modules(self) -> nn.ModuleDict:
        return nn.ModuleDict({"choice": self.choice, "value": self.value})

    def save(self, directory: Path) -> None:
        config = {"kind": self.kind, "name": self.name, "item_ids": list(self.item_ids),
                  "architecture": self.architecture}
        write_policy_files(directory, config, self._modules().state_dict(),
                           {"context": self.context_encoder.to_json()})

    @classmethod
    def load(cls, directory: Path) -> "SlateQPolicy":
        config, state, encoders = read_policy_files(directory, cls.kind)
        try:
            architecture = config["architecture"]
            kg_dim = int(architecture["kg_dim"])
            context = encoders["context"]
            # The KG vectors are buffers of the state_dict; a placeholder of the right shape is overwritten.
            placeholder = torch.zeros(int(architecture["n_items"]), kg_dim) if kg_dim else None
            choice, value = build_slateq_modules(architecture, placeholder)
        except (KeyError, TypeError, ValueError) as err:
            raise ValueError(f"{Path(directory)}: malformed SlateQ policy files ({err!r})") from err
        nn.ModuleDict({"choice": choice, "value": value}).load_state_dict(state)
        return cls(config["name"], config["item_ids"], choice, value, FeatureEncoder.from_json(context), architecture)
