"""Training and evaluation of the fusion GNN on link prediction (kg/fusion.py).

Each epoch hides a random ``supervision_fraction`` of the training triples from message
passing and asks the model to recover them, in both directions: the true tail among every
entity of the tail's node type, and the true head among every entity of the head's type
(softmax cross-entropy; the other known *training* answers of the same query are removed
from the softmax, as the evaluation filters them). Hiding the predicted edges matters: a
GNN that sees an edge while predicting it learns to read it off the graph and fails on
held-out edges, which are never in the graph.

Evaluation uses the kg stage's filtered, type-constrained ranking (kg/ranking.py) with
message passing over the training triples only, so a held-out triple never carries a
message; the epoch with the best validation MRR is kept.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from liveslate.config import FusionConfig
from liveslate.kg.entities import EntityIndex
from liveslate.kg.fusion import EdgeIndexDict, FusionModel
from liveslate.kg.graph import ITEM
from liveslate.kg.modalities import ItemFeatures
from liveslate.kg.ranking import KnownAnswers, LinkMetrics, QueryRanks, ScoreFn, filtered_ranks, summarise
from liveslate.kg.triples import Triples

FeatureTensors = dict[str, tuple[torch.Tensor, torch.Tensor]]


@dataclass
class TrainedFusion:
    """A trained model (best validation epoch), its features and its evaluation."""

    name: str
    model: FusionModel
    features: FeatureTensors
    best_epoch: int
    history: list[dict[str, Any]] = field(default_factory=list)


def feature_tensors(features: dict[str, ItemFeatures]) -> FeatureTensors:
    return {name: (torch.as_tensor(f.values), torch.as_tensor(f.present)) for name, f in features.items()}


def relation_edges(triples: Triples, entities: EntityIndex) -> EdgeIndexDict:
    """Local [2, E] edge index per relation (every relation present, empty where it has no triple)."""
    edges: EdgeIndexDict = {}
    for relation_id, relation in enumerate(entities.relations):
        rows = triples.relation == relation_id
        head = triples.head[rows] - entities.offset(relation[0])
        tail = triples.tail[rows] - entities.offset(relation[2])
        edges[relation] = torch.as_tensor(np.stack([head, tail]).astype(np.int64)).reshape(2, -1)
    return edges


def global_vectors(node_vectors: dict[str, torch.Tensor], entities: EntityIndex) -> torch.Tensor:
    """[num_entities, dim]: the per-type vectors laid back to back in the entity index's global order."""
    return torch.cat([node_vectors[t] for t in entities.node_types], dim=0)


def score_function(model: FusionModel, vectors: torch.Tensor) -> ScoreFn:
    """Global (head, relation, tail) indices → DistMult scores over precomputed node ``vectors``."""
    def score(head: torch.Tensor, relation: torch.Tensor, tail: torch.Tensor) -> torch.Tensor:
        return model.score(vectors[head], relation, vectors[tail])
    return score


class TrainingAnswers:
    """Dense [count_source, count_target] bool adjacency per relation from the training triples,
    used to drop other true answers from the training softmax."""

    def __init__(self, train: Triples, entities: EntityIndex) -> None:
        self.adjacency: list[torch.Tensor] = []
        for relation_id, (source, _, target) in enumerate(entities.relations):
            rows = train.relation == relation_id
            matrix = torch.zeros(entities.count(source), entities.count(target), dtype=torch.bool)
            matrix[torch.as_tensor(train.head[rows] - entities.offset(source)),
                   torch.as_tensor(train.tail[rows] - entities.offset(target))] = True
            self.adjacency.append(matrix)


def _direction_loss(query: torch.Tensor, candidates: torch.Tensor, truth: torch.Tensor,
                    others: torch.Tensor) -> torch.Tensor:
    """Summed cross-entropy of ``truth`` [n] among ``candidates`` [c, dim] for queries [n, dim];
    ``others`` [n, c] marks other true answers, left out of the softmax."""
    logits = query @ candidates.T
    others = others.clone()
    others[torch.arange(truth.numel()), truth] = False
    logits = logits.masked_fill(others, float("-inf"))
    return F.cross_entropy(logits, truth, reduction="sum")


def supervision_loss(model: FusionModel, vectors: dict[str, torch.Tensor], batch: Triples,
                     entities: EntityIndex, answers: TrainingAnswers) -> tuple[torch.Tensor, int]:
    """Summed tail- and head-prediction cross-entropy over ``batch`` and the number of queries.

    A direction whose answer type holds one entity is skipped: it has nothing to rank.
    """
    total = torch.zeros(())
    queries = 0
    for relation_id in np.unique(batch.relation):
        source, _, target = entities.relations[int(relation_id)]
        rows = batch.relation == relation_id
        head = torch.as_tensor(batch.head[rows] - entities.offset(source))
        tail = torch.as_tensor(batch.tail[rows] - entities.offset(target))
        weight = model.relation_weight[int(relation_id)]
        adjacency = answers.adjacency[int(relation_id)]
        if entities.count(target) > 1:
            total = total + _direction_loss(vectors[source][head] * weight, vectors[target], tail, adjacency[head])
            queries += head.numel()
        if entities.count(source) > 1:
            total = total + _direction_loss(vectors[target][tail] * weight, vectors[source], head, adjacency.T[tail])
            queries += tail.numel()
    return total, queries


@torch.no_grad()
def evaluate(model: FusionModel, features: FeatureTensors, graph_triples: Triples, queries: Triples,
             entities: EntityIndex, known: KnownAnswers) -> QueryRanks:
    """Filtered ranks of ``queries`` with message passing over ``graph_triples`` (eval mode)."""
    model.eval()
    vectors = global_vectors(model(features, relation_edges(graph_triples, entities)), entities)
    return filtered_ranks(score_function(model, vectors), queries, entities, known)


def train_fusion(name: str, entities: EntityIndex, splits: dict[str, Triples], known: KnownAnswers,
                 features: dict[str, ItemFeatures], config: FusionConfig, seed: int,
                 progress: bool = True) -> TrainedFusion:
    """Train the fusion GNN with the given modality ``features`` ({} = structure only).

    ``history`` rows: epoch, mean training loss per query, validation MRR on evaluation
    epochs. Deterministic given ``seed``. Raises ValueError when the loss stops being finite.
    """
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    tensors = feature_tensors(features)
    model = FusionModel(entities, {m: f.dim for m, f in features.items()}, config)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    train, valid = splits["train"], splits.get("valid")
    answers = TrainingAnswers(train, entities)
    n_supervised = max(1, int(round(config.supervision_fraction * len(train))))
    best_mrr, best_epoch, best_state = -1.0, config.epochs, None
    history: list[dict[str, Any]] = []
    for epoch in tqdm(range(1, config.epochs + 1), desc=f"fusion {name}", disable=not progress, leave=False):
        model.train()
        order = torch.randperm(len(train), generator=generator).numpy()
        supervised, passed = train.take(np.sort(order[:n_supervised])), train.take(np.sort(order[n_supervised:]))
        optimizer.zero_grad()
        vectors = model(tensors, relation_edges(passed, entities))
        loss, queries = supervision_loss(model, vectors, supervised, entities, answers)
        row: dict[str, Any] = {"variant": name, "epoch": epoch}
        if queries:
            loss = loss / queries
            loss.backward()
            optimizer.step()
            row["loss"] = float(loss.detach())
            if not np.isfinite(row["loss"]):
                raise ValueError(f"fusion {name}: training loss became {row['loss']} at epoch {epoch}; "
                                 "lower kg_multimodal.gnn.lr")
        if valid is not None and len(valid) and (epoch % config.eval_every == 0 or epoch == config.epochs):
            mrr = summarise(evaluate(model, tensors, train, valid, entities, known)).mrr
            row["valid_mrr"] = mrr
            if mrr > best_mrr:
                best_mrr, best_epoch, best_state = mrr, epoch, copy.deepcopy(model.state_dict())
        history.append(row)
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return TrainedFusion(name=name, model=model, features=tensors, best_epoch=best_epoch, history=history)


def held_out_metrics(trained: TrainedFusion, splits: dict[str, Triples], entities: EntityIndex,
                 known: KnownAnswers) -> tuple[LinkMetrics, QueryRanks]:
    """Filtered test metrics (message passing over the training triples) and the per-query ranks."""
    ranks = evaluate(trained.model, trained.features, splits["train"], splits["test"], entities, known)
    return summarise(ranks), ranks


@torch.no_grad()
def fused_item_vectors(trained: TrainedFusion, all_triples: Triples, entities: EntityIndex) -> np.ndarray:
    """[n_items, dim] float32 item vectors (item-index order) with message passing over every known triple."""
    trained.model.eval()
    vectors = trained.model(trained.features, relation_edges(all_triples, entities))
    return vectors[ITEM].detach().cpu().numpy().astype(np.float32)
