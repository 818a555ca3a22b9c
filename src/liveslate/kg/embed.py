"""Knowledge-graph embeddings from torch_geometric.nn.kge: build, train, read entity vectors.

Training is mini-batch Adam on the library's own loss of each model (margin ranking for
TransE/DistMult, logistic for ComplEx/RotatE) with one corrupted triple per true one.
The library corrupts with any entity; we corrupt the head or the tail with an entity of
the *same node type* instead (``TypedCorruption``), because a corrupted triple such as
(item, in_room, <a colour hash>) is trivially false and teaches nothing about which room.
Every ``eval_every`` epochs the filtered validation MRR is computed and the best epoch's
weights are kept.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch_geometric.nn.kge import ComplEx, DistMult, KGEModel, RotatE, TransE
from tqdm import tqdm

from liveslate.config import KgConfig
from liveslate.kg.entities import EntityIndex
from liveslate.kg.ranking import KnownAnswers, filtered_ranks, summarise
from liveslate.kg.triples import Triples


def make_model(name: str, entities: EntityIndex, config: KgConfig) -> KGEModel:
    """A freshly initialised KGE of kind ``name`` over the graph's entities and relations."""
    n, r, d = entities.num_entities, entities.num_relations, config.dim
    if name == "transe":
        return TransE(n, r, d, margin=config.margin, p_norm=1.0)
    if name == "distmult":
        return DistMult(n, r, d, margin=config.margin)
    if name == "complex":
        return ComplEx(n, r, d)
    if name == "rotate":
        return RotatE(n, r, d, margin=config.rotate_margin)
    raise ValueError(f"kg.models: unknown KGE {name!r} (expected transe, distmult, complex or rotate)")


class TypedCorruption:
    """Negative sampler: replace the head (first half of a batch) or the tail (second half)
    by a uniformly drawn entity of the same node type, as the library does across all types.

    Installed on a model instance as its ``random_sample``, which the library's ``loss`` calls.
    """

    def __init__(self, entities: EntityIndex, generator: torch.Generator) -> None:
        counts = [entities.count(t) for t in entities.node_types]
        self.type_of = torch.as_tensor(entities.node_type_of())
        self.offset = torch.as_tensor(np.concatenate([[0], np.cumsum(counts)[:-1]]), dtype=torch.long)
        self.count = torch.as_tensor(counts, dtype=torch.long)
        self.generator = generator

    def __call__(self, head_index: torch.Tensor, rel_type: torch.Tensor,
                 tail_index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        half = head_index.numel() // 2
        head_index, tail_index = head_index.clone(), tail_index.clone()
        for part, index in ((slice(None, half), head_index), (slice(half, None), tail_index)):
            kinds = self.type_of[index[part]]
            draw = torch.rand(kinds.numel(), generator=self.generator)
            index[part] = self.offset[kinds] + (draw * self.count[kinds]).long().clamp_max(self.count[kinds] - 1)
        return head_index, rel_type, tail_index


@dataclass
class TrainedKge:
    """A trained model, its per-evaluation history and the epoch whose weights it holds."""

    name: str
    model: KGEModel
    best_epoch: int
    history: list[dict[str, Any]] = field(default_factory=list)


def _tensors(triples: Triples) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    return (torch.as_tensor(triples.head), torch.as_tensor(triples.relation), torch.as_tensor(triples.tail))


def train_kge(name: str, splits: dict[str, Triples], entities: EntityIndex, known: KnownAnswers,
              config: KgConfig, seed: int, progress: bool = True) -> TrainedKge:
    """Train KGE ``name`` on ``splits['train']``; keep the weights of the best validation MRR.

    ``history`` rows: epoch, mean training loss, validation MRR (absent when there is no
    validation triple, in which case the last epoch is kept). Deterministic given ``seed``.
    """
    torch.manual_seed(seed)
    model = make_model(name, entities, config)
    generator = torch.Generator().manual_seed(seed)
    model.random_sample = TypedCorruption(entities, generator)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    loader = model.loader(*_tensors(splits["train"]), batch_size=config.batch_size, shuffle=True,
                          generator=torch.Generator().manual_seed(seed))
    valid = splits.get("valid")
    best_mrr, best_epoch, best_state = -1.0, config.epochs, None
    history: list[dict[str, Any]] = []
    epochs = tqdm(range(1, config.epochs + 1), desc=f"kg {name}", disable=not progress, leave=False)
    for epoch in epochs:
        model.train()
        total, batches = 0.0, 0
        for head, relation, tail in loader:
            optimizer.zero_grad()
            loss = model.loss(head, relation, tail)
            loss.backward()
            optimizer.step()
            total += loss.item()
            batches += 1
        row: dict[str, Any] = {"model": name, "epoch": epoch, "loss": total / max(batches, 1)}
        if not np.isfinite(row["loss"]):
            raise ValueError(f"kg {name}: training loss became {row['loss']} at epoch {epoch}; lower kg.lr")
        if valid is not None and len(valid) and (epoch % config.eval_every == 0 or epoch == config.epochs):
            model.eval()
            mrr = summarise(filtered_ranks(model, valid, entities, known)).mrr
            row["valid_mrr"] = mrr
            if mrr > best_mrr:
                best_mrr, best_epoch, best_state = mrr, epoch, copy.deepcopy(model.state_dict())
        history.append(row)
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return TrainedKge(name=name, model=model, best_epoch=best_epoch, history=history)


def random_model(name: str, entities: EntityIndex, config: KgConfig, seed: int) -> KGEModel:
    """The baseline: KGE ``name`` with its random initial vectors (same sizes, never trained)."""
    torch.manual_seed(seed)
    return make_model(name, entities, config).eval()


@torch.no_grad()
def entity_vectors(model: KGEModel) -> np.ndarray:
    """[num_entities, D] float32 entity vectors as the model scores them.

    TransE: node embeddings L1-normalised (its forward normalises them); DistMult: as
    stored; ComplEx and RotatE: real part then imaginary part (D = 2·dim).
    """
    if isinstance(model, TransE):
        vectors = F.normalize(model.node_emb.weight, p=model.p_norm, dim=-1)
    elif isinstance(model, (ComplEx, RotatE)):
        vectors = torch.cat([model.node_emb.weight, model.node_emb_im.weight], dim=-1)
    else:
        vectors = model.node_emb.weight
    return vectors.detach().cpu().numpy().astype(np.float32)
