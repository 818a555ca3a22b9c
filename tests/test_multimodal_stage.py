"""`liveslate kg-multimodal` on small real samples of both catalogues, with a tiny params profile."""

from __future__ import annotations

import shutil
from collections import defaultdict
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from liveslate.cli import app
from liveslate.data.multimodal_fetch import CLOTHING_FILE, FashionPhotos, write_fashion_subset
from liveslate.io import read_json
from liveslate.schema import item_index

DATA = Path(__file__).parent / "data" / "multimodal"
PER_CLASS = 4
PARAMS = f"""seed: 7
kg_multimodal:
  kge_models: [distmult]
  probe_folds: 2
  fashion_mnist: {{directory: data/fashion_mnist, per_class: {PER_CLASS}}}
  clothing_text: {{reviews_in_text: 1}}
  text: {{max_seq_length: 64}}
  image: {{size: 32, batch_size: 16}}
  gnn: {{dim: 16, epochs: 6, eval_every: 3}}
  kge: {{dim: 8, epochs: 6, eval_every: 3}}
"""


def _project(root: Path) -> Path:
    clothing = root / "data" / "clothing_text"
    clothing.mkdir(parents=True)
    shutil.copy(DATA / "clothing_reviews_sample.parquet", clothing / CLOTHING_FILE)
    sample = np.load(DATA / "fashion_mnist_sample.npz")
    rows = np.concatenate([np.flatnonzero(sample["labels"] == c)[:PER_CLASS] for c in range(10)])
    source, index = zip(*(item_id.split("/")[1].split("-") for item_id in sample["item_ids"][rows]))
    photos = FashionPhotos(sample["images"][rows], sample["labels"][rows], np.array(source, dtype=object),
                           np.array(index, dtype=int))
    write_fashion_subset(photos, np.arange(rows.size), root / "data" / "fashion_mnist",
                         {"per_class": PER_CLASS, "seed": 7})
    params = root / "params.yaml"
    params.write_text(PARAMS)
    return params


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The stage run twice on one project: the second run finds every encoder output cached."""
    root = tmp_path_factory.mktemp("multimodal")
    params = _project(root)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{root / 'mlflow.db'}")
        results = []
        for _ in range(2):
            result = CliRunner().invoke(app, ["kg-multimodal", "--params", str(params), "--no-progress"])
            assert result.exit_code == 0, result.output + repr(result.exception)
            results.append((read_json(root / "metrics" / "kg_multimodal.json"),
                            {d: read_json(root / "artifacts" / "kg_multimodal" / d / "summary.json")
                             for d in ("clothing_text", "fashion_mnist")}))
    return root, results


def test_metrics_hold_the_ablation_of_each_catalogue(runs):
    _, results = runs
    metrics, summaries = results[0]
    assert set(metrics["clothing_text"]) == {"gnn_structure", "gnn_text", "gnn_numeric", "gnn_all", "distmult", "random"}
    # Photos only: no text or numeric variant, and "all" is the image variant (not trained twice).
    assert set(metrics["fashion_mnist"]) == {"gnn_structure", "gnn_image", "distmult", "random"}
    assert summaries["fashion_mnist"]["aliased_variants"] == {"all": "image"}
    assert set(summaries["fashion_mnist"]["skipped_variants"]) == {"text", "numeric"}
    assert summaries["fashion_mnist"]["output"] == "gnn_image"
    assert summaries["clothing_text"]["missing_modalities"] == {"image": "the catalogue has no item image"}
    for per_model in metrics.values():
        for values in per_model.values():
            assert set(values) == {"mrr", "hits_at_1", "hits_at_10"}
            assert 0 <= values["hits_at_1"] <= values["mrr"] <= 1 and values["hits_at_1"] <= values["hits_at_10"] <= 1


def test_random_entry_is_the_closed_form_of_the_held_out_queries(runs):
    """Recomputed from the saved triples: each query, asked for its tail and for its head, has c
    candidates of the answer's type once the other known answers are removed; a uniform ranking
    scores E[1/rank] = H_c / c."""
    root, results = runs
    metrics, _ = results[0]
    for dataset in ("clothing_text", "fashion_mnist"):
        out = root / "artifacts" / "kg_multimodal" / dataset
        entities = read_json(out / "entities.json")
        triples = np.load(out / "triples.npz")
        type_of, size = {}, {}
        for node_type in entities["node_types"]:
            size[node_type["name"]] = node_type["count"]
            for local in range(node_type["count"]):
                type_of[node_type["offset"] + local] = node_type["name"]
        tails, heads = defaultdict(set), defaultdict(set)
        for split in ("train", "valid", "test"):
            for h, r, t in zip(*(triples[f"{split}_{p}"] for p in ("head", "relation", "tail"))):
                tails[(h, r)].add(t)
                heads[(r, t)].add(h)
        expected = []
        for h, r, t in zip(*(triples[f"test_{p}"] for p in ("head", "relation", "tail"))):
            for count in (size[type_of[int(t)]] - len(tails[(h, r)]) + 1, size[type_of[int(h)]] - len(heads[(r, t)]) + 1):
                expected.append(sum(1 / k for k in range(1, count + 1)) / count)
        assert metrics[dataset]["random"]["mrr"] == pytest.approx(np.mean(expected))


def test_item_vectors_follow_the_stable_item_index(runs):
    root, _ = runs
    for dataset, width in (("clothing_text", 16), ("fashion_mnist", 16)):
        out = root / "artifacts" / "kg_multimodal" / dataset
        catalog = pd.read_parquet(out / "catalog.parquet")
        saved = np.load(out / "item_vectors.npz")
        assert saved["item_ids"].tolist() == list(item_index(catalog)) == catalog["item_id"].tolist()
        assert saved["vectors"].shape == (len(catalog), width) and np.isfinite(saved["vectors"]).all()
    fashion = pd.read_parquet(root / "artifacts" / "kg_multimodal" / "fashion_mnist" / "catalog.parquet")
    assert len(fashion) == 10 * PER_CLASS and fashion["image"].map(lambda p: (root / p).is_file()).all()


def test_probes_report_raw_pixels_beside_the_photo_features(runs):
    root, _ = runs
    probe = read_json(root / "metrics" / "kg_multimodal_probe.json")
    assert set(probe["fashion_mnist"]) == {"target", "image", "raw_pixels"}
    assert set(probe["clothing_text"]) >= {"target", "text", "numeric"}
    assert probe["fashion_mnist"]["image"]["items"] == 10 * PER_CLASS
    assert probe["fashion_mnist"]["image"]["uniform"] == pytest.approx(0.1)


def test_a_rerun_encodes_nothing_and_repeats_every_number(runs):
    _, results = runs
    (first_metrics, first), (second_metrics, second) = results
    assert first["fashion_mnist"]["encoder_cache"]["image"] == {"hits": 0, "misses": 10 * PER_CLASS}
    for dataset, encoder in (("clothing_text", "text"), ("fashion_mnist", "image")):
        cache = second[dataset]["encoder_cache"][encoder]
        assert cache["misses"] == 0 and cache["hits"] == first[dataset]["encoder_cache"][encoder]["misses"]
    assert second_metrics == first_metrics


def test_missing_source_data_names_the_set_up_step(tmp_path):
    params = _project(tmp_path)
    params.write_text(PARAMS + "  datasets: [fashion_mnist]\n")
    shutil.rmtree(tmp_path / "data" / "fashion_mnist")
    result = CliRunner().invoke(app, ["kg-multimodal", "--params", str(params), "--no-progress"])
    assert result.exit_code == 1
    assert "kg_multimodal fashion_mnist" in result.output and "run `liveslate fetch-data`" in result.output
