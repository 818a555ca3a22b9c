"""One multimodal catalogue end to end, free of file I/O.

catalogue → graph (the kg stage's builder) → held-out triples (its split) → modality
features → the fusion-GNN ablation (structure only, each modality alone, all together)
and the KGE baselines on the same split → filtered test metrics, linear probes and the
item vectors of the model named by ``kg_multimodal.output``.

A variant that needs a modality the catalogue lacks is skipped with its reason; a variant
whose modalities equal an earlier one's (``all`` on a one-modality catalogue) is not
trained twice: it is recorded as an alias of that variant.
"""

from __future__ import annotations

import dataclasses
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pandas as pd

from liveslate.config import KgConfig, KgHierarchyLink, KgMultimodalConfig
from liveslate.kg.graph import ITEM, KnowledgeGraph, build_graph
from liveslate.kg.modalities import MODALITIES, Modalities, item_modalities
from liveslate.kg.ranking import KnownAnswers, LinkMetrics, QueryRanks, filtered_ranks, summarise, uniform_expectation
from liveslate.kg.triples import Triples, graph_triples, split_triples

RANDOM = "random"
PROBE_TARGET = "cat_class"


def gnn_key(variant: str) -> str:
    """The name of a fusion variant in the metrics file."""
    return f"gnn_{variant}"


@dataclass
class MultimodalRun:
    """Everything the stage writes for one catalogue.

    metrics: ``gnn_<variant>``, each KGE baseline and ``random`` → filtered test metrics.
    vectors: [n_items, D] float32 item vectors (item-index order) of ``output``.
    """

    dataset: str
    graph: KnowledgeGraph
    splits: dict[str, Triples]
    modalities: Modalities
    variants: dict[str, tuple[str, ...]]
    skipped: dict[str, str]
    aliases: dict[str, str]
    metrics: dict[str, LinkMetrics]
    per_relation: dict[str, dict[str, dict[str, float]]]
    best_epoch: dict[str, int]
    seconds: dict[str, float]
    history: list[dict[str, Any]]
    uniform: LinkMetrics
    output: str
    vectors: np.ndarray
    layout: dict[str, Any]
    probe: dict[str, Any]
    state: dict[str, Any]


@contextmanager
def torch_threads(count: int) -> Iterator[None]:
    """Run the block with ``count`` torch intra-op threads, then restore the previous setting."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def resolve_variants(requested: tuple[str, ...], available: tuple[str, ...],
                     missing: dict[str, str]) -> tuple[dict[str, tuple[str, ...]], dict[str, str], dict[str, str]]:
    """Requested variant names → (variants to train: name → modalities, skipped: name → reason,
    aliases: name → the trained variant with the same modalities)."""
    run: dict[str, tuple[str, ...]] = {}
    skipped: dict[str, str] = {}
    aliases: dict[str, str] = {}
    for name in requested:
        if name == "structure":
            modalities: tuple[str, ...] = ()
        elif name == "all":
            if not available:
                skipped[name] = "the catalogue has no modality (text, image or num_*)"
                continue
            modalities = tuple(m for m in MODALITIES if m in available)
        elif name in available:
            modalities = (name,)
        else:
            skipped[name] = missing.get(name, f"the catalogue has no {name} modality")
            continue
        same = next((other for other, mods in run.items() if mods == modalities), None)
        if same is not None:
            aliases[name] = same
        else:
            run[name] = modalities
    return run, skipped, aliases


def kge_config(config: KgMultimodalConfig, dataset: str, model: str,
               hierarchy: tuple[KgHierarchyLink, ...]) -> KgConfig:
    """The kg stage's KgConfig for one baseline KGE on this catalogue (no logs, so no co-click edges)."""
    settings = dataclasses.asdict(config.kge)
    known = {f.name for f in dataclasses.fields(KgConfig)}
    return dataclasses.replace(
        KgConfig(), dataset=dataset, model=model, models=(model,), co_click_window="none", hierarchy=hierarchy,
        valid_fraction=config.valid_fraction, test_fraction=config.test_fraction,
        **{k: v for k, v in settings.items() if k in known})


def _per_relation(ranks: QueryRanks, graph: KnowledgeGraph) -> dict[str, dict[str, float]]:
    return {"|".join(graph.entities.relations[int(r)]): {**summarise(ranks, ranks.relation == r).to_json(),
                                                          "queries": int((ranks.relation == r).sum())}
            for r in np.unique(ranks.relation)}


def ordered_catalogue(catalog: pd.DataFrame, graph: KnowledgeGraph) -> pd.DataFrame:
    """Catalogue rows in the graph's item order (the stable item index)."""
    frame = catalog.assign(item_id=catalog["item_id"].astype(str)).set_index("item_id")
    return frame.loc[list(graph.entities.ids[ITEM])].reset_index()


def probes(ordered: pd.DataFrame, modalities: Modalities, root: Path, folds: int, seed: int) -> dict[str, Any]:
    """Linear probes of ``cat_class`` from each modality's encoder output (and raw pixels for photos)."""
    from liveslate.kg.probe import linear_probe, raw_pixels

    if PROBE_TARGET not in ordered.columns:
        return {"skipped": f"the catalogue has no {PROBE_TARGET} column"}
    labelled = ordered[PROBE_TARGET].notna().to_numpy()
    result: dict[str, Any] = {"target": PROBE_TARGET}
    for name, raw in modalities.raw.items():
        rows = labelled & modalities.features[name].present
        result[name] = linear_probe(raw[rows], ordered.loc[rows, PROBE_TARGET].astype(str).to_numpy(), folds, seed)
    if "image" in modalities.raw:
        rows = labelled & modalities.features["image"].present
        pixels = raw_pixels([root / p for p in ordered.loc[rows, "image"].astype(str)])
        result["raw_pixels"] = linear_probe(pixels, ordered.loc[rows, PROBE_TARGET].astype(str).to_numpy(), folds, seed)
    return result


def run_multimodal(dataset: str, catalog: pd.DataFrame, hierarchy: tuple[KgHierarchyLink, ...], root: Path,
                   config: KgMultimodalConfig, seed: int, cache_dir: Path | None,
                   progress: bool = True) -> MultimodalRun:
    """Train and evaluate every variant and baseline on ``catalog`` (canonical schema) and make the
    output item vectors. Every model starts from ``seed``. Raises ValueError naming the params
    field when ``kg_multimodal.output_variant`` is a variant this catalogue cannot have."""
    from liveslate.kg.coldstart import item_vectors, placed_items
    from liveslate.kg.embed import entity_vectors, train_kge
    from liveslate.kg.fusion_train import fused_item_vectors, held_out_metrics, train_fusion
    from liveslate.kg.pipeline import item_attributes

    empty_logs = pd.DataFrame({"click": pd.Series(dtype="int8"), "item_id": pd.Series(dtype="string")})
    graph = build_graph(catalog, empty_logs, kge_config(config, dataset, "distmult", hierarchy))
    triples = graph_triples(graph.data, graph.entities)
    if len(triples) == 0:
        raise ValueError(f"{dataset}: the graph has no edges; items need a room or a cat_* value")
    splits = split_triples(triples, config.valid_fraction, config.test_fraction, seed)
    if not len(splits["test"]) or not len(splits["valid"]):
        raise ValueError(f"{dataset}: no triple could be held out (every entity needs a spare edge); "
                         "the catalogue is too small")
    known = KnownAnswers(*splits.values())
    ordered = ordered_catalogue(catalog, graph)
    modalities = item_modalities(ordered, root, config, cache_dir)
    variants, skipped, aliases = resolve_variants(config.variants, tuple(modalities.features), modalities.missing)

    metrics: dict[str, LinkMetrics] = {}
    per_relation: dict[str, dict[str, dict[str, float]]] = {}
    best_epoch: dict[str, int] = {}
    seconds: dict[str, float] = {}
    history: list[dict[str, Any]] = []
    trained_gnn: dict[str, Any] = {}
    trained_kge: dict[str, Any] = {}
    uniform = None
    with torch_threads(config.gnn.threads):
        for variant, names in variants.items():
            start = time.perf_counter()
            trained = train_fusion(variant, graph.entities, splits, known,
                                   {m: modalities.features[m] for m in names}, config.gnn, seed, progress)
            result, ranks = held_out_metrics(trained, splits, graph.entities, known)
            key = gnn_key(variant)
            metrics[key], per_relation[key] = result, _per_relation(ranks, graph)
            best_epoch[key], seconds[key] = trained.best_epoch, time.perf_counter() - start
            history += [{"model": key, **row} for row in trained.history]
            trained_gnn[variant] = trained
            uniform = uniform or uniform_expectation(ranks)
        for model in config.kge_models:
            start = time.perf_counter()
            trained = train_kge(model, splits, graph.entities, known, kge_config(config, dataset, model, hierarchy),
                                seed, progress=progress)
            ranks = filtered_ranks(trained.model, splits["test"], graph.entities, known)
            metrics[model], per_relation[model] = summarise(ranks), _per_relation(ranks, graph)
            best_epoch[model], seconds[model] = trained.best_epoch, time.perf_counter() - start
            history += [{**row, "model": model} for row in trained.history]
            trained_kge[model] = trained
            uniform = uniform or uniform_expectation(ranks)
    if uniform is None:
        raise ValueError("kg_multimodal: no variant and no KGE model to train (variants and kge_models are empty "
                         "or every variant was skipped)")
    metrics[RANDOM] = uniform

    all_triples = Triples(*(np.concatenate([getattr(s, part) for s in splits.values()])
                            for part in ("head", "relation", "tail")))
    if config.output == "gnn":
        variant = aliases.get(config.output_variant, config.output_variant)
        if variant not in trained_gnn:
            raise ValueError(f"kg_multimodal.output_variant: {config.output_variant!r} was not trained on {dataset} "
                             f"({skipped.get(config.output_variant, 'not listed in kg_multimodal.variants')})")
        output = gnn_key(variant)
        vectors = fused_item_vectors(trained_gnn[variant], all_triples, graph.entities)
        layout = {"model": output, "conv": config.gnn.conv, "modalities": list(variants[variant]),
                  "gnn_columns": [0, int(vectors.shape[1])]}
        state = trained_gnn[variant].model.state_dict()
    else:
        output = config.output
        placed = placed_items(splits["train"].head, splits["train"].tail, graph.entities)
        numeric = graph.numeric.values if graph.numeric.columns else None
        vectors = item_vectors(entity_vectors(trained_kge[output].model), graph.entities, placed,
                               item_attributes(graph, catalog), numeric)
        width = vectors.shape[1] - (numeric.shape[1] if numeric is not None else 0)
        layout = {"model": output, "kge_columns": [0, int(width)],
                  "numeric_columns": {c: width + j for j, c in enumerate(graph.numeric.columns)},
                  "cold_start_items": [graph.entities.ids[ITEM][i] for i in np.flatnonzero(~placed)]}
        state = trained_kge[output].model.state_dict()

    probe = probes(ordered, modalities, root, config.probe_folds, seed)
    return MultimodalRun(dataset=dataset, graph=graph, splits=splits, modalities=modalities, variants=variants,
                         skipped=skipped, aliases=aliases, metrics=metrics, per_relation=per_relation,
                         best_epoch=best_epoch, seconds=seconds, history=history, uniform=uniform, output=output,
                         vectors=vectors, layout=layout, probe=probe, state=state)
