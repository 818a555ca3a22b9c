"""Heterogeneous knowledge graph of a catalogue and its training logs (torch_geometric HeteroData).

Node types (global order): ``item`` (stable item index order), ``room``, then one type
per ``cat_*`` column (named after the column; one node per distinct value of that
column, so OBD's per-campaign hashes never merge across columns).
Relations (edge types, in relation-id order):
- ``(item, in_room, room)``;
- ``(item, has_<column>, <column>)`` per ``cat_*`` column, for items with a value;
- ``(<child column>, child_of, <parent column>)`` per configured hierarchy level;
- ``(item, co_clicked, item)``: distinct items clicked in one window (same session, or
  same room and UTC day) of the *training* logs, stored once per unordered pair with the
  lower item index as source and the number of shared windows as ``edge_weight``.
Item nodes carry the standardised ``num_*`` attributes as ``x`` when the catalogue has any.
Built from the training split only, so no valid/test click leaks into item vectors.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch_geometric.data import HeteroData

from liveslate.config import KgConfig, KgHierarchyLink
from liveslate.kg.entities import EntityIndex, Relation, sorted_ids
from liveslate.kg.features import NumericFeatures, standardise_numeric
from liveslate.schema import category_columns, item_index

ITEM = "item"
ROOM = "room"
IN_ROOM = "in_room"
CHILD_OF = "child_of"
CO_CLICKED = "co_clicked"


@dataclass(frozen=True)
class KnowledgeGraph:
    """The graph, its entity index, the item numeric features and build counts for reports."""

    data: HeteroData
    entities: EntityIndex
    numeric: NumericFeatures
    counts: dict[str, Any]


def has_relation(column: str) -> str:
    return f"has_{column}"


def co_click_pairs(logs: pd.DataFrame, items: pd.Index, window: str, max_items: int) -> tuple[pd.DataFrame, dict[str, int]]:
    """Clicked items sharing a window → (pairs, counts).

    pairs: columns ``source``, ``target`` (local item indices, source < target) and
    ``windows`` (how many windows hold both). A window is a ``session_id`` (rows without
    one are skipped) or a (``room_id``, UTC day). A window with more than ``max_items``
    distinct clicked items keeps its ``max_items`` most-clicked ones (ties: lower item
    index), so one busy day cannot add a quadratic number of edges.
    Raises ValueError naming the log row whose item is not in the catalogue.
    """
    empty = pd.DataFrame({"source": np.array([], np.int64), "target": np.array([], np.int64),
                          "windows": np.array([], np.int64)})
    counts = {"clicks": 0, "windows": 0, "windows_capped": 0, "clicks_without_window": 0}
    if window == "none" or logs.empty:
        return empty, counts
    clicks = logs.loc[logs["click"].astype("int64") == 1]
    counts["clicks"] = len(clicks)
    local = items.get_indexer(pd.Index(clicks["item_id"].astype(str), dtype=object))
    if (local < 0).any():
        row = clicks.index[np.flatnonzero(local < 0)[0]]
        raise ValueError(f"train logs row {row}: item_id {clicks.at[row, 'item_id']!r} is not in the catalogue; "
                         "co-click edges need every clicked item to be a catalogue item")
    if window == "session":
        key = clicks["session_id"].astype("string")
    elif window == "room_day":
        day = pd.to_datetime(clicks["ts"], utc=True).dt.floor("D").dt.strftime("%Y-%m-%d")
        key = clicks["room_id"].astype("string") + "|" + day.astype("string")
    else:
        raise ValueError(f"kg.co_click_window: expected session, room_day or none, got {window!r}")
    frame = pd.DataFrame({"window": key.to_numpy(), "item": local})
    counts["clicks_without_window"] = int(frame["window"].isna().sum())
    frame = frame.dropna(subset=["window"])
    if frame.empty:
        return empty, counts
    per_item = frame.groupby(["window", "item"]).size().rename("n").reset_index()
    per_item = per_item.sort_values(["window", "n", "item"], ascending=[True, False, True], kind="mergesort")
    rank = per_item.groupby("window").cumcount()
    counts["windows"] = int(per_item["window"].nunique())
    counts["windows_capped"] = int(per_item.loc[rank >= max_items, "window"].nunique())
    kept = per_item.loc[rank < max_items, ["window", "item"]]
    joined = kept.merge(kept, on="window", suffixes=("_a", "_b"))
    joined = joined.loc[joined["item_a"] < joined["item_b"]]
    if joined.empty:
        return empty, counts
    pairs = joined.groupby(["item_a", "item_b"]).size().rename("windows").reset_index()
    pairs = pairs.rename(columns={"item_a": "source", "item_b": "target"})
    return pairs.astype({"source": np.int64, "target": np.int64, "windows": np.int64}), counts


def hierarchy_pairs(catalog: pd.DataFrame, link: KgHierarchyLink, where: str) -> pd.DataFrame:
    """Distinct (child value, parent value) pairs of one hierarchy level.

    Raises ValueError naming ``where`` when a column is missing or a child value lies
    under two parents (then the columns do not form a hierarchy).
    """
    for role, column in (("parent", link.parent), ("child", link.child)):
        if column not in category_columns(catalog):
            raise ValueError(f"{where}.{role}: column {column!r} is not a cat_* column of the catalogue "
                             f"(has: {category_columns(catalog)})")
    pairs = catalog[[link.child, link.parent]].dropna().astype(str).drop_duplicates()
    parents = pairs.groupby(link.child)[link.parent].nunique()
    if (parents > 1).any():
        child = parents[parents > 1].index[0]
        under = sorted(pairs.loc[pairs[link.child] == child, link.parent])
        raise ValueError(f"{where}: {link.child} value {child!r} lies under {len(under)} values of {link.parent} "
                         f"({under[:3]}); a hierarchy needs one parent per child")
    return pairs.sort_values([link.child, link.parent]).reset_index(drop=True)


def _edge_index(source: np.ndarray, target: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.stack([source, target]).astype(np.int64)).reshape(2, -1)


def build_graph(catalog: pd.DataFrame, train_logs: pd.DataFrame, config: KgConfig) -> KnowledgeGraph:
    """Catalogue + training logs → HeteroData, entity index and counts (see the module doc).

    Raises ValueError naming the item, row, column or params field for duplicate items,
    unknown clicked items, a broken hierarchy, or an edge that points outside its node type.
    """
    if catalog.empty:
        raise ValueError("catalogue: no items; the knowledge graph needs at least one item")
    duplicated = catalog["item_id"].astype(str).duplicated()
    if duplicated.any():
        raise ValueError(f"catalogue: item_id {catalog['item_id'].astype(str)[duplicated].iloc[0]!r} appears twice")
    items = item_index(catalog)
    ordered = catalog.assign(item_id=catalog["item_id"].astype(str)).set_index("item_id").loc[items].reset_index()
    attributes = category_columns(catalog)

    ids = {ITEM: tuple(items), ROOM: sorted_ids(ordered["room_id"])}
    for column in attributes:
        ids[column] = sorted_ids(ordered[column])
    relations: list[Relation] = [(ITEM, IN_ROOM, ROOM)] + [(ITEM, has_relation(c), c) for c in attributes]
    # Checked before the entity index exists, so a bad params entry is named as such.
    hierarchy = [(i, link, hierarchy_pairs(ordered, link, f"kg.hierarchy[{i}]")) for i, link in enumerate(config.hierarchy)]
    relations += [(link.child, CHILD_OF, link.parent) for _, link, _ in hierarchy]
    relations.append((ITEM, CO_CLICKED, ITEM))
    entities = EntityIndex(node_types=(ITEM, ROOM, *attributes), ids=ids, relations=tuple(relations))

    numeric = standardise_numeric(ordered)
    data = HeteroData()
    for node_type in entities.node_types:
        data[node_type].num_nodes = entities.count(node_type)
    if numeric.columns:
        data[ITEM].x = torch.as_tensor(numeric.values)

    item_local = np.arange(len(items), dtype=np.int64)
    has_room = ordered["room_id"].notna().to_numpy()
    data[ITEM, IN_ROOM, ROOM].edge_index = _edge_index(
        item_local[has_room], entities.locate(ROOM, ordered.loc[has_room, "room_id"].astype(str), "catalogue room_id"))
    for column in attributes:
        present = ordered[column].notna().to_numpy()
        data[ITEM, has_relation(column), column].edge_index = _edge_index(
            item_local[present], entities.locate(column, ordered.loc[present, column].astype(str), f"catalogue {column}"))
    for i, link, pairs in hierarchy:
        data[link.child, CHILD_OF, link.parent].edge_index = _edge_index(
            entities.locate(link.child, pairs[link.child], f"kg.hierarchy[{i}].child"),
            entities.locate(link.parent, pairs[link.parent], f"kg.hierarchy[{i}].parent"))
    pairs, click_counts = co_click_pairs(train_logs, items, config.co_click_window, config.co_click_max_items)
    store = data[ITEM, CO_CLICKED, ITEM]
    store.edge_index = _edge_index(pairs["source"].to_numpy(), pairs["target"].to_numpy())
    store.edge_weight = torch.tensor(pairs["windows"].to_numpy(), dtype=torch.float32)

    check_graph(data)
    counts = {
        "nodes": {t: entities.count(t) for t in entities.node_types},
        "edges": {"|".join(r): int(data[r].edge_index.size(1)) for r in entities.relations},
        "co_click": click_counts,
    }
    return KnowledgeGraph(data=data, entities=entities, numeric=numeric, counts=counts)


def check_graph(data: HeteroData) -> None:
    """Every edge index is int64 [2, E] with 0 ≤ index < num_nodes of its node type (checked on CPU).

    Raises ValueError naming the edge type and the offending index.
    """
    for edge_type in data.edge_types:
        edge_index = data[edge_type].edge_index.detach().cpu()
        name = "|".join(edge_type)
        if edge_index.dtype != torch.long or edge_index.dim() != 2 or edge_index.size(0) != 2:
            raise ValueError(f"edge type {name}: expected an int64 edge_index of shape [2, E], "
                             f"got {edge_index.dtype} {tuple(edge_index.shape)}")
        if edge_index.numel() == 0:
            continue
        if int(edge_index.min()) < 0:
            raise ValueError(f"edge type {name}: negative node index {int(edge_index.min())}")
        for row, node_type in ((0, edge_type[0]), (1, edge_type[2])):
            num_nodes = data[node_type].num_nodes
            largest = int(edge_index[row].max())
            if num_nodes is None or largest >= num_nodes:
                raise ValueError(f"edge type {name}: {node_type} index {largest} is not below num_nodes {num_nodes}")


# ---------------------------------------------------------------------- persistence (no pickles)


def save_graph(path: Path, data: HeteroData) -> None:
    """Write the graph as a dict of plain tensors, loadable with ``torch.load(weights_only=True)``."""
    from liveslate.io import atomic_path

    payload = {
        "num_nodes": {t: int(data[t].num_nodes) for t in data.node_types},
        "x": {t: data[t].x for t in data.node_types if "x" in data[t]},
        "edge_index": {"|".join(e): data[e].edge_index for e in data.edge_types},
        "edge_weight": {"|".join(e): data[e].edge_weight for e in data.edge_types if "edge_weight" in data[e]},
    }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def load_graph(path: Path) -> HeteroData:
    """Inverse of ``save_graph``; the graph is re-checked before it is returned."""
    payload = torch.load(path, weights_only=True)
    data = HeteroData()
    for node_type, count in payload["num_nodes"].items():
        data[node_type].num_nodes = count
    for node_type, x in payload["x"].items():
        data[node_type].x = x
    for name, edge_index in payload["edge_index"].items():
        edge_type = tuple(name.split("|"))
        data[edge_type].edge_index = edge_index
        if name in payload["edge_weight"]:
            data[edge_type].edge_weight = payload["edge_weight"][name]
    check_graph(data)
    return data
