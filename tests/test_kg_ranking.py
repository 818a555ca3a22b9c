"""Filtered link-prediction metrics against hand-computed ranks and closed forms."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from liveslate.kg.entities import EntityIndex
from liveslate.kg.ranking import KnownAnswers, filtered_ranks, summarise, tied_rank_scores, uniform_expectation
from liveslate.kg.triples import Triples


def test_ties_are_scored_as_the_expectation_over_their_order():
    # DESIGN.md: five tied at the top → MRR (1 + 1/2 + 1/3 + 1/4 + 1/5) / 5 = 0.4567, Hit@1 0.2.
    reciprocal, hits = tied_rank_scores(np.array([0]), np.array([5]), k=1)
    assert reciprocal[0] == pytest.approx(137 / 60 / 5)
    assert hits[0] == pytest.approx(0.2)
    # Two better, truth tied with two others on ranks 3..5: Hits@4 counts ranks 3 and 4 → 2/3.
    reciprocal, hits = tied_rank_scores(np.array([2]), np.array([3]), k=4)
    assert reciprocal[0] == pytest.approx((1 / 3 + 1 / 4 + 1 / 5) / 3)
    assert hits[0] == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="tied >= 1"):
        tied_rank_scores(np.array([0]), np.array([0]), k=1)


# Three items (global 0..2) and four rooms (global 3..6); one relation item → room.
ENTITIES = EntityIndex(node_types=("item", "room"), ids={"item": ("i0", "i1", "i2"),
                                                         "room": ("r0", "r1", "r2", "r3")},
                       relations=(("item", "in_room", "room"),))
# score[head, tail] over global indices; only item → room cells are ever asked for.
TABLE = torch.zeros(7, 7)
TABLE[0, 3:7] = torch.tensor([0.9, 0.5, 0.7, 0.1])     # i0: r0 > r2 > r1 > r3
TABLE[1, 3:7] = torch.tensor([0.2, 0.2, 0.2, 0.2])     # i1: all tied
TABLE[2, 3:7] = torch.tensor([0.3, 0.8, 0.1, 0.6])     # i2: r1 > r3 > r0 > r2


def _table_score(head, relation, tail):
    return TABLE[head, tail]


def test_tail_and_head_ranks_with_filtering_by_hand():
    # Test triple (i0, in_room, r2); (i0, in_room, r0) is also true (train), so r0 is filtered out.
    train = Triples(np.array([0, 1, 2]), np.array([0, 0, 0]), np.array([3, 4, 6]))
    test = Triples(np.array([0]), np.array([0]), np.array([5]))
    ranks = filtered_ranks(_table_score, test, ENTITIES, KnownAnswers(train, test))
    # Tail side: candidates r1 (0.5), r2 (0.7, truth), r3 (0.1) after removing r0 → rank 1.
    # Head side (?, in_room, r2): scores i0 0.7 (truth), i1 0.2, i2 0.1; no other true head → rank 1.
    assert ranks.direction.tolist() == [0, 1]
    assert ranks.greater.tolist() == [0, 0]
    assert ranks.tied.tolist() == [1, 1]
    assert ranks.candidates.tolist() == [3, 3]
    assert summarise(ranks).mrr == pytest.approx(1.0)
    # Without filtering (r0 unknown as an answer), the tail rank would be 2.
    unfiltered = filtered_ranks(_table_score, test, ENTITIES, KnownAnswers(test))
    assert unfiltered.greater.tolist() == [1, 0]
    assert summarise(unfiltered).mrr == pytest.approx((1 / 2 + 1) / 2)
    assert summarise(unfiltered).hits_at_1 == pytest.approx(0.5)


def test_tied_scores_and_head_side_by_hand():
    # (i1, in_room, r1): tail side ties all four rooms → expected RR (1+1/2+1/3+1/4)/4;
    # head side (?, in_room, r1): i0 0.5, i1 0.2 (truth), i2 0.8 → rank 3.
    test = Triples(np.array([1]), np.array([0]), np.array([4]))
    ranks = filtered_ranks(_table_score, test, ENTITIES, KnownAnswers(test))
    assert ranks.greater.tolist() == [0, 2]
    assert ranks.tied.tolist() == [4, 1]
    metrics = summarise(ranks)
    assert metrics.mrr == pytest.approx(((1 + 1 / 2 + 1 / 3 + 1 / 4) / 4 + 1 / 3) / 2)
    assert metrics.hits_at_1 == pytest.approx((1 / 4 + 0) / 2)
    assert metrics.hits_at_10 == pytest.approx(1.0)
    per_tail = summarise(ranks, ranks.direction == 0)
    assert per_tail.queries == 1 and per_tail.hits_at_1 == pytest.approx(0.25)


def test_uniform_expectation_closed_form():
    ranks = filtered_ranks(_table_score, Triples(np.array([0]), np.array([0]), np.array([5])), ENTITIES,
                           KnownAnswers(Triples(np.array([0]), np.array([0]), np.array([5]))))
    # Tail side 4 candidates, head side 3: E[RR] = H4/4 and H3/3.
    expected = uniform_expectation(ranks)
    assert expected.mrr == pytest.approx(((1 + 1 / 2 + 1 / 3 + 1 / 4) / 4 + (1 + 1 / 2 + 1 / 3) / 3) / 2)
    assert expected.hits_at_1 == pytest.approx((1 / 4 + 1 / 3) / 2)
    assert expected.hits_at_10 == pytest.approx(1.0)


def test_random_scores_match_the_uniform_expectation():
    # 200 items → 30 rooms, 400 test triples; iid random scores rank the truth uniformly.
    entities = EntityIndex(node_types=("item", "room"),
                           ids={"item": tuple(f"i{k}" for k in range(200)), "room": tuple(f"r{k}" for k in range(30))},
                           relations=(("item", "in_room", "room"),))
    rng = np.random.default_rng(3)
    heads = np.arange(200)
    test = Triples(heads, np.zeros(200, np.int64), 200 + rng.integers(0, 30, 200))
    generator = torch.Generator().manual_seed(5)
    table = torch.rand(230, 230, generator=generator)

    def score(head, relation, tail):
        return table[head, tail]

    ranks = filtered_ranks(score, test, entities, KnownAnswers(test))
    observed, expected = summarise(ranks), uniform_expectation(ranks)
    # 400 queries; the reciprocal rank has sd < 0.35, so 4 standard errors ≈ 0.07.
    assert observed.mrr == pytest.approx(expected.mrr, abs=0.07)
    assert observed.hits_at_10 == pytest.approx(expected.hits_at_10, abs=0.1)


def test_non_finite_scores_are_refused():
    test = Triples(np.array([0]), np.array([0]), np.array([5]))

    def broken(head, relation, tail):
        return torch.full(head.shape, float("nan"))

    with pytest.raises(ValueError, match="non-finite score"):
        filtered_ranks(broken, test, ENTITIES, KnownAnswers(test))
