"""Networks of discrete SAC: one (context, candidate item) scorer per role.

The actor and each of the twin critics is an ``ItemScorer``: a context tower and an item
tower whose dot product (plus biases) scores every candidate of a row at once,
``[B, m]`` from contexts ``[B, ...]`` and candidate item indices ``[B, m]``. Scoring item by
item (rather than one output unit per catalogue item) lets the same weights serve rooms of
any size and new items that have a KG vector.

Context input: ``codes`` ``[B, F]`` int64 (one categorical code per context field, the
encoder's unknown bucket included in each cardinality) and ``numeric`` ``[B, G]`` float32.
Item input: the stable item index; an item is a learned embedding plus, when the KG stage
produced one, a linear projection of its (fixed) KG vector.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence

import torch
from torch import nn


# Catalogues up to this size are scored whole (cheaper than finding a batch's distinct items).
_WHOLE_CATALOGUE_MAX = 4096


class ContextTower(nn.Module):
    """Categorical field embeddings (concatenated) and numeric features → ``[B, hidden]``."""

    def __init__(self, cardinalities: Sequence[int], numeric_dim: int, embedding_dim: int, hidden: int) -> None:
        super().__init__()
        self.embeddings = nn.ModuleList(nn.Embedding(int(c), embedding_dim) for c in cardinalities)
        width = embedding_dim * len(cardinalities) + numeric_dim
        # A context with no features at all still gets a learned constant (the bias).
        self.mlp = nn.Sequential(nn.Linear(max(width, 1), hidden), nn.ReLU(), nn.Linear(hidden, hidden))
        self.numeric_dim = numeric_dim

    def forward(self, codes: torch.Tensor, numeric: torch.Tensor) -> torch.Tensor:
        parts = [emb(codes[:, i]) for i, emb in enumerate(self.embeddings)]
        if self.numeric_dim:
            parts.append(numeric)
        if not parts:
            parts.append(torch.zeros(codes.shape[0], 1, device=codes.device))
        return self.mlp(torch.cat(parts, dim=-1))


class ItemTower(nn.Module):
    """Item index → ``[..., hidden]``: learned embedding (+ projected fixed KG vector) through an MLP."""

    def __init__(self, n_items: int, hidden: int, kg_vectors: torch.Tensor | None = None) -> None:
        super().__init__()
        self.embedding = nn.Embedding(n_items, hidden)
        nn.init.normal_(self.embedding.weight, std=0.1)
        if kg_vectors is not None:
            if kg_vectors.ndim != 2 or kg_vectors.shape[0] != n_items:
                raise ValueError(f"kg_vectors has shape {tuple(kg_vectors.shape)}, expected [{n_items}, d]")
            # A buffer, not a parameter: the KG stage owns these vectors, SAC only projects them.
            self.register_buffer("kg_vectors", kg_vectors.to(torch.float32).clone())
            self.kg_projection: nn.Module | None = nn.Linear(kg_vectors.shape[1], hidden, bias=False)
        else:
            self.kg_vectors = None
            self.kg_projection = None
        self.mlp = nn.Sequential(nn.ReLU(), nn.Linear(hidden, hidden))

    def forward(self, items: torch.Tensor) -> torch.Tensor:
        out = self.embedding(items)
        if self.kg_projection is not None:
            out = out + self.kg_projection(self.kg_vectors[items])
        return self.mlp(out)


class ItemScorer(nn.Module):
    """Score every candidate of every row: ``[B, m]`` real numbers (masking is the caller's).

    score(x, i) = ⟨c(x), e(i)⟩ + b_item(i) + b_context(x): a two-tower form whose cost per
    (row, candidate) pair is one dot product, so a room of 80 candidates costs little more
    than one of 3. The item tower runs once per item of a small catalogue (once per distinct
    item of the batch for a large one), and the dot products are one matrix product. The context
    bias lets a critic learn that some contexts click more than others; it cancels in the
    actor's softmax.
    """

    def __init__(self, cardinalities: Sequence[int], numeric_dim: int, n_items: int, embedding_dim: int,
                 hidden: int, kg_vectors: torch.Tensor | None = None) -> None:
        super().__init__()
        self.context = ContextTower(cardinalities, numeric_dim, embedding_dim, hidden)
        self.item = ItemTower(n_items, hidden, kg_vectors)
        self.item_bias = nn.Embedding(n_items, 1)
        nn.init.zeros_(self.item_bias.weight)
        self.context_bias = nn.Linear(hidden, 1)
        self.n_items = n_items

    def forward(self, codes: torch.Tensor, numeric: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        context = self.context(codes, numeric)                                   # [B, H]
        if self.n_items <= _WHOLE_CATALOGUE_MAX:
            distinct = torch.arange(self.n_items, device=items.device)           # [U = n_items]
            inverse = items
        else:
            distinct, inverse = torch.unique(items, return_inverse=True)         # [U], [B, m]
        # One [B, H] × [H, U] product, then a gather: never materialises a [B, m, H] tensor,
        # and the item embeddings' backward sees U indices instead of B·m.
        every = context @ self.item(distinct).T + self.item_bias(distinct).T     # [B, U]
        return every.gather(1, inverse) + self.context_bias(context)             # [B, m]


class SacNetworks(nn.Module):
    """Actor, twin critics, their Polyak-averaged targets and the temperature.

    ``log_alpha`` is a trainable parameter when the temperature is tuned, and absent when
    it is fixed: a fixed α (0 included) is kept as the buffer ``fixed_alpha`` so that no
    logarithm of it is ever taken.
    """

    def __init__(self, cardinalities: Sequence[int], numeric_dim: int, n_items: int, embedding_dim: int,
                 hidden: int, kg_vectors: torch.Tensor | None, alpha_mode: str, alpha_init: float) -> None:
        super().__init__()

        def scorer() -> ItemScorer:
            return ItemScorer(cardinalities, numeric_dim, n_items, embedding_dim, hidden, kg_vectors)

        self.actor = scorer()
        self.critic1 = scorer()
        self.critic2 = scorer()
        self.target1 = copy.deepcopy(self.critic1)
        self.target2 = copy.deepcopy(self.critic2)
        for target in (self.target1, self.target2):
            target.requires_grad_(False)
        self.alpha_mode = alpha_mode
        if alpha_mode == "auto":
            if not alpha_init > 0:
                raise ValueError(f"alpha_init must be > 0 when the temperature is tuned, got {alpha_init}")
            self.log_alpha = nn.Parameter(torch.tensor(math.log(alpha_init)))
        elif alpha_mode == "fixed":
            if not alpha_init >= 0:
                raise ValueError(f"a fixed alpha must be >= 0, got {alpha_init}")
            self.register_buffer("fixed_alpha", torch.tensor(float(alpha_init)))
        else:
            raise ValueError(f"alpha_mode must be 'auto' or 'fixed', got {alpha_mode!r}")

    def alpha(self) -> torch.Tensor:
        """The current temperature α ≥ 0 (a detached scalar)."""
        if self.alpha_mode == "auto":
            return self.log_alpha.detach().exp()
        return self.fixed_alpha

    @torch.no_grad()
    def polyak_update(self, tau: float) -> None:
        """target ← τ · online + (1 − τ) · target, for both critics (buffers copied as is)."""
        for online, target in ((self.critic1, self.target1), (self.critic2, self.target2)):
            for p_online, p_target in zip(online.parameters(), target.parameters()):
                p_target.lerp_(p_online, tau)
