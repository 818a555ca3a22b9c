"""The daily DAG end to end: two `dag.test()` runs for one fixture day of served logs.

The fixture project is a git repository holding a copy of the pipeline (dvc.yaml, the source
files its stages name, params.yaml with tiny budgets), a real sub-sample of the Open Bandit
`all` campaign in data/ (recorded by `dvc add data` and committed), a local DVC remote, and a
spool day written by the service's own code: a tiny DeepFM trained on the same OBD rows is
packaged as a Bento (in a separate registry, so the project starts without a champion) and
serves simulated viewers through ``Recommender`` with a clock set inside that day.

Run 1 (no champion yet): collect copies the day into data/served/, `dvc repro` runs every
stage, select names the first champion (reason "initial"), deploy starts a real
`bentoml serve` of the new Bento on 127.0.0.1 and publish pushes the data and commits the
records on the publish branch. Run 2, for the same interval: the same data hash, `dvc repro`
re-runs only the always-changed stages, select promotes nothing, deploy is skipped, the
registry still has one version per trained policy, and publish commits nothing new.

The staged server is stopped by the PID recorded in artifacts/deploy/staging.json in a
finalizer, whatever happens.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

import serving_support as support
from test_dag import DAGS, REPO, _airflow_env

pytestmark = pytest.mark.slow

OBD_EVERY = 4  # keep every 4th row of each OBD file: 2,500 rows a file, all seven days, ~10 clicks
N_VIEWERS = 150
CLICK_PROBABILITY = 0.05  # the simulated viewers click each shown item with this probability

# Tiny budgets for every stage, merged into the repository's params.yaml.
TINY = {
    "ingest": {"sources": ["obd", "served"], "obd": {"campaigns": ["all"], "max_rows_per_file": None},
               "served": {"window_days": 7}},
    "kg": {"models": ["transe", "rotate"], "model": "rotate", "dim": 8, "epochs": 4, "eval_every": 2},
    "train": {"patience": 1, "bootstrap_resamples": 100,
              "deepfm": {"embedding_dim": 4, "hidden": [8], "batch_size": 512, "max_epochs": 2},
              "deepfm_nokg": {"embedding_dim": 4, "hidden": [8], "batch_size": 512, "max_epochs": 2},
              "slateq": {"steps": 40, "eval_every": 20, "batch_size": 256},
              "sac": {"steps": 40, "eval_every": 20, "batch_size": 256}},
    "policies": {"bts_mc_samples": 2000},
    "ope": {"bootstrap_resamples": 100, "benchmark": {"resamples": 30}},  # the smallest allowed
    "backtest": {"min_train_days": 5, "train_overrides": {"deepfm_nokg": {"max_epochs": 1},
                                                          "slateq": {"steps": 20, "eval_every": 10},
                                                          "sac": {"steps": 20, "eval_every": 10}}},
    # ~400 random@obd test rows over 80 items: with ε = 0.5 a learned policy's importance weights stay
    # below 41, an effective sample size of ~20, and the ESS guard is scaled down with the data.
    "evaluate": {"exploration": {"mode": "epsilon", "epsilon": 0.5, "temperature": 1.0}},
    "select": {"margin": 0.0, "min_ess": 5.0},
    "deploy": {"port": 0, "readiness_timeout_s": 240.0},
    "serving": {"threads": 1},
}
# The multimodal stage reads data/clothing_text and data/fashion_mnist, which `make test` does not
# fetch (and nothing in the daily loop depends on it), so the fixture's dvc.yaml leaves it out.
DROPPED_STAGES = ("kg_multimodal",)


def deep_merge(base: dict, override: dict) -> dict:
    merged = dict(base)
    for key, value in override.items():
        merged[key] = deep_merge(merged[key], value) if isinstance(value, dict) and isinstance(
            merged.get(key), dict) else value
    return merged


def git(root: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True)
    assert done.returncode == 0, f"git {' '.join(args)}: {done.stderr}"
    return done.stdout.strip()


def dvc(root: Path, *args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "dvc", *args], cwd=root, capture_output=True, text=True)
    assert done.returncode == 0, f"dvc {' '.join(args)}: {done.stdout}\n{done.stderr}"
    return done.stdout


def write_obd_subset(source: Path, target: Path, every: int) -> None:
    """Every ``every``-th row of the `all` campaign's random and bts logs (all seven days), its item
    contexts and the BTS prior, in the layout `liveslate fetch-data` writes."""
    for policy in ("random", "bts"):
        folder = target / policy / "all"
        folder.mkdir(parents=True)
        shutil.copy(source / policy / "all" / "item_context.csv", folder / "item_context.csv")
        rows = pd.read_csv(source / policy / "all" / "all.csv", index_col=0, dtype=str)
        rows.iloc[::every].to_csv(folder / "all.csv")
    shutil.copy(source / "prior_bts.yaml", target / "prior_bts.yaml")


def write_pipeline(root: Path) -> None:
    """The pipeline's definition and code in ``root`` (a git repository with DVC, a local remote)."""
    root.mkdir(parents=True)
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())
    for name in DROPPED_STAGES:
        stages["stages"].pop(name)
    (root / "dvc.yaml").write_text(yaml.safe_dump(stages, sort_keys=False))
    params = deep_merge(yaml.safe_load((REPO / "params.yaml").read_text()), TINY)
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    for name in ("run.yaml", "bentofile.yaml", "requirements.lock", ".gitignore", ".dvcignore"):
        shutil.copy(REPO / name, root / name)
    # dvc.yaml's deps name these files; a copy keeps the fixture's hashes independent of later edits.
    shutil.copytree(REPO / "src" / "liveslate", root / "src" / "liveslate",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    git(root, "init", "--quiet", "--initial-branch=main")
    git(root, "config", "user.name", "liveslate test")
    git(root, "config", "user.email", "test@localhost")
    dvc(root, "init", "--quiet")
    shutil.copy(REPO / ".dvc" / "config", root / ".dvc" / "config")  # remote `local` = <project>/.dvcstore
    write_obd_subset(REPO / "data" / "obd", root / "data" / "obd", OBD_EVERY)
    dvc(root, "add", "data", "--quiet")
    git(root, "add", "--all")
    git(root, "commit", "--quiet", "-m", "fixture: pipeline, tiny params, OBD subset")


def served_day() -> dt.date:
    """A day that closed at least a day ago (its end + the 30-minute attribution window)."""
    return dt.datetime.now(dt.timezone.utc).date() - dt.timedelta(days=2)


class DayClock:
    """The service's clock, walking through ``day`` from 10:00 UTC a few seconds per call."""

    def __init__(self, day: dt.date) -> None:
        self.now = dt.datetime.combine(day, dt.time(10), tzinfo=dt.timezone.utc)

    def __call__(self) -> dt.datetime:
        self.now += dt.timedelta(seconds=7)
        return self.now


def serve_fixture_day(seed_root: Path, project: Path, day: dt.date) -> tuple[int, int]:
    """Write ``<project>/spool/<day>/`` with the service code; returns (impressions, clicks).

    The serving champion: a tiny DeepFM fitted on the project's OBD rows, registered and
    promoted in a registry of its own (``seed_root``), packaged into this process's BentoML
    store. Viewers are contexts of logged OBD rows; each shown item is clicked with
    CLICK_PROBABILITY (seeded)."""
    import bentoml

    from liveslate import schema
    from liveslate.config import DeepFMConfig, IngestConfig, ObdConfig, Params, TrainConfig
    from liveslate.data.ingest import ingest
    from liveslate.policies.base import Exploration
    from liveslate.policies.deepfm_train import train_deepfm
    from liveslate.policies.training import TrainingData, TrainRun
    from liveslate.serving.bento_model import load_bundle
    from liveslate.serving.recommender import Recommender, ServingSettings
    from liveslate.serving.requests import FeedbackRequest, RecommendRequest

    logs, catalog = ingest(IngestConfig(sources=("obd",), obd=ObdConfig(campaigns=("all",))), project / "data",
                           project)
    logs = logs.sort_values("ts", kind="mergesort").reset_index(drop=True)
    cut = int(len(logs) * 0.8)
    index = schema.item_index(catalog)
    config = DeepFMConfig(use_kg=False, embedding_dim=4, hidden=(8,), dropout=0.0, lr=0.01, batch_size=512,
                          max_epochs=1, item_id_field=True)
    data = TrainingData(train=logs.iloc[:cut], valid=logs.iloc[cut:], catalog=catalog, index=index,
                        item_vectors=None, slate_size=3, seed=5)
    run = TrainRun(name="deepfm_nokg", checkpoint_dir=seed_root / "ckpt", progress=False, resume=False)
    policy = train_deepfm(data, Params(train=TrainConfig(deepfm_nokg=config)), run).policy
    policy.save(seed_root / "policy")

    support.write_project(seed_root)
    catalog.to_parquet(seed_root / "artifacts" / "validated" / "catalog.parquet", index=False)
    tracking_uri = f"sqlite:///{seed_root / 'mlflow.db'}"
    support.promote(tracking_uri, support.register(seed_root / "policy", tracking_uri))
    record = support.package(seed_root, tracking_uri).record

    bundle = load_bundle(Path(bentoml.models.get(record["model_tag"]).path))
    settings = ServingSettings(exploration=Exploration("epsilon", epsilon=0.3), max_k=3,
                               attribution_window=dt.timedelta(minutes=30), model_tag=record["model_tag"])
    recommender = Recommender(bundle, project / "spool", settings, clock=DayClock(day))
    rng = np.random.default_rng(2026)
    ctx_columns = [c for c in logs.columns if c.startswith("ctx_")]
    viewers = logs.iloc[rng.choice(len(logs), size=N_VIEWERS, replace=False)][ctx_columns]
    clicks = 0
    for _, viewer in viewers.iterrows():
        response = recommender.recommend(RecommendRequest(room_id="all", context=viewer.astype(str).to_dict(), k=3))
        for entry in response.slate:
            if rng.random() < CLICK_PROBABILITY:
                recommender.feedback(FeedbackRequest(impression_id=response.impression_id, item_id=entry.item_id,
                                                     click=1))
                clicks += 1
    return N_VIEWERS, clicks


# ---------------------------------------------------------------------------------- the two runs
@pytest.fixture(scope="module")
def fixture_project(tmp_path_factory):
    """(project, served day, (impressions, clicks)): the pipeline, the OBD subset and a served spool day."""
    support.bentoml_home(tmp_path_factory)  # the seed Bento lives in this session's store
    base = tmp_path_factory.mktemp("dag_e2e")
    project = base / "project"
    write_pipeline(project)
    (base / "seed").mkdir()
    day = served_day()
    served = serve_fixture_day(base / "seed", project, day)
    return project, day, served


def dag_env(airflow_home: Path, project: Path) -> dict:
    """The DAG's environment: the project, its own MLflow and BentoML stores, no retries. PATH is left
    as it is: the task bodies find `liveslate` and `dvc` beside their own interpreter."""
    env = _airflow_env(airflow_home, project)
    env.update({"MLFLOW_TRACKING_URI": f"sqlite:///{project / 'mlflow.db'}",
                "BENTOML_HOME": str(project / "bentoml_home"), "BENTOML_DO_NOT_TRACK": "true"})
    env.pop("LIVESLATE_TEST_BENTOML_HOME", None)
    return env


def run_day(airflow_home: Path, project: Path, day: dt.date) -> tuple[dict, str, float]:
    """One `dag.test()` for the run that covers ``day``: (task states, log, seconds)."""
    run_after = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), tzinfo=dt.timezone.utc)
    started = time.monotonic()
    done = subprocess.run([sys.executable, str(REPO / "tests" / "dag_runner.py"), run_after.isoformat(), str(DAGS)],
                          cwd=REPO, env=dag_env(airflow_home, project), capture_output=True, text=True, timeout=900)
    log = done.stdout + done.stderr
    lines = [line for line in done.stdout.splitlines() if line.startswith("DAG_RUN_RESULT ")]
    assert lines, log[-4000:]
    return json.loads(lines[-1].removeprefix("DAG_RUN_RESULT ")), log, time.monotonic() - started


def stages_run(log: str) -> list[str]:
    """The DVC stages the retrain task ran, in order (dvc repro's output is kept in the task log)."""
    return re.findall(r"Running stage '([^']+)'", log)


def registry_state(project: Path) -> tuple[list[str], str | None]:
    """(every registered version of the policy model, the version holding the alias `champion`)."""
    from liveslate.evaluation.registry_ops import Registry

    registry = Registry(f"sqlite:///{project / 'mlflow.db'}", "liveslate-policy")
    versions = sorted(str(v.version) for v in registry.client.search_model_versions("name = 'liveslate-policy'"))
    champion = registry.champion()
    return versions, champion.version if champion else None


def read_json(path: Path) -> dict:
    return json.loads(path.read_text())


def stop_staged_servers(project: Path) -> None:
    """Stop every server a deploy recorded (current and previous), by the PID in staging.json."""
    from liveslate.loop.deploy import stop_pid

    record_path = project / "artifacts" / "deploy" / "staging.json"
    record = read_json(record_path) if record_path.exists() else None
    while record:
        if isinstance(record.get("pid"), int):
            stop_pid(record["pid"])
        record = record.get("previous")


def test_two_daily_runs_promote_once_and_deploy_once(fixture_project, tmp_path_factory, request):
    project, day, (impressions, clicks) = fixture_project
    request.addfinalizer(lambda: stop_staged_servers(project))
    airflow_home = tmp_path_factory.mktemp("airflow_e2e")
    migrated = subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"],
                              env=dag_env(airflow_home, project), capture_output=True, text=True, timeout=300)
    assert migrated.returncode == 0, migrated.stderr[-2000:]
    fixture_data = yaml.safe_load((project / "data.dvc").read_text())["outs"][0]["md5"]
    fixture_commit = git(project, "rev-parse", "HEAD")

    # --- run 1: no champion yet, so the best candidate that passes the guards is promoted and deployed
    first, log, seconds_1 = run_day(airflow_home, project, day)
    assert first["state"] == "success", log[-6000:]
    assert first["tasks"] == {"collect": "success", "retrain": "success", "gate": "success",
                              "deploy": "success", "publish": "success"}, log[-6000:]
    stages = yaml.safe_load((project / "dvc.yaml").read_text())["stages"]
    every_stage = {f"{name}@{item}" if "foreach" in stage else name
                   for name, stage in stages.items() for item in stage.get("foreach", [None])}
    assert set(stages_run(log)) == every_stage, log[-6000:]
    served = project / "data" / "served" / day.isoformat()
    assert sorted(p.name.split("-")[0] for p in served.glob("*.jsonl")) == ["feedback", "impressions"]
    assert sum(1 for _ in next(served.glob("impressions-*.jsonl")).open()) == impressions
    data_1 = yaml.safe_load((project / "data.dvc").read_text())["outs"][0]["md5"]
    assert data_1 != fixture_data  # the collected day is part of the new data version
    assert yaml.safe_load((project / "run.yaml").read_text()) == {"run": {"interval_end": day.isoformat()}}
    validation = read_json(project / "metrics" / "validation.json")
    ingested = pd.read_parquet(project / "artifacts" / "interim" / "logs.parquet")
    served_rows = ingested[ingested["policy"].str.startswith("deepfm_nokg@v")]
    assert len(served_rows) == 3 * impressions and int(served_rows["click"].sum()) == clicks, validation

    selection_1 = read_json(project / "metrics" / "selection.json")
    assert selection_1["promoted"] is True and selection_1["previous"] is None, selection_1
    assert selection_1["reason"].startswith("initial"), selection_1
    versions_1, champion_1 = registry_state(project)
    assert versions_1 == ["1", "2", "3", "4"]  # one registered version per trained policy
    assert champion_1 == selection_1["registered_version"]

    bento = read_json(project / "artifacts" / "bento" / "bento.json")
    staging_1 = read_json(project / "artifacts" / "deploy" / "staging.json")
    assert bento["registered_version"] == champion_1
    assert staging_1["bento_tag"] == bento["bento_tag"] and staging_1["host"] == "127.0.0.1"
    assert staging_1["previous"] is None
    url = f"http://127.0.0.1:{staging_1['port']}"
    assert support.get(f"{url}/readyz")[0] == 200
    context = {c: str(served_rows[c].iloc[0]) for c in served_rows.columns if c.startswith("ctx_")}
    status, answer = support.post(f"{url}/recommend", {"room_id": "all", "context": context, "k": 3})
    assert status == 200 and answer["policy"] == f"{selection_1['champion']}@v{champion_1}", answer

    branch = "liveslate-daily"
    assert git(project, "rev-parse", f"{branch}~1") == fixture_commit
    assert git(project, "show", f"{branch}:data.dvc") == (project / "data.dvc").read_text().strip()
    assert json.loads(git(project, "show", f"{branch}:metrics/selection.json")) == selection_1
    pushed = project / ".dvcstore" / "files" / "md5" / data_1[:2] / data_1[2:]
    assert pushed.exists(), f"{pushed}: the data version was not pushed to the local remote"
    assert git(project, "rev-parse", "HEAD") == fixture_commit  # the work tree's branch is left alone

    # --- run 2, the same interval: same data, nothing retrained, nothing promoted, nothing deployed
    second, log, seconds_2 = run_day(airflow_home, project, day)
    assert second["state"] == "success", log[-6000:]
    assert second["tasks"] == {"collect": "success", "retrain": "success", "gate": "success",
                               "deploy": "skipped", "publish": "success"}, log[-6000:]
    assert stages_run(log) == ["select", "package"], log[-6000:]  # the two stages that always run
    assert yaml.safe_load((project / "data.dvc").read_text())["outs"][0]["md5"] == data_1
    selection_2 = read_json(project / "metrics" / "selection.json")
    assert selection_2["promoted"] is False, selection_2
    assert (selection_2["champion"], selection_2["registered_version"]) == (selection_1["champion"], champion_1)
    assert selection_2["previous"] == champion_1
    assert registry_state(project) == (versions_1, champion_1)  # no retrain, no second champion
    assert read_json(project / "artifacts" / "bento" / "bento.json") == bento
    assert read_json(project / "artifacts" / "deploy" / "staging.json") == staging_1
    assert git(project, "show", f"{branch}:data.dvc") == (project / "data.dvc").read_text().strip()
    print(f"dag e2e: run 1 {seconds_1:.0f} s {first['seconds']}, run 2 {seconds_2:.0f} s {second['seconds']}")
