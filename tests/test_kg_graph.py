"""The knowledge graph on tiny hand-made catalogues: indices, edge counts and bad input, checked by hand."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from liveslate.config import KgConfig, KgHierarchyLink
from liveslate.kg.entities import EntityIndex
from liveslate.kg.graph import build_graph, check_graph, co_click_pairs, load_graph, save_graph
from liveslate.kg.triples import Triples, graph_triples, split_triples


def _catalog() -> pd.DataFrame:
    """Four items; first_seen puts the stable index in the order b, c, a, d (not alphabetical)."""
    return pd.DataFrame({
        "item_id": pd.array(["a", "b", "c", "d"], dtype="string"),
        "room_id": pd.array(["r2", "r1", "r1", "r2"], dtype="string"),
        "first_seen": pd.to_datetime(["2019-11-25", "2019-11-24", "2019-11-24", "2019-11-26"]),
        "cat_colour": pd.array(["red", "blue", None, "red"], dtype="string"),
        "cat_kind": pd.array(["shirt", "shoe", "shoe", "sock"], dtype="string"),
        "cat_group": pd.array(["top", "foot", "foot", "foot"], dtype="string"),
        "num_price": [10.0, 20.0, np.nan, 30.0],
    })


def _logs(rows: list[tuple[str, str, str, int, str | None]]) -> pd.DataFrame:
    """(item, room, UTC timestamp, click, session) rows in the canonical columns the graph reads."""
    items, rooms, stamps, clicks, sessions = zip(*rows)
    return pd.DataFrame({
        "item_id": pd.array(items, dtype="string"),
        "room_id": pd.array(rooms, dtype="string"),
        "ts": pd.to_datetime(list(stamps), utc=True),
        "click": np.array(clicks, dtype="int8"),
        "session_id": pd.array(sessions, dtype="string"),
    })


LOGS = _logs([
    ("b", "r1", "2019-11-24 10:00", 1, "s1"),
    ("c", "r1", "2019-11-24 23:59", 1, "s2"),
    ("a", "r2", "2019-11-24 12:00", 1, "s3"),   # alone in its room-day: no pair
    ("b", "r1", "2019-11-25 00:01", 1, "s2"),   # next UTC day
    ("c", "r1", "2019-11-25 08:00", 1, None),
    ("a", "r2", "2019-11-25 08:00", 0, "s2"),   # not a click
])


def _edges(kg, relation) -> list[tuple[int, int]]:
    return [tuple(pair) for pair in kg.data[relation].edge_index.t().tolist()]


def test_nodes_follow_the_stable_item_index_and_sorted_values():
    kg = build_graph(_catalog(), LOGS, KgConfig(co_click_window="room_day"))
    ids = kg.entities.ids
    assert ids["item"] == ("b", "c", "a", "d")
    assert ids["room"] == ("r1", "r2")
    assert ids["cat_colour"] == ("blue", "red")
    assert ids["cat_kind"] == ("shirt", "shoe", "sock")
    assert kg.entities.node_types == ("item", "room", "cat_colour", "cat_group", "cat_kind")
    # Global offsets: 4 items, 2 rooms, 2 colours, 2 groups, then kinds.
    assert [kg.entities.offset(t) for t in kg.entities.node_types] == [0, 4, 6, 8, 10]
    assert kg.entities.num_entities == 13
    assert {t: kg.data[t].num_nodes for t in kg.data.node_types} == {
        "item": 4, "room": 2, "cat_colour": 2, "cat_group": 2, "cat_kind": 3}


def test_attribute_and_room_edges_by_hand():
    kg = build_graph(_catalog(), LOGS, KgConfig(co_click_window="none"))
    # b→r1, c→r1, a→r2, d→r2 in item order b, c, a, d.
    assert _edges(kg, ("item", "in_room", "room")) == [(0, 0), (1, 0), (2, 1), (3, 1)]
    # c has no colour: three edges, b→blue(0), a→red(1), d→red(1).
    assert _edges(kg, ("item", "has_cat_colour", "cat_colour")) == [(0, 0), (2, 1), (3, 1)]
    assert _edges(kg, ("item", "has_cat_kind", "cat_kind")) == [(0, 1), (1, 1), (2, 0), (3, 2)]
    assert kg.counts["edges"]["item|co_clicked|item"] == 0
    # Item features: num_price standardised over b, a, d (20, 10, 30: mean 20, std √(200/3)); c missing → 0.
    std = np.sqrt(200 / 3)
    np.testing.assert_allclose(kg.data["item"].x[:, 0].numpy(), [0.0, 0.0, -10 / std, 10 / std], rtol=1e-6)


def test_hierarchy_edges_and_triples_with_global_offsets():
    config = KgConfig(co_click_window="none", hierarchy=(KgHierarchyLink(parent="cat_group", child="cat_kind"),))
    kg = build_graph(_catalog(), LOGS, config)
    # kinds shirt, shoe, sock → groups top(1), foot(0), foot(0).
    assert _edges(kg, ("cat_kind", "child_of", "cat_group")) == [(0, 1), (1, 0), (2, 0)]
    triples = graph_triples(kg.data, kg.entities)
    # 4 rooms + 3 colours + 4 groups + 4 kinds + 3 hierarchy + 0 co-clicks.
    assert len(triples) == 18
    child_of = kg.entities.relation_id(("cat_kind", "child_of", "cat_group"))
    rows = triples.relation == child_of
    # cat_kind starts at global 10, cat_group at 8.
    assert triples.head[rows].tolist() == [10, 11, 12]
    assert triples.tail[rows].tolist() == [9, 8, 8]


def test_room_day_co_clicks_by_hand():
    kg = build_graph(_catalog(), LOGS, KgConfig(co_click_window="room_day"))
    # r1 on 11-24: b, c → one pair (0, 1); r1 on 11-25: b, c again; r2 on 11-24: a alone.
    assert _edges(kg, ("item", "co_clicked", "item")) == [(0, 1)]
    assert kg.data["item", "co_clicked", "item"].edge_weight.tolist() == [2.0]
    assert kg.counts["co_click"] == {"clicks": 5, "windows": 3, "windows_capped": 0, "clicks_without_window": 0}


def test_session_co_clicks_skip_rows_without_a_session():
    kg = build_graph(_catalog(), LOGS, KgConfig(co_click_window="session"))
    # s1: b; s2: c, b (the a row of s2 is no click); s3: a; one click has no session.
    assert _edges(kg, ("item", "co_clicked", "item")) == [(0, 1)]
    assert kg.counts["co_click"]["clicks_without_window"] == 1
    assert kg.counts["co_click"]["windows"] == 3


def test_busy_window_keeps_its_most_clicked_items():
    items = pd.Index(["x", "y", "z"])
    logs = _logs([("x", "r", "2019-11-24 01:00", 1, None), ("y", "r", "2019-11-24 02:00", 1, None),
                  ("y", "r", "2019-11-24 03:00", 1, None), ("z", "r", "2019-11-24 04:00", 1, None),
                  ("z", "r", "2019-11-24 05:00", 1, None)])
    pairs, counts = co_click_pairs(logs, items, "room_day", max_items=2)
    # y and z have two clicks each, x one: only the pair (y, z) = (1, 2) survives.
    assert pairs[["source", "target"]].values.tolist() == [[1, 2]]
    assert counts["windows_capped"] == 1
    pairs, _ = co_click_pairs(logs, items, "room_day", max_items=3)
    assert pairs[["source", "target"]].values.tolist() == [[0, 1], [0, 2], [1, 2]]


def test_clicked_item_outside_the_catalogue_is_named():
    logs = _logs([("b", "r1", "2019-11-24 10:00", 1, None), ("ghost", "r1", "2019-11-24 11:00", 1, None)])
    with pytest.raises(ValueError, match=r"train logs row 1: item_id 'ghost' is not in the catalogue"):
        build_graph(_catalog(), logs, KgConfig())


@pytest.mark.parametrize(("link", "message"), [
    (KgHierarchyLink(parent="cat_kind", child="cat_group"),
     r"kg.hierarchy\[0\]: cat_group value 'foot' lies under 2 values of cat_kind"),
    (KgHierarchyLink(parent="cat_size", child="cat_kind"),
     r"kg.hierarchy\[0\].parent: column 'cat_size' is not a cat_\* column"),
])
def test_broken_hierarchy_is_rejected(link, message):
    with pytest.raises(ValueError, match=message):
        build_graph(_catalog(), LOGS, KgConfig(hierarchy=(link,)))


def test_duplicate_catalogue_item_is_rejected():
    catalog = pd.concat([_catalog(), _catalog().iloc[[2]]], ignore_index=True)
    with pytest.raises(ValueError, match=r"item_id 'c' appears twice"):
        build_graph(catalog, LOGS, KgConfig())


def test_unknown_entity_is_named_by_its_id():
    kg = build_graph(_catalog(), LOGS, KgConfig())
    assert kg.entities.locate("cat_colour", ["red", "blue"], "test").tolist() == [1, 0]
    with pytest.raises(ValueError, match=r"triples file: unknown cat_colour id 'green'"):
        kg.entities.locate("cat_colour", ["red", "green"], "triples file")


def test_edge_outside_its_node_type_is_caught_on_cpu():
    kg = build_graph(_catalog(), LOGS, KgConfig())
    kg.data["item", "in_room", "room"].edge_index = torch.tensor([[0, 1], [0, 2]])  # only rooms 0 and 1 exist
    with pytest.raises(ValueError, match=r"edge type item\|in_room\|room: room index 2 is not below num_nodes 2"):
        check_graph(kg.data)
    with pytest.raises(ValueError, match=r"relation item\|in_room\|room: room index 2 is not an entity"):
        graph_triples(kg.data, kg.entities)


def test_graph_and_entity_index_round_trip(tmp_path):
    config = KgConfig(hierarchy=(KgHierarchyLink(parent="cat_group", child="cat_kind"),))
    kg = build_graph(_catalog(), LOGS, config)
    save_graph(tmp_path / "graph.pt", kg.data)
    loaded = load_graph(tmp_path / "graph.pt")  # weights_only: no pickled classes
    assert set(loaded.edge_types) == set(kg.data.edge_types)
    for edge_type in kg.data.edge_types:
        assert torch.equal(loaded[edge_type].edge_index, kg.data[edge_type].edge_index)
    assert torch.equal(loaded["item"].x, kg.data["item"].x)
    again = EntityIndex.from_json(kg.entities.to_json())
    assert again == kg.entities
    assert again.describe(10) == ("cat_kind", "shirt")


def test_split_keeps_every_entity_and_relation_in_training():
    # A star: entity 0 linked to 1..20 by relation 0, plus a chain 1-2, 2-3, ... by relation 1.
    head = np.r_[np.zeros(20, np.int64), np.arange(1, 20)]
    tail = np.r_[np.arange(1, 21), np.arange(2, 21)]
    relation = np.r_[np.zeros(20, np.int64), np.ones(19, np.int64)]
    triples = Triples(head, relation, tail)
    parts = split_triples(triples, 0.2, 0.2, seed=7)
    assert sum(len(p) for p in parts.values()) == len(triples)
    train = parts["train"]
    seen = set(train.head.tolist()) | set(train.tail.tolist())
    assert seen == set(range(21))
    assert set(train.relation.tolist()) == {0, 1}
    # Entity 20 has degree 2 (0→20 and 19→20): at most one of its triples can leave training.
    held = [p for name, p in parts.items() if name != "train"]
    assert sum(int(((p.head == 20) | (p.tail == 20)).sum()) for p in held) <= 1
    again = split_triples(triples, 0.2, 0.2, seed=7)
    assert all(np.array_equal(parts[k].head, again[k].head) for k in parts)
