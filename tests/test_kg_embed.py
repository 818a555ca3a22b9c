"""KGE training on a graph with a planted structure, the typed negative sampler and the vector read-out."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch

from liveslate.config import KgConfig
from liveslate.kg.embed import TypedCorruption, entity_vectors, make_model, random_model, train_kge
from liveslate.kg.graph import build_graph
from liveslate.kg.ranking import KnownAnswers, filtered_ranks, summarise, uniform_expectation
from liveslate.kg.triples import Triples, graph_triples, split_triples

SMALL = KgConfig(dim=16, epochs=150, lr=0.02, eval_every=50, batch_size=256, co_click_window="room_day")
N_PER_CLUSTER = 20


@pytest.fixture(autouse=True)
def one_thread():
    """The stage trains with kg.threads = 1: these matrices are tiny and extra threads only spin."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _planted():
    """Two clusters of 20 items: cluster A is red / shirt / brand a, cluster B blue / shoe / brand b,
    and the items of a cluster are co-clicked with each other (one room-day per cluster)."""
    n = 2 * N_PER_CLUSTER
    cluster = np.repeat([0, 1], N_PER_CLUSTER)
    catalog = pd.DataFrame({
        "item_id": pd.array([f"i{k:02d}" for k in range(n)], dtype="string"),
        "room_id": pd.array(["room"] * n, dtype="string"),
        "first_seen": pd.to_datetime(["2019-11-24"] * n),
        "cat_colour": pd.array(np.where(cluster == 0, "red", "blue"), dtype="string"),
        "cat_kind": pd.array(np.where(cluster == 0, "shirt", "shoe"), dtype="string"),
        "cat_brand": pd.array(np.where(cluster == 0, "a", "b"), dtype="string"),
    })
    logs = pd.DataFrame({
        "item_id": catalog["item_id"],
        "room_id": catalog["room_id"],
        "ts": pd.to_datetime(np.where(cluster == 0, "2019-11-24 10:00", "2019-11-25 10:00"), utc=True),
        "click": np.ones(n, dtype="int8"),
        "session_id": pd.array([None] * n, dtype="string"),
    })
    kg = build_graph(catalog, logs, SMALL)
    return kg, graph_triples(kg.data, kg.entities)


def _hold_out(triples: Triples, rows: np.ndarray) -> dict[str, Triples]:
    held = np.zeros(len(triples), dtype=bool)
    held[rows] = True
    return {"train": triples.take(np.flatnonzero(~held)), "test": triples.take(np.flatnonzero(held))}


def _co_click_split(kg, triples: Triples) -> tuple[dict[str, Triples], np.ndarray]:
    """A fifth of the co-click pairs held out, and for each the partner swapped for the item at the
    same place in the other cluster (the corrupted tail)."""
    co_clicked = np.flatnonzero(triples.relation == kg.entities.relation_id(("item", "co_clicked", "item")))
    splits = _hold_out(triples, np.random.default_rng(0).choice(co_clicked, size=76, replace=False))
    tail = splits["test"].tail
    return splits, np.where(tail < N_PER_CLUSTER, tail + N_PER_CLUSTER, tail - N_PER_CLUSTER)


def _wins(model, test: Triples, corrupted_tail: np.ndarray) -> np.ndarray:
    """[n] bool: the true triple scores above the one whose tail is replaced."""
    head, relation = torch.as_tensor(test.head), torch.as_tensor(test.relation)
    with torch.no_grad():
        return (model(head, relation, torch.as_tensor(test.tail))
                > model(head, relation, torch.as_tensor(corrupted_tail))).numpy()


def test_planted_graph_counts():
    kg, triples = _planted()
    # 40 room + 3 × 40 attribute edges + C(20, 2) co-click pairs per cluster.
    assert kg.counts["edges"]["item|co_clicked|item"] == 2 * 190
    assert len(triples) == 40 * 4 + 380


@pytest.mark.parametrize("name", ["transe", "distmult", "complex", "rotate"])
def test_trained_kge_ranks_held_out_co_clicks_above_corrupted_ones(name):
    # Random vectors win about half of these comparisons (next test); with 76 pairs one standard
    # error is 0.057, so 0.85 is six standard errors above chance.
    kg, triples = _planted()
    splits, other_cluster = _co_click_split(kg, triples)
    test, known = splits["test"], KnownAnswers(*splits.values())
    trained = train_kge(name, splits, kg.entities, known, SMALL, seed=11, progress=False)
    assert _wins(trained.model, test, other_cluster).mean() >= 0.85
    # Filtered MRR (both directions, all items as candidates) beats a uniformly random ranking.
    ranks = filtered_ranks(trained.model, test, kg.entities, known)
    assert summarise(ranks).mrr > uniform_expectation(ranks).mrr + 0.04


@pytest.mark.parametrize(("name", "epochs"), [("transe", 300), ("rotate", 150)])
def test_translation_models_infer_a_held_out_attribute(name, epochs):
    # The colour of 8 items per cluster is held out; kind, brand and co-clicks say which it is.
    # Only translation/rotation models are asked: they put an item at (kind − relation), so
    # items of a cluster coincide in every direction, while DistMult/ComplEx only align items
    # in each relation's own subspace and often leave the colour direction unconstrained.
    kg, triples = _planted()
    colour = kg.entities.relation_id(("item", "has_cat_colour", "cat_colour"))
    held_items = np.r_[np.arange(8), N_PER_CLUSTER + np.arange(8)]
    splits = _hold_out(triples, np.flatnonzero((triples.relation == colour) & np.isin(triples.head, held_items)))
    test = splits["test"]
    trained = train_kge(name, splits, kg.entities, KnownAnswers(*splits.values()), replace(SMALL, epochs=epochs),
                        seed=11, progress=False)
    blue, red = kg.entities.offset("cat_colour") + np.arange(2)  # colours sorted: blue, red
    assert _wins(trained.model, test, np.where(test.tail == red, blue, red)).all()


def test_untrained_vectors_do_not_know_the_plant():
    kg, triples = _planted()
    splits, other_cluster = _co_click_split(kg, triples)
    wins = [_wins(random_model(name, kg.entities, SMALL, seed), splits["test"], other_cluster).mean()
            for name in ("transe", "distmult", "complex", "rotate") for seed in range(3)]
    assert 0.3 < np.mean(wins) < 0.7


def test_typed_corruption_stays_within_the_node_type():
    kg, train = _planted()
    entities = kg.entities
    sampler = TypedCorruption(entities, torch.Generator().manual_seed(0))
    head, relation, tail = (torch.as_tensor(a) for a in (train.head, train.relation, train.tail))
    new_head, new_relation, new_tail = sampler(head, relation, tail)
    types = torch.as_tensor(entities.node_type_of())
    half = head.numel() // 2
    assert torch.equal(types[new_head], types[head]) and torch.equal(types[new_tail], types[tail])
    assert torch.equal(new_tail[:half], tail[:half]) and torch.equal(new_head[half:], head[half:])
    assert torch.equal(new_relation, relation)
    # Every head is an item (40 candidates): most draws differ from the original.
    assert (new_head[:half] != head[:half]).float().mean() > 0.8


def test_training_is_deterministic_and_keeps_the_best_epoch():
    kg, triples = _planted()
    splits = split_triples(triples, 0.1, 0.1, seed=0)
    known = KnownAnswers(*splits.values())
    config = replace(SMALL, epochs=40, eval_every=10)
    first = train_kge("complex", splits, kg.entities, known, config, seed=3, progress=False)
    second = train_kge("complex", splits, kg.entities, known, config, seed=3, progress=False)
    for key, value in first.model.state_dict().items():
        assert torch.equal(value, second.model.state_dict()[key]), key
    evaluated = [row for row in first.history if "valid_mrr" in row]
    assert [row["epoch"] for row in evaluated] == [10, 20, 30, 40]
    best = max(evaluated, key=lambda row: row["valid_mrr"])
    assert first.best_epoch == best["epoch"]
    assert summarise(filtered_ranks(first.model, splits["valid"], kg.entities, known)).mrr == pytest.approx(
        best["valid_mrr"])


@pytest.mark.parametrize(("name", "width"), [("transe", 16), ("distmult", 16), ("complex", 32), ("rotate", 32)])
def test_entity_vectors_have_the_documented_width(name, width):
    kg, _ = _planted()
    model = make_model(name, kg.entities, SMALL)
    vectors = entity_vectors(model)
    assert vectors.shape == (kg.entities.num_entities, width) and vectors.dtype == np.float32
    if name == "transe":
        np.testing.assert_allclose(np.abs(vectors).sum(axis=1), 1.0, rtol=1e-5)


def test_diverging_training_is_reported():
    kg, triples = _planted()
    splits = {"train": triples}
    config = replace(SMALL, epochs=3, lr=1.0e30)
    with pytest.raises(ValueError, match="kg distmult: training loss became"):
        train_kge("distmult", splits, kg.entities, KnownAnswers(*splits.values()), config, seed=0, progress=False)


def test_triples_take_keeps_columns_aligned():
    triples = Triples(np.array([1, 2, 3]), np.array([0, 1, 0]), np.array([4, 5, 6]))
    part = triples.take(np.array([2, 0]))
    assert (part.head.tolist(), part.relation.tolist(), part.tail.tolist()) == ([3, 1], [0, 0], [6, 4])
    with pytest.raises(ValueError, match="one length"):
        Triples(np.array([1]), np.array([0, 1]), np.array([2]))
