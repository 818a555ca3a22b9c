"""Filtered, type-constrained link-prediction metrics (MRR, Hits@1, Hits@10).

Each held-out triple (h, r, t) is asked twice: rank t among every entity of r's target
node type for (h, r, ?), and h among every entity of r's source type for (?, r, t).
"Filtered": the other true answers known from any split are removed from the candidates,
so a model is not penalised for ranking another true triple first. Ties are scored as
the expectation over a uniformly random order of the tied entities (DESIGN.md): a true
entity tied with t − 1 others on ranks a..a+t−1 gets reciprocal rank (1/t)·Σ 1/r and
Hits@k = (number of those ranks ≤ k) / t, so the result never depends on input order.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from liveslate.kg.entities import EntityIndex
from liveslate.kg.triples import Triples

# (heads [n], relations [n], tails [n]) global indices → scores [n], higher = more plausible.
ScoreFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]

# Score matrices are built in chunks of at most this many (query, candidate) cells.
_CELLS_PER_CHUNK = 1 << 20


@dataclass(frozen=True)
class LinkMetrics:
    mrr: float
    hits_at_1: float
    hits_at_10: float
    queries: int

    def to_json(self) -> dict[str, float]:
        return {"mrr": self.mrr, "hits_at_1": self.hits_at_1, "hits_at_10": self.hits_at_10}


@dataclass(frozen=True)
class QueryRanks:
    """Per query [n]: entities scored strictly above the truth, the tied block size (≥ 1,
    truth included), the candidates left after filtering, the relation id and the
    direction (0 = predict the tail, 1 = predict the head)."""

    greater: np.ndarray
    tied: np.ndarray
    candidates: np.ndarray
    relation: np.ndarray
    direction: np.ndarray


class KnownAnswers:
    """Every true triple of every split, looked up by (head, relation) and (relation, tail)."""

    def __init__(self, *parts: Triples) -> None:
        self.tails: dict[tuple[int, int], list[int]] = defaultdict(list)
        self.heads: dict[tuple[int, int], list[int]] = defaultdict(list)
        for part in parts:
            for h, r, t in zip(part.head.tolist(), part.relation.tolist(), part.tail.tolist()):
                self.tails[(h, r)].append(t)
                self.heads[(r, t)].append(h)


def _harmonic(n: int) -> np.ndarray:
    """H[0..n] with H[0] = 0."""
    return np.concatenate([[0.0], np.cumsum(1.0 / np.arange(1, n + 1))])


def tied_rank_scores(greater: np.ndarray, tied: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Expected reciprocal rank and Hits@k [n] of a truth tied with ``tied − 1`` others after ``greater`` better ones."""
    if (tied < 1).any():
        raise ValueError("ranking: every tied block must hold the true entity (tied >= 1)")
    first = greater + 1
    last = greater + tied
    harmonic = _harmonic(int(last.max(initial=1)))
    reciprocal = (harmonic[last] - harmonic[first - 1]) / tied
    hits = np.clip(k - first + 1, 0, tied) / tied
    return reciprocal, hits


def filtered_ranks(score_fn: ScoreFn, queries: Triples, entities: EntityIndex, known: KnownAnswers) -> QueryRanks:
    """Rank every query triple in both directions among the entities of the right type (see module doc).

    Raises ValueError when the model scores a candidate NaN or ±inf.
    """
    greater, tied, candidates, relation_ids, direction = [], [], [], [], []
    for side in (0, 1):
        for relation_id in np.unique(queries.relation):
            source, _, target = entities.relations[int(relation_id)]
            rows = np.flatnonzero(queries.relation == relation_id)
            answer_type = target if side == 0 else source
            offset, count = entities.offset(answer_type), entities.count(answer_type)
            pool = torch.arange(offset, offset + count)
            chunk = max(1, _CELLS_PER_CHUNK // count)
            for start in range(0, rows.size, chunk):
                part = rows[start:start + chunk]
                heads, tails = queries.head[part], queries.tail[part]
                fixed = torch.as_tensor(heads if side == 0 else tails)
                n = part.size
                grid_fixed = fixed.repeat_interleave(count)
                grid_pool = pool.repeat(n)
                grid_rel = torch.full((n * count,), int(relation_id), dtype=torch.long)
                with torch.no_grad():
                    if side == 0:
                        scores = score_fn(grid_fixed, grid_rel, grid_pool)
                    else:
                        scores = score_fn(grid_pool, grid_rel, grid_fixed)
                scores = scores.detach().cpu().double().numpy().reshape(n, count)
                if not np.isfinite(scores).all():
                    raise ValueError(f"ranking: relation {'|'.join(entities.relations[int(relation_id)])} "
                                     "got a non-finite score; the model has diverged")
                truth = (tails if side == 0 else heads) - offset
                keep = np.ones((n, count), dtype=bool)
                for i in range(n):
                    others = (known.tails[(int(heads[i]), int(relation_id))] if side == 0
                              else known.heads[(int(relation_id), int(tails[i]))])
                    keep[i, np.asarray(others, dtype=np.int64) - offset] = False
                    keep[i, truth[i]] = True
                true_score = scores[np.arange(n), truth][:, None]
                greater.append(((scores > true_score) & keep).sum(axis=1))
                tied.append(((scores == true_score) & keep).sum(axis=1))
                candidates.append(keep.sum(axis=1))
                relation_ids.append(np.full(n, relation_id, dtype=np.int64))
                direction.append(np.full(n, side, dtype=np.int64))
    if not greater:
        empty = np.zeros(0, dtype=np.int64)
        return QueryRanks(empty, empty, empty, empty, empty)
    return QueryRanks(*(np.concatenate(x) for x in (greater, tied, candidates, relation_ids, direction)))


def summarise(ranks: QueryRanks, mask: np.ndarray | None = None) -> LinkMetrics:
    """Mean reciprocal rank and Hits@1/10 over the queries selected by ``mask`` (all by default)."""
    if mask is None:
        mask = np.ones(ranks.greater.shape, dtype=bool)
    if not mask.any():
        raise ValueError("ranking: no held-out queries to score; the graph is too small to hold out triples")
    reciprocal, hits_1 = tied_rank_scores(ranks.greater[mask], ranks.tied[mask], 1)
    _, hits_10 = tied_rank_scores(ranks.greater[mask], ranks.tied[mask], 10)
    return LinkMetrics(mrr=float(reciprocal.mean()), hits_at_1=float(hits_1.mean()),
                       hits_at_10=float(hits_10.mean()), queries=int(mask.sum()))


def uniform_expectation(ranks: QueryRanks) -> LinkMetrics:
    """Metrics of a ranker that orders the filtered candidates uniformly at random (closed form).

    With c candidates the truth's rank is uniform on 1..c: E[1/rank] = H_c / c and
    P(rank ≤ k) = min(k, c) / c.
    """
    c = ranks.candidates
    if c.size == 0:
        raise ValueError("ranking: no held-out queries to score")
    harmonic = _harmonic(int(c.max()))
    return LinkMetrics(mrr=float((harmonic[c] / c).mean()), hits_at_1=float((1.0 / c).mean()),
                       hits_at_10=float((np.minimum(10, c) / c).mean()), queries=int(c.size))
