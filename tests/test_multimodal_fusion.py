"""Fusion GNN: modality features must carry what structure cannot, without leaking held-out edges."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from liveslate.config import FusionConfig, KgConfig, KgMultimodalConfig
from liveslate.kg.fusion_ablation import resolve_variants, torch_threads
from liveslate.kg.fusion_train import fused_item_vectors, held_out_metrics, relation_edges, train_fusion
from liveslate.kg.graph import build_graph
from liveslate.kg.modalities import item_modalities, standardise_rows
from liveslate.kg.ranking import KnownAnswers, summarise, uniform_expectation
from liveslate.kg.triples import Triples, graph_triples, split_triples

N_ITEMS, N_CLASSES = 120, 4


@pytest.fixture(scope="module")
def world():
    """Items in one room with a class each; a 16-d "photo" feature = class centre + noise.

    The room says nothing about the class, so once an item's class edge is held out,
    structure alone can only guess (expected MRR of the closed-form uniform ranking), while
    the feature identifies the class.
    """
    rng = np.random.default_rng(3)
    classes = np.repeat(np.arange(N_CLASSES), N_ITEMS // N_CLASSES)
    centres = rng.normal(size=(N_CLASSES, 16)) * 3.0
    catalog = pd.DataFrame({
        "item_id": [f"i{i:03d}" for i in range(N_ITEMS)], "room_id": "room",
        "first_seen": pd.Timestamp("2020-01-01"), "cat_class": [f"c{c}" for c in classes]})
    graph = build_graph(catalog, pd.DataFrame({"click": pd.Series(dtype="int8")}), KgConfig(co_click_window="none"))
    features = centres[classes] + rng.normal(size=(N_ITEMS, 16))
    splits = split_triples(graph_triples(graph.data, graph.entities), 0.15, 0.25, seed=0)
    image = standardise_rows(features.astype(np.float32), np.ones(N_ITEMS, dtype=bool), "image")
    return graph, splits, KnownAnswers(*splits.values()), image


def _class_tail_mrr(trained, graph, splits, known):
    _, ranks = held_out_metrics(trained, splits, graph.entities, known)
    relation = graph.entities.relation_id(("item", "has_cat_class", "cat_class"))
    mask = (ranks.relation == relation) & (ranks.direction == 0)
    return summarise(ranks, mask).mrr, uniform_expectation(
        type(ranks)(*(getattr(ranks, f)[mask] for f in ("greater", "tied", "candidates", "relation", "direction")))).mrr


@pytest.mark.parametrize("conv", ["sage", "hgt"])
def test_image_features_recover_held_out_classes_that_structure_cannot(world, conv):
    graph, splits, known, image = world
    config = FusionConfig(conv=conv, dim=32, epochs=60, eval_every=10, lr=0.01)
    with torch_threads(1):
        structure = train_fusion("structure", graph.entities, splits, known, {}, config, seed=0, progress=False)
        fused = train_fusion("image", graph.entities, splits, known, {"image": image}, config, seed=0, progress=False)
    structure_mrr, uniform_mrr = _class_tail_mrr(structure, graph, splits, known)
    fused_mrr, _ = _class_tail_mrr(fused, graph, splits, known)
    print(f"\n{conv}: held-out item→class MRR structure {structure_mrr:.3f}, +image {fused_mrr:.3f}, "
          f"uniform {uniform_mrr:.3f}")
    # 4 candidate classes: a uniform ranking scores H_4 / 4 = 0.521 (the balanced classes leave
    # structure nothing better); a model reading the held-out edge itself would score 1.
    assert uniform_mrr == pytest.approx((1 + 1 / 2 + 1 / 3 + 1 / 4) / 4)
    assert structure_mrr < 0.75
    assert fused_mrr > 0.9


def test_training_is_deterministic_and_vectors_cover_every_item(world):
    graph, splits, known, image = world
    config = FusionConfig(dim=16, epochs=4, eval_every=2)
    with torch_threads(1):
        runs = [train_fusion("image", graph.entities, splits, known, {"image": image}, config, seed=5, progress=False)
                for _ in range(2)]
    assert [r["loss"] for r in runs[0].history] == [r["loss"] for r in runs[1].history]
    everything = Triples(*(np.concatenate([getattr(s, p) for s in splits.values()]) for p in ("head", "relation", "tail")))
    vectors = fused_item_vectors(runs[0], everything, graph.entities)
    assert vectors.shape == (N_ITEMS, 16) and np.isfinite(vectors).all()


def test_relation_edges_hold_exactly_the_given_triples(world):
    graph, splits, _, _ = world
    edges = relation_edges(splits["train"], graph.entities)
    assert set(edges) == set(graph.entities.relations)
    assert sum(e.size(1) for e in edges.values()) == len(splits["train"])
    relation = graph.entities.relation_id(("item", "has_cat_class", "cat_class"))
    test = splits["test"]
    held = {(int(h), int(t)) for h, r, t in zip(test.head, test.relation, test.tail) if r == relation}
    offset = graph.entities.offset("cat_class")
    passed = {(int(h), int(t) + offset) for h, t in edges[("item", "has_cat_class", "cat_class")].T.tolist()}
    assert held and not held & passed


def test_variants_skip_missing_modalities_and_alias_duplicates():
    run, skipped, aliases = resolve_variants(("structure", "text", "image", "numeric", "all"), ("image",),
                                             {"text": "no text", "numeric": "no num_*"})
    assert run == {"structure": (), "image": ("image",)}
    assert skipped == {"text": "no text", "numeric": "no num_*"}
    assert aliases == {"all": "image"}
    run, _, aliases = resolve_variants(("all", "text"), ("text", "numeric"), {})
    assert run == {"all": ("text", "numeric"), "text": ("text",)} and aliases == {}


def test_missing_modalities_are_skipped_not_filled(tmp_path):
    ordered = pd.DataFrame({"item_id": ["a", "b", "c"], "room_id": "r", "num_price": [1.0, None, 3.0]})
    modalities = item_modalities(ordered, tmp_path, KgMultimodalConfig(), cache_dir=tmp_path)
    assert set(modalities.features) == {"numeric"}
    assert modalities.missing == {"text": "the catalogue has no item text", "image": "the catalogue has no item image"}
    numeric = modalities.features["numeric"]
    assert numeric.present.tolist() == [True, False, True]
    np.testing.assert_allclose(numeric.values[:, 0], [-1.0, 0.0, 1.0])


@pytest.mark.parametrize("value, message", [("cheap", "expected a number, got 'cheap'"),
                                            (float("inf"), "a num_\\* value is not finite")])
def test_a_bad_numeric_attribute_names_its_row(tmp_path, value, message):
    ordered = pd.DataFrame({"item_id": ["a", "b"], "room_id": "r", "num_price": pd.Series([1.0, value], dtype=object)})
    with pytest.raises(ValueError, match=rf"row 1 \(item 'b'\).*{message}"):
        item_modalities(ordered, tmp_path, KgMultimodalConfig(), cache_dir=None)


def test_items_without_text_get_no_text_input(tmp_path, monkeypatch):
    from liveslate.kg.encoders import text

    seen: list[list[str]] = []

    def encode(self, texts):
        seen.append(list(texts))
        return np.eye(len(texts), text.TEXT_DIM, dtype=np.float32)

    monkeypatch.setattr(text.TextEncoder, "encode", encode)
    ordered = pd.DataFrame({"item_id": ["a", "b", "c"], "room_id": "r", "text": ["linen shirt", None, "  "]})
    modalities = item_modalities(ordered, tmp_path, KgMultimodalConfig(), cache_dir=None)
    assert seen == [["linen shirt"]]
    assert modalities.features["text"].present.tolist() == [True, False, False]
    assert not modalities.features["text"].values[1:].any()


def test_fusion_model_refuses_an_undeclared_modality(world):
    from liveslate.kg.fusion import FusionModel

    graph, _, _, image = world
    model = FusionModel(graph.entities, {}, FusionConfig(dim=8))
    with pytest.raises(ValueError, match=r"modality \['image'\] was not declared"):
        model.inputs({"image": (torch.as_tensor(image.values), torch.as_tensor(image.present))})


def test_params_can_choose_the_kge_baseline_as_the_output(tmp_path):
    """kg_multimodal.output names whose vectors are written: here the DistMult baseline, laid out as the
    kg stage lays it out (KGE columns, then the standardised num_* columns)."""
    import dataclasses

    from liveslate.config import KgeBaselineConfig
    from liveslate.kg.fusion_ablation import run_multimodal

    rng = np.random.default_rng(0)
    catalog = pd.DataFrame({
        "item_id": [f"i{i:02d}" for i in range(40)], "room_id": [f"r{i % 2}" for i in range(40)],
        "first_seen": pd.Timestamp("2020-01-01"), "cat_class": [f"c{i % 4}" for i in range(40)],
        "num_price": rng.normal(size=40)})
    config = dataclasses.replace(
        KgMultimodalConfig(), variants=("structure",), output="distmult", kge_models=("distmult",),
        gnn=FusionConfig(dim=8, epochs=2, eval_every=1), kge=KgeBaselineConfig(dim=6, epochs=2, eval_every=1))
    run = run_multimodal("toy", catalog, (), tmp_path, config, seed=0, cache_dir=None, progress=False)
    assert set(run.metrics) == {"gnn_structure", "distmult", "random"}
    assert run.output == "distmult" and run.layout["model"] == "distmult"
    assert run.vectors.shape == (40, 6 + 1) and run.layout["numeric_columns"] == {"num_price": 6}
    assert run.modalities.missing["text"] == "the catalogue has no item text"
