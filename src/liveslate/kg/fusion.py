"""Heterogeneous GNN that fuses item modality features with the catalogue graph.

Inputs per node type, all of width ``dim``:
- item: Σ over its modalities of Linear_m(features_m) (only where the item has that
  modality) + a free ID vector (zero at start, ``item_id_embedding``);
- every other node type (rooms, attribute values, categories): a learned vector per node.
Message passing: every relation and its reverse (so items hear their attributes and
attributes hear their items), ``layers`` rounds of
- ``sage``: GraphSAGE (mean aggregation + root weight) made heterogeneous by
  ``torch_geometric.nn.to_hetero`` (one weight set per relation, summed per node type), or
- ``hgt``: ``HGTConv`` (type-specific attention).
Decoder: DistMult per relation, score(h, r, t) = Σ_k z_h[k] · w_r[k] · z_t[k].
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn
from torch_geometric.nn import HGTConv, SAGEConv, to_hetero

from liveslate.config import FusionConfig
from liveslate.kg.entities import EntityIndex, Relation
from liveslate.kg.graph import ITEM

EdgeIndexDict = dict[tuple[str, str, str], torch.Tensor]


def reverse(relation: Relation) -> Relation:
    source, name, target = relation
    return (target, f"rev_{name}", source)


def message_types(relations: Sequence[Relation]) -> list[Relation]:
    """Every relation and its reverse: the edge types the GNN passes messages along."""
    return [edge for relation in relations for edge in (relation, reverse(relation))]


class _Sage(nn.Module):
    """Homogeneous GraphSAGE stack; ``to_hetero`` copies it per relation."""

    def __init__(self, dim: int, layers: int, dropout: float) -> None:
        super().__init__()
        self.convs = nn.ModuleList(SAGEConv((dim, dim), dim) for _ in range(layers))
        # A module (not F.dropout) so that eval() reaches it after fx tracing.
        self.dropout = nn.Dropout(dropout)
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor, edge_index: torch.Tensor) -> torch.Tensor:
        for i, conv in enumerate(self.convs):
            x = conv(x, edge_index)
            if i < len(self.convs) - 1:
                x = self.dropout(self.act(x))
        return x


class _Hgt(nn.Module):
    def __init__(self, dim: int, layers: int, heads: int, dropout: float,
                 metadata: tuple[list[str], list[Relation]]) -> None:
        super().__init__()
        self.convs = nn.ModuleList(HGTConv(dim, dim, metadata, heads=heads) for _ in range(layers))
        self.dropout = nn.Dropout(dropout)

    def forward(self, x_dict: dict[str, torch.Tensor], edge_index_dict: EdgeIndexDict) -> dict[str, torch.Tensor]:
        for i, conv in enumerate(self.convs):
            x_dict = conv(x_dict, edge_index_dict)
            if i < len(self.convs) - 1:
                x_dict = {t: self.dropout(torch.relu(x)) for t, x in x_dict.items()}
        return x_dict


class FusionModel(nn.Module):
    """Node inputs → heterogeneous GNN → per-type node vectors [count, dim]; DistMult scores."""

    def __init__(self, entities: EntityIndex, modality_dims: dict[str, int], config: FusionConfig) -> None:
        super().__init__()
        self.entities = entities
        self.node_types = list(entities.node_types)
        self.relations = list(entities.relations)
        dim = config.dim
        self.item_id = nn.Embedding(entities.count(ITEM), dim) if config.item_id_embedding else None
        if self.item_id is not None:
            nn.init.zeros_(self.item_id.weight)
        self.node_emb = nn.ModuleDict({
            t: nn.Embedding(entities.count(t), dim) for t in self.node_types if t != ITEM})
        for embedding in self.node_emb.values():
            nn.init.normal_(embedding.weight, std=1.0 / dim ** 0.5)
        self.project = nn.ModuleDict({m: nn.Linear(d, dim) for m, d in sorted(modality_dims.items())})
        self.input_dropout = nn.Dropout(config.dropout)
        metadata = (self.node_types, message_types(self.relations))
        if config.conv == "sage":
            self.gnn = to_hetero(_Sage(dim, config.layers, config.dropout), metadata, aggr="sum")
        else:
            self.gnn = _Hgt(dim, config.layers, config.heads, config.dropout, metadata)
        self.relation_weight = nn.Parameter(torch.ones(len(self.relations), dim))
        self.dim = dim

    def inputs(self, features: dict[str, tuple[torch.Tensor, torch.Tensor]]) -> dict[str, torch.Tensor]:
        """Node inputs per type; ``features``: modality → (values [n_items, d_m], present [n_items] bool)."""
        unknown = sorted(set(features) - set(self.project))
        if unknown:
            raise ValueError(f"fusion: modality {unknown} was not declared when the model was built "
                             f"(declared: {sorted(self.project)})")
        n_items = self.entities.count(ITEM)
        item = self.item_id.weight if self.item_id is not None else torch.zeros(n_items, self.dim)
        for name, (values, present) in features.items():
            projected = self.project[name](self.input_dropout(values))
            item = item + projected * present.unsqueeze(-1).to(projected.dtype)
        x = {ITEM: item}
        x.update({t: emb.weight for t, emb in self.node_emb.items()})
        return x

    def forward(self, features: dict[str, tuple[torch.Tensor, torch.Tensor]],
                edge_index_dict: EdgeIndexDict) -> dict[str, torch.Tensor]:
        """Node vectors per type [count, dim] after message passing over ``edge_index_dict``.

        ``edge_index_dict`` must hold every relation of the entity index (an empty [2, 0]
        tensor where it has no edge); reverse edges are added here.
        """
        edges: EdgeIndexDict = {}
        for relation in self.relations:
            edge_index = edge_index_dict[relation]
            edges[relation] = edge_index
            edges[reverse(relation)] = edge_index.flip(0)
        return self.gnn(self.inputs(features), edges)

    def score(self, head: torch.Tensor, relation: torch.Tensor, tail: torch.Tensor) -> torch.Tensor:
        """DistMult score [n] of head vectors [n, dim], relation ids [n] and tail vectors [n, dim]."""
        return (head * self.relation_weight[relation] * tail).sum(dim=-1)
