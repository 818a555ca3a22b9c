"""DeepFM (Guo et al. 2017): a factorisation machine and an MLP over shared field embeddings.

Fields of one (context, item, position) example, each embedded in ``embedding_dim``:
- every categorical ``ctx_*`` column (code 0 = the unknown bucket) and every numeric one
  (a learned vector scaled by the standardised value);
- the item id (index + 1; 0 = an item newer than the policy), every ``cat_*`` and
  ``num_*`` catalogue attribute (looked up per item from buffers saved with the weights);
- the slate position (scoring uses position 0, DESIGN.md);
- the KG item vector through a linear projection (``use_kg``).

logit = bias + Σ_f w_f (first order) + ½ Σ_d[(Σ_f e_fd)² − Σ_f e_fd²] (FM pairwise
interactions) + MLP(concat_f e_f). Trained with binary cross-entropy on clicks; the
policy ranks candidates by the predicted CTR σ(logit) at position 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import torch
from torch import nn

from liveslate.policies.base import Candidates, Policy
from liveslate.policies.encoders import FeatureEncoder
from liveslate.policies.registry import read_policy_files, write_policy_files

# Examples per forward pass at scoring time (bounds memory to chunk · fields · dim floats).
_SCORE_CHUNK = 65_536


class DeepFMNet(nn.Module):
    """Shapes: context_codes [B, n_ctx_cat] int64, context_values [B, n_ctx_num] float32,
    items [B] int64 stable item index, positions [B] int64 → logits [B].

    item_codes [n_items, n_item_cat], item_values [n_items, n_item_num] and item_vectors
    [n_items, kg_dim] are buffers: the catalogue as encoded at training time.
    """

    def __init__(self, context_cardinalities: Sequence[int], n_context_numeric: int, item_codes: torch.Tensor,
                 item_cardinalities: Sequence[int], item_values: torch.Tensor, item_vectors: torch.Tensor | None,
                 n_positions: int, embedding_dim: int, hidden: Sequence[int], dropout: float,
                 item_id_field: bool) -> None:
        super().__init__()
        self.n_items = int(item_codes.shape[0])
        self.item_id_field = bool(item_id_field)
        self.register_buffer("item_codes", item_codes.to(torch.int64))
        self.register_buffer("item_values", item_values.to(torch.float32))
        kg_dim = 0 if item_vectors is None else int(item_vectors.shape[1])
        self.register_buffer("item_vectors", (item_vectors if item_vectors is not None
                                              else torch.zeros(self.n_items, 0)).to(torch.float32))
        # Categorical fields in order: context, item id (optional), item attributes, position.
        cardinalities = list(context_cardinalities)
        if self.item_id_field:
            cardinalities.append(self.n_items + 1)
        cardinalities += list(item_cardinalities) + [int(n_positions)]
        self.n_positions = int(n_positions)
        self.embeddings = nn.ModuleList(nn.Embedding(c, embedding_dim) for c in cardinalities)
        self.first_order = nn.ModuleList(nn.Embedding(c, 1) for c in cardinalities)
        n_numeric = int(n_context_numeric) + int(item_values.shape[1])
        self.numeric_embeddings = nn.Parameter(torch.empty(n_numeric, embedding_dim))
        self.numeric_first_order = nn.Parameter(torch.zeros(n_numeric))
        self.kg_projection = nn.Linear(kg_dim, embedding_dim) if kg_dim else None
        self.kg_first_order = nn.Linear(kg_dim, 1, bias=False) if kg_dim else None
        self.bias = nn.Parameter(torch.zeros(()))
        n_fields = len(cardinalities) + n_numeric + (1 if kg_dim else 0)
        layers: list[nn.Module] = []
        width = n_fields * embedding_dim
        for size in hidden:
            layers += [nn.Linear(width, size), nn.ReLU(), nn.Dropout(dropout)]
            width = size
        layers.append(nn.Linear(width, 1))
        self.mlp = nn.Sequential(*layers)
        for embedding in self.embeddings:
            nn.init.normal_(embedding.weight, std=0.01)
        for embedding in self.first_order:
            nn.init.zeros_(embedding.weight)
        nn.init.normal_(self.numeric_embeddings, std=0.01)

    def forward(self, context_codes: torch.Tensor, context_values: torch.Tensor, items: torch.Tensor,
                positions: torch.Tensor) -> torch.Tensor:
        known = items < self.n_items
        lookup = torch.where(known, items, torch.zeros_like(items))
        item_codes = torch.where(known[:, None], self.item_codes[lookup], torch.zeros_like(self.item_codes[lookup]))
        item_values = self.item_values[lookup] * known[:, None]
        categorical = [context_codes]
        if self.item_id_field:
            categorical.append(torch.where(known, items + 1, torch.zeros_like(items))[:, None])
        categorical += [item_codes, positions[:, None]]
        codes = torch.cat(categorical, dim=1)  # [B, n_categorical]
        numeric = torch.cat([context_values, item_values], dim=1)  # [B, n_numeric]

        # Field embeddings e_f [B, F, D] and first-order weights w_f [B, F].
        fields = [table(codes[:, f]) for f, table in enumerate(self.embeddings)]
        first = [table(codes[:, f]).squeeze(1) for f, table in enumerate(self.first_order)]
        fields.append(numeric[:, :, None] * self.numeric_embeddings[None, :, :])
        first.append((numeric * self.numeric_first_order).sum(dim=1))
        if self.kg_projection is not None:
            vectors = self.item_vectors[lookup] * known[:, None]
            fields.append(self.kg_projection(vectors)[:, None, :])
            first.append(self.kg_first_order(vectors).squeeze(1))
        embedded = torch.cat([f if f.dim() == 3 else f[:, None, :] for f in fields], dim=1)

        linear = torch.stack([f if f.dim() == 1 else f.sum(dim=1) for f in first], dim=1).sum(dim=1)
        # FM pairwise term: ½ Σ_d [(Σ_f e_fd)² − Σ_f e_fd²] = Σ_{f<g} <e_f, e_g>.
        pairwise = 0.5 * (embedded.sum(dim=1).pow(2) - embedded.pow(2).sum(dim=1)).sum(dim=1)
        deep = self.mlp(embedded.flatten(start_dim=1)).squeeze(1)
        return self.bias + linear + pairwise + deep


class DeepFMPolicy(Policy):
    """Ranks candidates by DeepFM's predicted CTR at position 0.

    ``architecture``: the constructor arguments of DeepFMNet other than the item buffers
    (saved in config.json); encoders: the context and catalogue encoders fitted on the
    training split.
    """

    kind: ClassVar[str] = "deepfm"

    def __init__(self, name: str, item_ids: Sequence[str], net: DeepFMNet, context_encoder: FeatureEncoder,
                 item_encoder: FeatureEncoder, architecture: dict[str, Any]) -> None:
        self.name = name
        self.item_ids = tuple(str(i) for i in item_ids)
        self.net = net.eval()
        self.context_encoder = context_encoder
        self.item_encoder = item_encoder
        self.architecture = dict(architecture)

    # ------------------------------------------------------------------ predictions
    def encode_contexts(self, contexts: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """contexts → (codes [n, n_ctx_cat] int64, values [n, n_ctx_num] float32)."""
        return self.context_encoder.transform(contexts.reset_index(drop=True), where=f"{self.name} contexts")

    def encoded_logits(self, codes: np.ndarray, values: np.ndarray, items: np.ndarray,
                       positions: np.ndarray) -> np.ndarray:
        """[N] float64 logits from encoded contexts [N, ·], item indices [N] and positions [N]."""
        out = np.empty(len(items))
        step = _SCORE_CHUNK
        with torch.no_grad():
            for start in range(0, len(items), step):
                rows = slice(start, start + step)
                out[rows] = self.net(torch.from_numpy(codes[rows]), torch.from_numpy(values[rows]),
                                     torch.from_numpy(np.asarray(items[rows], dtype=np.int64)),
                                     torch.from_numpy(np.asarray(positions[rows], dtype=np.int64))).double().numpy()
        return out

    def click_probability(self, contexts: pd.DataFrame, items: np.ndarray, positions: np.ndarray) -> np.ndarray:
        """[N] predicted CTR of each (context row, item index, position)."""
        codes, values = self.encode_contexts(contexts)
        return _sigmoid(self.encoded_logits(codes, values, items, positions))

    def scores(self, contexts: pd.DataFrame, candidates: Candidates) -> np.ndarray:
        codes, values = self.encode_contexts(contexts)
        row_of, column = np.nonzero(candidates.mask)
        out = np.full(candidates.items.shape, -np.inf)
        logits = self.encoded_logits(codes[row_of], values[row_of], candidates.items[row_of, column],
                                     np.zeros(len(column), dtype=np.int64))
        out[row_of, column] = _sigmoid(logits)
        return out

    def pl_logits(self, scores: np.ndarray) -> np.ndarray:
        """logit of the predicted CTR: PL over softmax(logit / τ)."""
        clipped = np.clip(scores, 1e-15, 1 - 1e-15)
        return np.log(clipped) - np.log1p(-clipped)

    # ------------------------------------------------------------------ persistence
    def save(self, directory: Path) -> None:
        config = {"kind": self.kind, "name": self.name, "item_ids": list(self.item_ids),
                  "architecture": self.architecture}
        encoders = {"context": self.context_encoder.to_json(), "item": self.item_encoder.to_json()}
        write_policy_files(directory, config, self.net.state_dict(), encoders)

    @classmethod
    def load(cls, directory: Path) -> "DeepFMPolicy":
        config, state, encoders = read_policy_files(directory, cls.kind)
        architecture = config["architecture"]
        vectors = state["item_vectors"] if state["item_vectors"].shape[1] else None
        net = build_net(architecture, state["item_codes"], state["item_values"], vectors)
        net.load_state_dict(state)
        if len(config["item_ids"]) != net.n_items:
            # Indices would silently point at other items' rows.
            raise ValueError(f"deepfm: {len(config['item_ids'])} item ids but the network holds {net.n_items} items")
        return cls(config["name"], config["item_ids"], net, FeatureEncoder.from_json(encoders["context"]),
                   FeatureEncoder.from_json(encoders["item"]), architecture)


def _sigmoid(logits: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-logits))


def build_net(architecture: dict[str, Any], item_codes: torch.Tensor, item_values: torch.Tensor,
              item_vectors: torch.Tensor | None) -> DeepFMNet:
    """DeepFMNet from its JSON architecture and the encoded catalogue buffers."""
    return DeepFMNet(
        context_cardinalities=architecture["context_cardinalities"],
        n_context_numeric=architecture["n_context_numeric"],
        item_codes=item_codes,
        item_cardinalities=architecture["item_cardinalities"],
        item_values=item_values,
        item_vectors=item_vectors,
        n_positions=architecture["n_positions"],
        embedding_dim=architecture["embedding_dim"],
        hidden=architecture["hidden"],
        dropout=architecture["dropout"],
        item_id_field=architecture["item_id_field"],
    )
