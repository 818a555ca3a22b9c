"""`liveslate select` and `liveslate rollback` against a real MLflow SQLite registry.

Tiny policies (a saved UniformPolicy each) are registered as versions of the model the
way the train stage does it; the evaluation the stage reads is written by hand, so each
step states its expected outcome directly. One walk through the selection table:
initial → second run changes nothing → lower bound inside the margin → guards refuse →
clear winner promoted → rollback restores the previous version → the rolled-back version
is not promoted again.
"""

from __future__ import annotations

import json
import math

import pytest
import yaml
from typer.testing import CliRunner

from liveslate.cli import app
from liveslate.evaluation.registry_ops import PREVIOUS_TAG, ROLLED_BACK_TAG, Registry
from liveslate.policies.mlflow_registry import register_policy_directory
from liveslate.policies.reference import UniformPolicy

MODEL = "liveslate-policy-test"
LOGGING = {"random@obd": {"value": 0.005, "ci_low": 0.004, "ci_high": 0.006, "n": 6000}}


@pytest.fixture(scope="module")
def tracking_uri(tmp_path_factory):
    """One SQLite store for the module (creating one runs MLflow's migrations); each test its own model name."""
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"


@pytest.fixture
def project(tmp_path, monkeypatch, tracking_uri, request):
    monkeypatch.chdir(tmp_path)  # MLflow puts run artefacts under ./mlruns
    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking_uri)
    model = f"{MODEL}-{request.node.name}"
    params = {"seed": 3, "tracking": {"experiment": "select-test", "registered_model": model},
              "select": {"candidates": ["deepfm", "deepfm_nokg", "slateq", "sac"], "margin": 0.001, "min_ess": 50.0}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    return tmp_path, Registry(tracking_uri, model)


def register(root, registry: Registry, policy: str) -> str:
    """Save a tiny policy and register it as a new version tagged ``policy`` (as train does)."""
    import mlflow

    directory = root / "models" / policy
    UniformPolicy([f"r0/{i}" for i in range(4)], name=policy).save(directory)
    mlflow.set_tracking_uri(registry.tracking_uri)
    mlflow.set_experiment("select-test")
    with mlflow.start_run(run_name=f"train_{policy}"):
        version = register_policy_directory(mlflow, directory, registry.model, {"policy": policy})
    return str(version.version)


def row(value: float, low: float, high: float, ess: float = 500.0) -> dict:
    return {"mrr": 0.2, "mrr_ci": [0.1, 0.3], "hit_at_1": 0.05, "hit_at_1_ci": [0.0, 0.1], "ndcg_at_3": 0.2,
            "ndcg_at_3_ci": [0.1, 0.3], "ope": {"dr": {"value": value, "ci_low": low, "ci_high": high, "ess": ess}}}


def write_evaluation(root, rows: dict, versions: dict, champion: dict | None = None) -> None:
    (root / "metrics").mkdir(exist_ok=True)
    (root / "artifacts" / "evaluation").mkdir(parents=True, exist_ok=True)
    # json.dumps writes NaN as the bare token NaN, which json.loads reads back: the guard must catch it.
    (root / "metrics" / "evaluation.json").write_text(json.dumps({"policies": rows, "logging": LOGGING,
                                                                  "counts": {"rows": 12000}}))
    (root / "artifacts" / "evaluation" / "details.json").write_text(json.dumps({"versions": versions,
                                                                               "champion": champion}))


def select(root) -> dict:
    result = CliRunner().invoke(app, ["select", "--params", str(root / "params.yaml")])
    assert result.exit_code == 0, result.output
    return json.loads((root / "metrics" / "selection.json").read_text())


def test_selection_table_against_a_real_registry(project):
    root, registry = project
    v1 = register(root, registry, "deepfm")

    # 1. No version holds the alias: the best guarded candidate becomes the first champion.
    write_evaluation(root, {"deepfm": row(0.010, 0.008, 0.012)}, {"deepfm": v1})
    first = select(root)
    assert (first["champion"], first["registered_version"], first["previous"], first["promoted"]) == \
        ("deepfm", v1, None, True)
    assert first["reason"].startswith("initial")
    assert registry.champion().version == v1 and registry.champion().previous is None

    # 2. Same inputs again: nothing moves, nothing is registered.
    versions_before = len(registry.client.search_model_versions(f"name = '{registry.model}'"))
    again = select(root)
    assert (again["champion"], again["registered_version"], again["previous"], again["promoted"]) == \
        ("deepfm", v1, v1, False)
    assert len(registry.client.search_model_versions(f"name = '{registry.model}'")) == versions_before
    assert registry.champion().version == v1

    # 3. A challenger above the champion but inside the margin (bar 0.010 + 0.001) stays out.
    v2 = register(root, registry, "deepfm_nokg")
    champion_row = {"version": v1, "policy": "deepfm"}
    write_evaluation(root, {"deepfm": row(0.010, 0.008, 0.012), "champion": row(0.010, 0.008, 0.012),
                            "deepfm_nokg": row(0.013, 0.0108, 0.016)}, {"deepfm": v1, "deepfm_nokg": v2},
                     champion_row)
    inside = select(root)
    assert not inside["promoted"] and inside["registered_version"] == v1 and inside["reason"].startswith("not promoted")
    assert registry.champion().version == v1

    # 4. Guards: non-finite, out of range, tiny ESS — each would win on its lower bound, each is refused.
    v3, v4 = register(root, registry, "slateq"), register(root, registry, "sac")
    write_evaluation(root, {"deepfm": row(0.010, 0.008, 0.012), "champion": row(0.010, 0.008, 0.012),
                            "deepfm_nokg": row(math.nan, 0.03, 0.05), "slateq": row(1.4, 1.2, 1.6),
                            "sac": row(0.05, 0.04, 0.06, ess=4.0)},
                     {"deepfm": v1, "deepfm_nokg": v2, "slateq": v3, "sac": v4}, champion_row)
    guarded = select(root)
    assert not guarded["promoted"] and registry.champion().version == v1
    reasons = {name: c["reason"] for name, c in guarded["candidates"].items()}
    assert "non-finite dr estimate" in reasons["deepfm_nokg"]
    assert "outside the reward range" in reasons["slateq"]
    assert "effective sample size 4.0 below select.min_ess 50" in reasons["sac"]

    # 5. A clear winner: lower bound 0.015 > max(0.010 champion, 0.005 logging) + 0.001.
    write_evaluation(root, {"deepfm": row(0.010, 0.008, 0.012), "champion": row(0.010, 0.008, 0.012),
                            "sac": row(0.020, 0.015, 0.025)}, {"deepfm": v1, "sac": v4}, champion_row)
    winner = select(root)
    assert (winner["champion"], winner["registered_version"], winner["previous"], winner["promoted"]) == \
        ("sac", v4, v1, True)
    assert registry.champion().version == v4 and registry.champion().tags[PREVIOUS_TAG] == v1

    # 6. Rollback moves the alias back to v1 and says so; v4 is marked rolled back.
    result = CliRunner().invoke(app, ["rollback", "--params", str(root / "params.yaml")])
    assert result.exit_code == 0, result.output
    assert f"from v{v4} (sac) to v{v1} (deepfm)" in result.output
    assert registry.champion().version == v1
    assert registry.version(v4).tags[ROLLED_BACK_TAG] == "true"

    # 7. The next select on the same evaluation does not undo the rollback.
    after = select(root)
    assert not after["promoted"] and after["registered_version"] == v1
    assert "rolled back" in after["candidates"]["sac"]["reason"]

    # 8. v1 was the first champion: nothing further to roll back to, and the command says why.
    result = CliRunner().invoke(app, ["rollback", "--params", str(root / "params.yaml")])
    assert result.exit_code == 1 and "first champion" in result.output and registry.champion().version == v1


def test_select_without_an_evaluation_names_the_missing_file(project):
    root, _ = project
    result = CliRunner().invoke(app, ["select", "--params", str(root / "params.yaml")])
    assert result.exit_code == 1 and "metrics/evaluation.json: not found" in result.output


def test_rollback_without_a_champion_says_so(project):
    root, _ = project
    result = CliRunner().invoke(app, ["rollback", "--params", str(root / "params.yaml")])
    assert result.exit_code == 1 and "no version holds the alias 'champion'" in result.output
