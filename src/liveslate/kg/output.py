"""Files of the kg stage (all written atomically).

``<out>/item_vectors.npz``  vectors [n_items, D] float32, item_ids [n_items] unicode, item-index order
``<out>/graph.pt``          the HeteroData as plain tensors (``graph.load_graph``)
``<out>/entities.json``     node types with offsets and ids, relations, numeric standardisation,
                            the vector layout and the cold-start items
``<out>/model.pt``          state_dict of the KGE that made the vectors (its config is in entities.json)
``<out>/triples.npz``       train/valid/test triples (head, relation, tail global indices)
``<out>/summary.json``      counts, per-model and per-relation test metrics, best epochs, timings
metrics JSON                {dataset: {model or ``random``: {mrr, hits_at_1, hits_at_10}}}
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from liveslate.config import KgConfig
from liveslate.io import atomic_path, write_json
from liveslate.kg.graph import save_graph
from liveslate.kg.pipeline import KgRun


def save_item_vectors(path: Path, vectors: np.ndarray, item_ids: list[str] | tuple[str, ...]) -> None:
    """The output contract: ``vectors`` [n, D] float32 and ``item_ids`` [n] unicode, no pickles."""
    if vectors.ndim != 2 or vectors.shape[0] != len(item_ids):
        raise ValueError(f"item vectors: shape {vectors.shape} does not match {len(item_ids)} item ids")
    if not np.isfinite(vectors).all():
        raise ValueError("item vectors: a vector is not finite; the KGE diverged")
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        np.savez(handle, vectors=vectors.astype(np.float32), item_ids=np.asarray(list(item_ids), dtype=str))


def metrics_payload(run: KgRun, config: KgConfig) -> dict[str, dict[str, dict[str, float]]]:
    return {config.dataset: {name: m.to_json() for name, m in run.metrics.items()}}


def summary_payload(run: KgRun, config: KgConfig) -> dict[str, Any]:
    return {
        "dataset": config.dataset,
        "output_model": config.model,
        "graph": run.graph.counts,
        "triples": {name: len(part) for name, part in run.splits.items()},
        "test_queries": run.uniform.queries,
        "uniform_random_ranking": run.uniform.to_json(),
        "models": {
            name: {
                "test": metrics.to_json(),
                "best_epoch": run.trained[name].best_epoch if name in run.trained else None,
                "seconds": round(run.seconds[name], 2),
                "per_relation": run.per_relation[name],
            }
            for name, metrics in run.metrics.items()
        },
        "items": {"total": int(run.placed.size), "cold_start": int((~run.placed).sum())},
    }


def write_kg_outputs(run: KgRun, config: KgConfig, out: Path, metrics_path: Path) -> None:
    """Write every file listed in the module doc."""
    import torch

    entities = run.graph.entities
    save_item_vectors(out / "item_vectors.npz", run.vectors, entities.ids["item"])
    save_graph(out / "graph.pt", run.graph.data)
    write_json(out / "entities.json", {
        **entities.to_json(),
        "numeric": run.graph.numeric.to_json(),
        "vector_layout": run.layout,
        "config": dataclasses.asdict(config),
    })
    with atomic_path(out / "model.pt") as tmp:
        torch.save(run.trained[config.model].model.state_dict(), tmp)
    with atomic_path(out / "triples.npz") as tmp, open(tmp, "wb") as handle:
        np.savez(handle, **{f"{split}_{part}": getattr(triples, part)
                            for split, triples in run.splits.items() for part in ("head", "relation", "tail")})
    write_json(out / "summary.json", summary_payload(run, config))
    write_json(metrics_path, metrics_payload(run, config))


def training_curves(run: KgRun) -> pd.DataFrame:
    """One row per (model, epoch): mean training loss, and the validation MRR where it was computed."""
    rows = [row for trained in run.trained.values() for row in trained.history]
    return pd.DataFrame(rows, columns=["model", "epoch", "loss", "valid_mrr"])
