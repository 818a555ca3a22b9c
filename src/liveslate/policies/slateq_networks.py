"""SlateQ's two networks: the choice model's utility f(x, i) and the item-wise value Q̄(x, i).

Both are a ``PairwiseScore``: a context tower h(x) (categorical field embeddings and numeric
features through one hidden layer), an item tower e_i (a learned embedding, plus a linear
projection of the fixed KG vector when the kg stage produced one) and a factorised score

    s(x, i) = offset + β_i + a·h(x) + ⟨P h(x), e_i⟩,

i.e. a global level, an item popularity, a context level and a context × item interaction.
The factorised form (rather than a deep pairwise head) is what a few hundred clicks can
support, and it scores every candidate of a row in one batched product.

Inputs: codes [B, F] int64 (one code per context field, unknown bucket included in each
cardinality), numeric [B, G] float32, items [B, m] int64 stable item indices.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from liveslate.policies.choice_model import position_bias


class ContextTower(nn.Module):
    """Concatenated field embeddings + numeric features → [B, hidden]."""

    def __init__(self, cardinalities: Sequence[int], numeric_dim: int, embedding_dim: int, hidden: int) -> None:
        super().__init__()
        self.embeddings = nn.ModuleList(nn.Embedding(int(c), embedding_dim) for c in cardinalities)
        self.numeric_dim = int(numeric_dim)
        width = embedding_dim * len(cardinalities) + self.numeric_dim
        # A context without features still gets a learned constant vector (the layer's bias).
        self.layer = nn.Sequential(nn.Linear(max(width, 1), hidden), nn.ReLU())

    def forward(self, codes: torch.Tensor, numeric: torch.Tensor) -> torch.Tensor:
        parts = [embedding(codes[:, f]) for f, embedding in enumerate(self.embeddings)]
        if self.numeric_dim:
            parts.append(numeric)
        if not parts:
            parts.append(torch.zeros(codes.shape[0], 1, device=codes.device))
        return self.layer(torch.cat(parts, dim=1))


class PairwiseScore(nn.Module):
    """s(x, i) for every candidate of a row: [B, m], plus the context vector h(x) [B, hidden]."""

    def __init__(self, cardinalities: Sequence[int], numeric_dim: int, n_items: int, embedding_dim: int,
                 hidden: int, kg_vectors: torch.Tensor | None = None) -> None:
        super().__init__()
        self.context = ContextTower(cardinalities, numeric_dim, embedding_dim, hidden)
        self.item_embedding = nn.Embedding(n_items, hidden)
        nn.init.normal_(self.item_embedding.weight, std=0.05)
        self.item_bias = nn.Embedding(n_items, 1)
        nn.init.zeros_(self.item_bias.weight)
        if kg_vectors is not None:
            if kg_vectors.ndim != 2 or kg_vectors.shape[0] != n_items:
                raise ValueError(f"kg_vectors: expected shape [{n_items}, d] (one row per item), "
                                 f"got {tuple(kg_vectors.shape)}")
            # A buffer, not a parameter: the kg stage owns the vectors, SlateQ learns a projection.
            self.register_buffer("kg_vectors", kg_vectors.to(torch.float32).clone())
            self.kg_projection: nn.Linear | None = nn.Linear(kg_vectors.shape[1], hidden, bias=False)
        else:
            self.kg_vectors = None
            self.kg_projection = None
        self.context_level = nn.Linear(hidden, 1, bias=False)
        self.interaction = nn.Linear(hidden, hidden, bias=False)
        self.offset = nn.Parameter(torch.zeros(()))

    def item_vectors(self, items: torch.Tensor) -> torch.Tensor:
        vectors = self.item_embedding(items)
        if self.kg_projection is not None:
            vectors = vectors + self.kg_projection(self.kg_vectors[items])
        return vectors

    def forward(self, codes: torch.Tensor, numeric: torch.Tensor,
                items: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.context(codes, numeric)
        interaction = torch.einsum("bh,bmh->bm", self.interaction(h), self.item_vectors(items))
        score = self.offset + self.item_bias(items).squeeze(-1) + self.context_level(h) + interaction
        return score, h


class ChoiceModel(nn.Module):
    """Utilities f(x, i) [B, m] (item at position 0, no-click at 0) and position biases b [P]."""

    def __init__(self, scorer: PairwiseScore, n_positions: int) -> None:
        super().__init__()
        if n_positions < 1:
            raise ValueError(f"n_positions: expected >= 1, got {n_positions}")
        self.scorer = scorer
        self.free_bias = nn.Parameter(torch.zeros(n_positions - 1))

    def utility(self, codes: torch.Tensor, numeric: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        return self.scorer(codes, numeric, items)[0]

    def bias(self) -> torch.Tensor:
        return position_bias(self.free_bias)


class ItemValue(nn.Module):
    """Item-wise long-term values Q̄(x, i) [B, m] and the no-click value Q̄(x, ⊥) [B]."""

    def __init__(self, scorer: PairwiseScore) -> None:
        super().__init__()
        self.scorer = scorer
        hidden = scorer.interaction.in_features
        self.null_head = nn.Linear(hidden, 1)
        nn.init.zeros_(self.null_head.weight)
        nn.init.zeros_(self.null_head.bias)

    def forward(self, codes: torch.Tensor, numeric: torch.Tensor,
                items: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        values, h = self.scorer(codes, numeric, items)
        return values, self.null_head(h).squeeze(-1)


def build_modules(cardinalities: Sequence[int], numeric_dim: int, n_items: int, embedding_dim: int, hidden: int,
                  n_positions: int, kg_vectors: torch.Tensor | None = None) -> tuple[ChoiceModel, ItemValue]:
    """A fresh (choice model, value network) pair; each has its own towers (the caller seeds torch)."""

    def scorer() -> PairwiseScore:
        return PairwiseScore(cardinalities, numeric_dim, n_items, embedding_dim, hidden, kg_vectors)

    return ChoiceModel(scorer(), n_positions), ItemValue(scorer())
