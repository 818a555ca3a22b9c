"""Shared pieces of the serving tests: a tiny trained policy, a registry, a packaged project, a live server.

The policy is a DeepFM trained for a few epochs on the synthetic XOR logs of
``policy_synthetic`` (two rooms r0/r1 of six items; viewers u0/u1; true CTR 0.7 when
(viewer is u1) XOR (item colour is c1), else 0.1, whatever the position), so its slates
depend on the context and the served logs have a known ground truth.

BentoML resolves its home directory once per process, so every serving test of a pytest
session uses one BENTOML_HOME (``bentoml_home``).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

import policy_synthetic as synth
from liveslate import schema
from liveslate.config import DeepFMConfig, Params, TrainConfig

MODEL = "liveslate-policy"
REPO = Path(__file__).resolve().parents[1]
DAY = "2024-01-02"


def bentoml_home(tmp_path_factory) -> Path:
    """The session's BENTOML_HOME (set in the environment before BentoML first resolves it)."""
    home = Path(os.environ.get("LIVESLATE_TEST_BENTOML_HOME") or tmp_path_factory.getbasetemp() / "bentoml_home")
    home.mkdir(parents=True, exist_ok=True)
    os.environ["LIVESLATE_TEST_BENTOML_HOME"] = str(home)
    os.environ["BENTOML_HOME"] = str(home)
    os.environ.setdefault("BENTOML_DO_NOT_TRACK", "true")
    return home


def catalog() -> pd.DataFrame:
    return synth.catalog()


def train_policy(directory: Path, seed: int = 7, epochs: int = 3) -> Path:
    """Train a small DeepFM (no KG) on synthetic XOR logs and save it to ``directory``."""
    from liveslate.policies.deepfm_train import train_deepfm
    from liveslate.policies.training import TrainingData, TrainRun

    cat = catalog()
    data = TrainingData(train=synth.logs(1500, seed=1), valid=synth.logs(300, seed=2, start="2024-02-01"),
                        catalog=cat, index=schema.item_index(cat), item_vectors=None, slate_size=3, seed=seed)
    config = DeepFMConfig(use_kg=False, embedding_dim=4, hidden=(16,), dropout=0.0, lr=0.05, batch_size=256,
                          max_epochs=epochs, item_id_field=False)
    params = Params(train=TrainConfig(deepfm_nokg=config))
    run = TrainRun(name="deepfm_nokg", checkpoint_dir=directory.parent / "ckpt", fingerprint="serving",
                   progress=False, resume=False)
    policy = train_deepfm(data, params, run).policy
    policy.save(directory)
    return directory


def register(policy_dir: Path, tracking_uri: str, model: str = MODEL, policy: str = "deepfm_nokg") -> str:
    """Register ``policy_dir`` as a new version of ``model`` (as the train stage does); returns the version."""
    import mlflow

    from liveslate.policies.mlflow_registry import register_policy_directory

    mlflow.set_tracking_uri(tracking_uri)
    if mlflow.get_experiment_by_name("serving-test") is None:
        # Artefacts beside the SQLite file, whatever the working directory.
        database = Path(tracking_uri.removeprefix("sqlite:///"))
        mlflow.create_experiment("serving-test", artifact_location=(database.parent / "mlruns").as_uri())
    mlflow.set_experiment("serving-test")
    with mlflow.start_run(run_name=f"train_{policy}"):
        version = register_policy_directory(mlflow, policy_dir, model,
                                            {"policy": policy, "data_hash": "synthetic-data", "git_commit": "test"})
    return str(version.version)


def write_project(root: Path, model: str = MODEL, **serving) -> Path:
    """A project folder: params.yaml (small), the validated catalogue, an empty selection record."""
    params = {
        "seed": 11,
        "tracking": {"experiment": "serving-test", "registered_model": model},
        "spool": {"directory": "spool", "attribution_window_minutes": 30},
        "serving": {"bentoml_home": "bentoml_home", **serving},
        "evaluate": {"exploration": {"mode": "epsilon", "epsilon": 0.3, "temperature": 1.0}},
        "ingest": {"sources": ["served"], "served": {"window_days": 3}},
        "validate": {"slate_size": 3, "max_reject_share": 0.05},
        "ope": {"bootstrap_resamples": 200, "estimators": ["ips", "snips", "dm", "dr"], "primary": "dr"},
    }
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    # The Bento is built from the repository's bentofile.yaml and code (src/ is the build context).
    (root / "bentofile.yaml").write_text((REPO / "bentofile.yaml").read_text())
    (root / "src").symlink_to(REPO / "src", target_is_directory=True)
    (root / "artifacts" / "validated").mkdir(parents=True, exist_ok=True)
    catalog().to_parquet(root / "artifacts" / "validated" / "catalog.parquet", index=False)
    (root / "metrics").mkdir(exist_ok=True)
    (root / "metrics" / "selection.json").write_text(json.dumps({"promoted": True}))
    return root


def package(root: Path, tracking_uri: str, model: str = MODEL):
    """Run the package logic in-process on the project at ``root``; returns the PackageResult."""
    from liveslate.config import load_params
    from liveslate.evaluation.registry_ops import Registry
    from liveslate.serving.package import package_champion

    params = load_params(root / "params.yaml")
    home = Path(os.environ["BENTOML_HOME"])
    return package_champion(root, params, Registry(tracking_uri, model, params.select.alias),
                            root / "artifacts" / "validated" / "catalog.parquet", home)


def packaged_project(root: Path, seed: int = 7, **serving) -> tuple[Path, str, dict]:
    """A project with one trained, registered and promoted policy, packaged: (root, tracking URI, record)."""
    write_project(root, **serving)
    tracking_uri = f"sqlite:///{root / 'mlflow.db'}"
    version = register(train_policy(root / "trained" / "policy", seed=seed), tracking_uri)
    promote(tracking_uri, version)
    result = package(root, tracking_uri)
    assert result.built, result.message
    return root, tracking_uri, result.record


def use_bento_arguments(bento_tag: str, **overrides) -> dict:
    """Make this process's BentoML arguments those of the Bento (what `bentoml serve` does), plus overrides."""
    import bentoml
    from bentoml._internal.utils.args import set_arguments

    arguments = {**bentoml.bentos.get(bento_tag).info.args, **overrides}
    set_arguments(arguments)
    return arguments


_ASGI_APP = []


def asgi_app():
    """The service's ASGI app, built once per process: BentoML registers its Prometheus metrics when
    the app is built, and a second registration in one process fails. Each ``TestClient(app)``
    context starts the app's lifespan anew, which creates a service instance from the current
    Bento arguments (``use_bento_arguments``)."""
    if not _ASGI_APP:
        from liveslate.serving.service import LiveslateService

        _ASGI_APP.append(LiveslateService.to_asgi())
    return _ASGI_APP[0]


def promote(tracking_uri: str, version: str, model: str = MODEL) -> None:
    from liveslate.evaluation.registry_ops import Registry

    Registry(tracking_uri, model).promote(version)


def contexts(n: int, seed: int) -> list[dict]:
    rng = np.random.default_rng(seed)
    return [{"ctx_user": str(rng.choice(["u0", "u1"])), "ctx_level": float(np.round(rng.normal(), 4))}
            for _ in range(n)]


def true_ctr(context: dict, item_id: str) -> float:
    colour = catalog().set_index("item_id").loc[item_id, "cat_colour"]
    return float(synth.true_ctr(np.array([context["ctx_user"]]), np.array([colour]))[0])


# ---------------------------------------------------------------------- a real `bentoml serve`
def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(bento_tag: str, cwd: Path, log: Path, timeout_s: float = 180.0) -> tuple[subprocess.Popen, str]:
    """``python -m bentoml serve <tag> --host 127.0.0.1 --port P`` in its own process group; waits for /readyz."""
    port = free_port()
    env = {**os.environ, "BENTOML_DO_NOT_TRACK": "true"}
    handle = log.open("ab")
    process = subprocess.Popen([sys.executable, "-m", "bentoml", "serve", bento_tag, "--host", "127.0.0.1",
                                "--port", str(port)], cwd=cwd, env=env, stdout=handle, stderr=subprocess.STDOUT,
                               start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"bentoml serve exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/readyz", timeout=2) as response:
                if response.status == 200:
                    return process, url
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.3)
    stop_server(process)
    raise RuntimeError(f"{url}/readyz not ready within {timeout_s} s:\n{log.read_text()[-3000:]}")


def stop_server(process: subprocess.Popen, grace_s: float = 15.0) -> None:
    """SIGTERM the server's process group (by its PID), SIGKILL after the grace period."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        process.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=grace_s)


def post(url: str, payload: dict | bytes | str, timeout: float = 30.0) -> tuple[int, dict | list]:
    data = payload if isinstance(payload, bytes) else (payload.encode() if isinstance(payload, str)
                                                       else json.dumps(payload).encode())
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


def get(url: str, timeout: float = 10.0) -> tuple[int, dict | str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            body = response.read()
            return response.status, json.loads(body) if body.strip().startswith(b"{") else body.decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def replace_params(root: Path, **sections) -> None:
    params = yaml.safe_load((root / "params.yaml").read_text())
    for name, values in sections.items():
        params.setdefault(name, {}).update(values)
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))

