"""Files of the kg_multimodal stage (all written atomically), per catalogue under ``<out>/<dataset>/``:

``catalog.parquet``      the canonical catalogue built from the source (item-index order)
``rejects.parquet``      source rows or items left out, with the reason (level, key, reason)
``item_vectors.npz``     vectors [n_items, D] float32, item_ids [n_items] unicode: the kg stage's contract
``graph.pt``             the HeteroData as plain tensors (``kg.graph.load_graph``)
``entities.json``        node types, relations, the vector layout, the config that made them
``model.pt``             state_dict of the model that made the vectors
``triples.npz``          train/valid/test triples (global indices)
``summary.json``         source counts, modalities (and the missing ones), variants (trained,
                         skipped, aliased), per-model and per-relation test metrics, encoder cache use
Metrics: ``{dataset: {gnn_<variant> | <kge> | random: {mrr, hits_at_1, hits_at_10}}}`` (the shape
of metrics/kg.json) and the linear probes ``{dataset: {target, <modality>: {accuracy, ...}}}``.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from liveslate.config import KgMultimodalConfig
from liveslate.data.multimodal import CatalogueSource
from liveslate.io import atomic_path, write_json, write_parquet
from liveslate.kg.fusion_ablation import MultimodalRun
from liveslate.kg.graph import save_graph
from liveslate.kg.output import save_item_vectors


def metrics_payload(runs: list[MultimodalRun]) -> dict[str, dict[str, dict[str, float]]]:
    return {run.dataset: {name: m.to_json() for name, m in run.metrics.items()} for run in runs}


def probe_payload(runs: list[MultimodalRun]) -> dict[str, Any]:
    return {run.dataset: run.probe for run in runs}


def summary_payload(run: MultimodalRun, source: CatalogueSource) -> dict[str, Any]:
    features = run.modalities.features
    return {
        "dataset": run.dataset,
        "source": source.stats,
        "output": run.output,
        "graph": run.graph.counts,
        "triples": {name: len(part) for name, part in run.splits.items()},
        "modalities": {name: {"dim": f.dim, "items": int(f.present.sum())} for name, f in features.items()},
        "missing_modalities": run.modalities.missing,
        "encoder_cache": run.modalities.cache,
        "variants": {name: list(mods) for name, mods in run.variants.items()},
        "skipped_variants": run.skipped,
        "aliased_variants": run.aliases,
        "uniform_random_ranking": run.uniform.to_json(),
        "models": {
            name: {
                "test": metrics.to_json(),
                "queries": metrics.queries,
                "best_epoch": run.best_epoch.get(name),
                "seconds": round(run.seconds[name], 2) if name in run.seconds else None,
                "per_relation": run.per_relation.get(name),
            }
            for name, metrics in run.metrics.items()
        },
    }


def write_dataset_outputs(run: MultimodalRun, source: CatalogueSource, config: KgMultimodalConfig, out: Path) -> None:
    """Write every per-catalogue file listed in the module doc under ``out``."""
    import torch

    entities = run.graph.entities
    order = pd.Index(source.catalog["item_id"].astype(str)).get_indexer(list(entities.ids["item"]))
    write_parquet(out / "catalog.parquet", source.catalog.iloc[order].reset_index(drop=True))
    write_parquet(out / "rejects.parquet", source.rejects)
    save_item_vectors(out / "item_vectors.npz", run.vectors, entities.ids["item"])
    save_graph(out / "graph.pt", run.graph.data)
    write_json(out / "entities.json", {**entities.to_json(), "numeric": run.graph.numeric.to_json(),
                                       "vector_layout": run.layout, "config": dataclasses.asdict(config)})
    with atomic_path(out / "model.pt") as tmp:
        torch.save(run.state, tmp)
    with atomic_path(out / "triples.npz") as tmp, open(tmp, "wb") as handle:
        np.savez(handle, **{f"{split}_{part}": getattr(triples, part)
                            for split, triples in run.splits.items() for part in ("head", "relation", "tail")})
    write_json(out / "summary.json", summary_payload(run, source))


def training_curves(runs: list[MultimodalRun]) -> pd.DataFrame:
    """One row per (dataset, model, epoch): mean training loss and, where computed, validation MRR."""
    rows = [{"dataset": run.dataset, **row} for run in runs for row in run.history]
    return pd.DataFrame(rows, columns=["dataset", "model", "epoch", "loss", "valid_mrr"])
