"""Triples (head, relation, tail) in the global entity numbering, and their held-out split."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from torch_geometric.data import HeteroData

from liveslate.kg.entities import EntityIndex


@dataclass(frozen=True)
class Triples:
    """Parallel int64 arrays [n]: global head entity, relation id, global tail entity."""

    head: np.ndarray
    relation: np.ndarray
    tail: np.ndarray

    def __post_init__(self) -> None:
        if not (self.head.shape == self.relation.shape == self.tail.shape) or self.head.ndim != 1:
            raise ValueError(f"triples: head, relation and tail must be 1-D of one length, got "
                             f"{self.head.shape}, {self.relation.shape}, {self.tail.shape}")

    def __len__(self) -> int:
        return int(self.head.shape[0])

    def take(self, rows: np.ndarray) -> "Triples":
        return Triples(self.head[rows], self.relation[rows], self.tail[rows])


def graph_triples(data: HeteroData, entities: EntityIndex) -> Triples:
    """Every edge of every relation as a triple; local node indices shifted by their type's offset.

    Raises ValueError naming the relation and the index when an edge points outside its node
    type, so a corrupted graph cannot produce a triple about an entity that does not exist.
    """
    heads, relations, tails = [], [], []
    for relation_id, relation in enumerate(entities.relations):
        source, _, target = relation
        if relation not in data.edge_types:
            continue
        edge_index = data[relation].edge_index.detach().cpu().numpy().astype(np.int64)
        for row, node_type in ((0, source), (1, target)):
            local = edge_index[row]
            bad = (local < 0) | (local >= entities.count(node_type))
            if bad.any():
                raise ValueError(f"relation {'|'.join(relation)}: {node_type} index {int(local[bad][0])} is not an "
                                 f"entity (the graph holds {entities.count(node_type)} {node_type} entities)")
        heads.append(edge_index[0] + entities.offset(source))
        tails.append(edge_index[1] + entities.offset(target))
        relations.append(np.full(edge_index.shape[1], relation_id, dtype=np.int64))
    if not heads:
        return Triples(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64))
    return Triples(np.concatenate(heads), np.concatenate(relations), np.concatenate(tails))


def split_triples(triples: Triples, valid_fraction: float, test_fraction: float, seed: int) -> dict[str, Triples]:
    """Hold out ``valid`` and ``test`` triples at random; every entity and relation keeps a training triple.

    Triples are visited in a seeded random order; one is held out only while its head, its
    tail and its relation each still have another training triple, because a KGE cannot
    place an entity it never saw. The held-out sets may therefore be smaller than the
    fractions ask on sparse graphs. Returns {"train", "valid", "test"}.
    """
    n = len(triples)
    want_valid = int(round(n * valid_fraction))
    want_test = int(round(n * test_fraction))
    size = int(max(triples.head.max(initial=-1), triples.tail.max(initial=-1))) + 1
    degree = np.bincount(np.concatenate([triples.head, triples.tail]), minlength=size)
    relation_count = np.bincount(triples.relation, minlength=int(triples.relation.max(initial=-1)) + 1)
    order = np.random.default_rng(seed).permutation(n)
    held: list[int] = []
    for row in order:
        if len(held) == want_valid + want_test:
            break
        h, r, t = triples.head[row], triples.relation[row], triples.tail[row]
        # A self-loop counts twice in `degree`, so it needs one more spare end.
        need = 2 if h == t else 1
        if degree[h] > need and degree[t] > need and relation_count[r] > 1:
            degree[h] -= 1
            degree[t] -= 1
            relation_count[r] -= 1
            held.append(int(row))
    held_rows = np.array(held, dtype=np.int64)
    # When fewer triples could be held out than asked, valid and test shrink in proportion.
    n_test = int(round(len(held_rows) * want_test / max(want_valid + want_test, 1)))
    test_rows, valid_rows = held_rows[:n_test], held_rows[n_test:]
    train_mask = np.ones(n, dtype=bool)
    train_mask[held_rows] = False
    return {
        "train": triples.take(np.flatnonzero(train_mask)),
        "valid": triples.take(np.sort(valid_rows)),
        "test": triples.take(np.sort(test_rows)),
    }
