"""One vector per catalogue item: KGE item vectors, cold-start vectors, numeric attributes.

An item is *placed* when it appears in a training triple, so the KGE learned its vector.
Any other item (e.g. one whose only triples were held out, or one added to the catalogue
with no known attribute value) gets a cold-start vector built from its attributes: for
each of its attribute values (room and ``cat_*`` values), the mean vector of the placed
items that share the value; the cold-start vector is the mean of those means. We average
*item* vectors rather than the attribute entities' own vectors because the two live in
different places for translation and rotation models (TransE puts an item near
``attribute − relation``, not near ``attribute``), while a mean of similar items' vectors is
an item vector for every model. An item that shares no value with a placed item gets the
mean of all placed items; with no placed item at all, zeros.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from liveslate.kg.entities import EntityIndex
from liveslate.kg.graph import ITEM


def cold_start_vectors(item_vectors: np.ndarray, placed: np.ndarray, attributes: pd.DataFrame) -> np.ndarray:
    """Replace the rows of items that are not ``placed`` by their cold-start vectors (module doc).

    item_vectors: [n_items, D]; placed: [n_items] bool; attributes: n_items rows (item-index
    order) of attribute columns, null where the item has no value. Returns a new [n_items, D].
    """
    if item_vectors.shape[0] != placed.shape[0] or len(attributes) != placed.shape[0]:
        raise ValueError(f"cold start: {item_vectors.shape[0]} vectors, {placed.shape[0]} placed flags and "
                         f"{len(attributes)} attribute rows must describe the same items")
    out = item_vectors.copy()
    if placed.all():
        return out
    if not placed.any():
        out[:] = 0.0
        return out
    overall = item_vectors[placed].mean(axis=0)
    group_means: dict[str, pd.DataFrame] = {}
    for column in attributes.columns:
        values = attributes[column].astype(object).where(attributes[column].notna(), None)
        frame = pd.DataFrame(item_vectors[placed], index=values[placed].to_numpy())
        group_means[column] = frame[frame.index.notna()].groupby(level=0).mean()
    for row in np.flatnonzero(~placed):
        parts = []
        for column, means in group_means.items():
            value = attributes[column].iloc[row]
            if pd.notna(value) and value in means.index:
                parts.append(means.loc[value].to_numpy())
        out[row] = np.mean(parts, axis=0) if parts else overall
    return out


def placed_items(train_heads: np.ndarray, train_tails: np.ndarray, entities: EntityIndex) -> np.ndarray:
    """[n_items] bool: the item appears as head or tail of some training triple."""
    offset, count = entities.offset(ITEM), entities.count(ITEM)
    placed = np.zeros(count, dtype=bool)
    for ends in (train_heads, train_tails):
        local = ends[(ends >= offset) & (ends < offset + count)] - offset
        placed[local] = True
    return placed


def item_vectors(entity_vectors: np.ndarray, entities: EntityIndex, placed: np.ndarray,
                 attributes: pd.DataFrame, numeric: np.ndarray | None) -> np.ndarray:
    """The output vectors [n_items, D (+ n_numeric)] float32 in item-index order.

    The KGE rows of the items (cold-start rows for items not ``placed``), then the
    standardised numeric attributes when given ([n_items, n_numeric]).
    """
    offset, count = entities.offset(ITEM), entities.count(ITEM)
    vectors = cold_start_vectors(entity_vectors[offset:offset + count], placed, attributes)
    if numeric is not None and numeric.shape[1]:
        vectors = np.concatenate([vectors, numeric], axis=1)
    return vectors.astype(np.float32)
