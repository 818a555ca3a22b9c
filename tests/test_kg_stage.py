"""`liveslate kg` through the CLI on the real OBD rows of tests/data/obd (campaign `men`, 34 items).

The project is a temporary directory holding the repository's params.yaml with a small kg
profile, and the validated catalogue and time split that ingest → validate → split would
write for those rows (made here with the same library functions). MLflow tracks into a
SQLite file of the temporary directory.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from typer.testing import CliRunner

from liveslate.cli import app
from liveslate.config import SplitConfig
from liveslate.data.obd import ingest_obd
from liveslate.data.split import split_by_time
from liveslate.kg.graph import load_graph
from liveslate.policies.item_vectors import load_item_vectors
from liveslate.schema import item_index

REPO_PARAMS = Path(__file__).resolve().parents[1] / "params.yaml"
OBD = Path(__file__).parent / "data" / "obd"
MODELS = ["transe", "distmult", "complex", "rotate"]
SMALL_KG = {"dim": 8, "epochs": 30, "eval_every": 10}


def _project(root: Path, **kg) -> Path:
    """A project directory with validated catalogue + splits of the test rows and a params file."""
    params = yaml.safe_load(REPO_PARAMS.read_text())
    params["kg"].update(SMALL_KG | kg)
    root.mkdir(parents=True, exist_ok=True)
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    logs, catalog = ingest_obd(OBD, ("men",), ("random", "bts"))
    (root / "artifacts" / "validated").mkdir(parents=True)
    (root / "artifacts" / "splits").mkdir(parents=True)
    catalog.to_parquet(root / "artifacts" / "validated" / "catalog.parquet", index=False)
    for name, part in split_by_time(logs, SplitConfig()).items():
        part.to_parquet(root / "artifacts" / "splits" / f"{name}.parquet", index=False)
    return root / "params.yaml"


def _run(params: Path) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["kg", "--params", str(params), "--no-progress"])
    return result.exit_code, result.output


@pytest.fixture(scope="module")
def tracking(tmp_path_factory):
    home = tmp_path_factory.mktemp("mlflow")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{home / 'mlflow.db'}")
        patch.chdir(home)  # MLflow's default artefact root is ./mlruns
        yield f"sqlite:///{home / 'mlflow.db'}"


@pytest.fixture(scope="module")
def stage(tmp_path_factory, tracking):
    root = tmp_path_factory.mktemp("project")
    code, output = _run(_project(root))
    assert code == 0, output
    return root, output


def test_item_vectors_follow_the_output_contract(stage):
    root, _ = stage
    catalog = pd.read_parquet(root / "artifacts" / "validated" / "catalog.parquet")
    with np.load(root / "artifacts" / "kg" / "item_vectors.npz", allow_pickle=False) as archive:
        vectors, item_ids = archive["vectors"], archive["item_ids"]
    assert item_ids.dtype.kind == "U"
    assert item_ids.tolist() == list(item_index(catalog))
    # RotatE: real and imaginary parts of size 8, then the one standardised num_* column.
    assert vectors.dtype == np.float32 and vectors.shape == (34, 2 * 8 + 1)
    assert np.isfinite(vectors).all()
    # The training stages' reader accepts it, aligned by id even in another order.
    shuffled = item_index(catalog)[::-1]
    np.testing.assert_array_equal(load_item_vectors(root / "artifacts" / "kg" / "item_vectors.npz", shuffled),
                                  vectors[::-1])
    # The numeric column is num_item_feature_0 standardised over the catalogue.
    raw = catalog.set_index("item_id").loc[item_ids.tolist(), "num_item_feature_0"].to_numpy()
    np.testing.assert_allclose(vectors[:, -1], (raw - raw.mean()) / raw.std(), rtol=1e-5, atol=1e-6)


def test_metrics_hold_every_model_and_the_random_baseline(stage):
    root, output = stage
    metrics = json.loads((root / "metrics" / "kg.json").read_text())
    assert list(metrics) == ["obd"]
    assert sorted(metrics["obd"]) == sorted(MODELS + ["random"])
    for name, values in metrics["obd"].items():
        assert set(values) == {"mrr", "hits_at_1", "hits_at_10"}, name
        assert 0.0 <= values["hits_at_1"] <= values["mrr"] <= 1.0 and values["mrr"] > 0, (name, values)
        assert values["hits_at_1"] <= values["hits_at_10"] <= 1.0, (name, values)
    assert "filtered test MRR" in output


def test_graph_entities_and_summary_agree(stage):
    root, _ = stage
    out = root / "artifacts" / "kg"
    entities = json.loads((out / "entities.json").read_text())
    types = {entry["name"]: entry for entry in entities["node_types"]}
    assert [entry["name"] for entry in entities["node_types"]][:2] == ["item", "room"]
    assert types["item"]["offset"] == 0 and types["item"]["count"] == 34
    assert types["room"]["ids"] == ["men"]
    assert entities["vector_layout"] == {"model": "rotate", "kge_columns": [0, 16],
                                         "numeric_columns": {"num_item_feature_0": 16}, "cold_start_items": []}
    graph = load_graph(out / "graph.pt")
    assert graph["item"].num_nodes == 34
    assert {"|".join(e) for e in graph.edge_types} == {f"{r['source']}|{r['name']}|{r['target']}"
                                                     for r in entities["relations"]}
    summary = json.loads((out / "summary.json").read_text())
    # Behavioural edges come from the training split's clicks only.
    train = pd.read_parquet(root / "artifacts" / "splits" / "train.parquet")
    assert summary["graph"]["co_click"]["clicks"] == int(train["click"].sum())
    assert summary["graph"]["edges"]["cat_item_feature_2|child_of|cat_item_feature_3"] == types[
        "cat_item_feature_2"]["count"]
    model = torch.load(out / "model.pt", weights_only=True)
    assert model["node_emb.weight"].shape == (entities["num_entities"], 8)


def test_plots_and_mlflow_run(stage, tracking):
    import mlflow

    root, _ = stage
    assert (root / "plots" / "kg_items_pca.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    curves = pd.read_csv(root / "plots" / "kg_training.csv")
    assert len(curves) == 4 * SMALL_KG["epochs"] and set(curves["model"]) == set(MODELS)
    assert curves["valid_mrr"].notna().sum() == 4 * 3
    metrics = json.loads((root / "metrics" / "kg.json").read_text())["obd"]
    client = mlflow.MlflowClient(tracking_uri=tracking)
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()],
                              filter_string="tags.`liveslate.stage` = 'kg'")
    assert len(runs) == 1
    assert runs[0].data.metrics["rotate_mrr"] == pytest.approx(metrics["rotate"]["mrr"])
    assert runs[0].data.metrics["random_hits_at_10"] == pytest.approx(metrics["random"]["hits_at_10"])
    assert runs[0].data.params["kg.model"] == "rotate"
    artifacts = {a.path for a in client.list_artifacts(runs[0].info.run_id)}
    assert "kg_items_pca.png" in artifacts


def test_same_seed_same_vectors(stage, tmp_path):
    root, _ = stage
    code, output = _run(_project(tmp_path / "again"))
    assert code == 0, output
    with np.load(root / "artifacts" / "kg" / "item_vectors.npz") as first, \
            np.load(tmp_path / "again" / "artifacts" / "kg" / "item_vectors.npz") as second:
        np.testing.assert_array_equal(first["vectors"], second["vectors"])


@pytest.mark.parametrize(("kg", "code", "message"), [
    ({"model": "rotate", "models": ["transe"]}, 2, "kg.model: expected one of kg.models"),
    ({"plot_color": "cat_size"}, 1, "kg.plot_color: column 'cat_size' is not in"),
    ({"hierarchy": [{"parent": "cat_item_feature_2", "child": "cat_item_feature_3"}]}, 1,
     "kg.hierarchy[0]: cat_item_feature_3 value"),
    ({"co_click_window": "week"}, 2, "kg.co_click_window: expected one of session, room_day, none"),
])
def test_bad_params_are_named(tmp_path, tracking, kg, code, message):
    exit_code, output = _run(_project(tmp_path, **kg))
    assert exit_code == code
    assert message in output


def test_missing_split_is_reported(tmp_path, tracking):
    params = _project(tmp_path)
    (tmp_path / "artifacts" / "splits" / "train.parquet").unlink()
    exit_code, output = _run(params)
    assert exit_code == 1
    assert "train.parquet: not found; run `liveslate split` first" in output
