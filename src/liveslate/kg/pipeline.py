"""The kg stage's computation, free of file I/O: graph → triples → KGEs → metrics → item vectors."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from liveslate.config import KgConfig
from liveslate.kg.coldstart import item_vectors, placed_items
from liveslate.kg.embed import TrainedKge, entity_vectors, random_model, train_kge
from liveslate.kg.graph import ITEM, KnowledgeGraph, build_graph
from liveslate.kg.ranking import KnownAnswers, LinkMetrics, filtered_ranks, summarise, uniform_expectation
from liveslate.kg.triples import Triples, graph_triples, split_triples

RANDOM = "random"


@dataclass
class KgRun:
    """Everything the stage writes.

    metrics: KGE name (and ``random``) → filtered test metrics.
    per_relation: KGE name → relation ``source|name|target`` → test metrics of its queries.
    uniform: closed-form metrics of a uniformly random ranking of the same filtered candidates.
    vectors: [n_items, D] float32 in item-index order from ``config.model``; ``placed`` [n_items]
    bool marks items with a learnt vector (the rest are cold-start vectors).
    """

    graph: KnowledgeGraph
    splits: dict[str, Triples]
    trained: dict[str, TrainedKge]
    metrics: dict[str, LinkMetrics]
    per_relation: dict[str, dict[str, dict[str, float]]]
    uniform: LinkMetrics
    seconds: dict[str, float]
    vectors: np.ndarray
    placed: np.ndarray
    layout: dict[str, Any]


def item_attributes(graph: KnowledgeGraph, catalog: pd.DataFrame) -> pd.DataFrame:
    """Room and ``cat_*`` values of each item, in item-index order (the cold-start keys)."""
    columns = ["room_id"] + [t for t in graph.entities.node_types if t.startswith("cat_")]
    frame = catalog.assign(item_id=catalog["item_id"].astype(str)).set_index("item_id")
    return frame.loc[list(graph.entities.ids[ITEM]), columns].reset_index(drop=True)


def run_kg(catalog: pd.DataFrame, train_logs: pd.DataFrame, config: KgConfig, seed: int,
           progress: bool = True) -> KgRun:
    """Build the graph, train and evaluate every KGE of ``config.models``, and make the item vectors.

    Every model is trained from ``seed`` (so its result does not depend on the order of
    ``config.models``); the random baseline is ``config.model`` with its initial vectors.
    """
    import torch

    torch.set_num_threads(config.threads)
    graph = build_graph(catalog, train_logs, config)
    triples = graph_triples(graph.data, graph.entities)
    if len(triples) == 0:
        raise ValueError("kg: the graph has no edges; the catalogue needs a room or cat_* value per item")
    splits = split_triples(triples, config.valid_fraction, config.test_fraction, seed)
    known = KnownAnswers(*splits.values())
    entities = graph.entities

    trained: dict[str, TrainedKge] = {}
    metrics: dict[str, LinkMetrics] = {}
    per_relation: dict[str, dict[str, dict[str, float]]] = {}
    seconds: dict[str, float] = {}
    uniform = None
    for name in (*config.models, RANDOM):
        start = time.perf_counter()
        if name == RANDOM:
            model = random_model(config.model, entities, config, seed)
        else:
            trained[name] = train_kge(name, splits, entities, known, config, seed, progress=progress)
            model = trained[name].model
        ranks = filtered_ranks(model, splits["test"], entities, known)
        seconds[name] = time.perf_counter() - start
        metrics[name] = summarise(ranks)
        per_relation[name] = {
            "|".join(entities.relations[int(r)]): {**summarise(ranks, ranks.relation == r).to_json(),
                                                   "queries": int((ranks.relation == r).sum())}
            for r in np.unique(ranks.relation)
        }
        if uniform is None:
            uniform = uniform_expectation(ranks)

    placed = placed_items(splits["train"].head, splits["train"].tail, entities)
    numeric = graph.numeric.values if config.numeric else None
    vectors = item_vectors(entity_vectors(trained[config.model].model), entities, placed,
                           item_attributes(graph, catalog), numeric)
    kge_width = vectors.shape[1] - (numeric.shape[1] if numeric is not None else 0)
    layout = {
        "model": config.model,
        "kge_columns": [0, kge_width],
        "numeric_columns": {c: kge_width + j for j, c in enumerate(graph.numeric.columns)} if config.numeric else {},
        "cold_start_items": [entities.ids[ITEM][i] for i in np.flatnonzero(~placed)],
    }
    return KgRun(graph=graph, splits=splits, trained=trained, metrics=metrics, per_relation=per_relation,
                 uniform=uniform, seconds=seconds, vectors=vectors, placed=placed, layout=layout)
