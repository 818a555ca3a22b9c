"""The entity index of a heterogeneous knowledge graph.

Each node type numbers its entities 0..n−1 (items in the stable item index order,
other types in sorted id order); a KGE model sees one global numbering with the node
types laid back to back, so entity ``(type, local)`` is global ``offset[type] + local``.
The index is saved as JSON beside the graph so any reader can map rows back to ids.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

import numpy as np
import pandas as pd

Relation = tuple[str, str, str]  # (source node type, relation name, destination node type)


@dataclass(frozen=True)
class EntityIndex:
    """Node types in global order, their entity ids, and the relation types by id."""

    node_types: tuple[str, ...]
    ids: dict[str, tuple[str, ...]]
    relations: tuple[Relation, ...]
    _lookup: dict[str, pd.Index] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        missing = [t for t in self.node_types if t not in self.ids]
        if missing:
            raise ValueError(f"entity index: node type(s) {missing} have no id list")
        lookup = {}
        for node_type in self.node_types:
            index = pd.Index(self.ids[node_type], dtype=object)
            if index.has_duplicates:
                dupes = index[index.duplicated()].unique().tolist()[:5]
                raise ValueError(f"entity index: node type {node_type!r} lists id(s) {dupes} twice")
            lookup[node_type] = index
        for relation in self.relations:
            for node_type in (relation[0], relation[2]):
                if node_type not in lookup:
                    raise ValueError(f"entity index: relation {relation} names unknown node type {node_type!r}")
        object.__setattr__(self, "_lookup", lookup)

    # ------------------------------------------------------------------ sizes and offsets
    def count(self, node_type: str) -> int:
        return len(self.ids[node_type])

    def offset(self, node_type: str) -> int:
        """First global index of ``node_type``."""
        start = 0
        for other in self.node_types:
            if other == node_type:
                return start
            start += self.count(other)
        raise KeyError(f"unknown node type {node_type!r} (known: {list(self.node_types)})")

    @property
    def num_entities(self) -> int:
        return sum(self.count(t) for t in self.node_types)

    @property
    def num_relations(self) -> int:
        return len(self.relations)

    def relation_id(self, relation: Relation) -> int:
        try:
            return self.relations.index(relation)
        except ValueError:
            raise KeyError(f"unknown relation {relation} (known: {list(self.relations)})") from None

    def node_type_of(self) -> np.ndarray:
        """[num_entities] int64: position in ``node_types`` of each global entity."""
        return np.repeat(np.arange(len(self.node_types)), [self.count(t) for t in self.node_types])

    # ------------------------------------------------------------------ id ↔ index
    def locate(self, node_type: str, ids: Iterable[Any], where: str) -> np.ndarray:
        """Local indices [n] int64 of ``ids`` in ``node_type``.

        Raises ValueError naming ``where``, the node type and the first unknown id, so a
        triple that mentions an entity the graph does not hold never passes silently.
        """
        if node_type not in self._lookup:
            raise ValueError(f"{where}: unknown node type {node_type!r} (known: {list(self.node_types)})")
        values = pd.Index(list(ids), dtype=object)
        local = self._lookup[node_type].get_indexer(values)
        if (local < 0).any():
            bad = values[local < 0].unique().tolist()
            raise ValueError(f"{where}: unknown {node_type} id {bad[0]!r}"
                             + (f" (and {len(bad) - 1} more)" if len(bad) > 1 else "")
                             + f"; the graph holds {self.count(node_type)} {node_type} entities")
        return local.astype(np.int64)

    def describe(self, global_index: int) -> tuple[str, str]:
        """(node type, entity id) of a global index, for messages and reports."""
        if not 0 <= global_index < self.num_entities:
            raise IndexError(f"global entity {global_index} outside 0..{self.num_entities - 1}")
        for node_type in self.node_types:
            if global_index < self.count(node_type):
                return node_type, self.ids[node_type][global_index]
            global_index -= self.count(node_type)
        raise AssertionError("unreachable: counts sum to num_entities")

    # ------------------------------------------------------------------ JSON
    def to_json(self) -> dict[str, Any]:
        return {
            "node_types": [
                {"name": t, "offset": self.offset(t), "count": self.count(t), "ids": list(self.ids[t])}
                for t in self.node_types
            ],
            "relations": [{"id": i, "source": s, "name": n, "target": d} for i, (s, n, d) in enumerate(self.relations)],
            "num_entities": self.num_entities,
        }

    @classmethod
    def from_json(cls, payload: dict[str, Any]) -> "EntityIndex":
        node_types = tuple(entry["name"] for entry in payload["node_types"])
        ids = {entry["name"]: tuple(entry["ids"]) for entry in payload["node_types"]}
        relations = tuple((r["source"], r["name"], r["target"]) for r in sorted(payload["relations"], key=lambda r: r["id"]))
        return cls(node_types=node_types, ids=ids, relations=relations)


def sorted_ids(values: Sequence[Any] | pd.Series) -> tuple[str, ...]:
    """Distinct non-null values as strings, sorted: the local order of a non-item node type."""
    series = pd.Series(values, dtype=object).dropna().astype(str)
    return tuple(sorted(series.unique()))
