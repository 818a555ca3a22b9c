"""Latency and throughput of the served champion through HTTP, beside the bare model in the same run.

Run on demand (never in the test suite):

    python benchmarks/serve_latency.py                          # 300 requests per case, 4 client threads
    python benchmarks/serve_latency.py --requests 1000 --concurrency 8

It builds everything in a temporary folder, offline: a synthetic catalogue with a room of
80 items and a room of 10,000 items, a DeepFM trained for one epoch on synthetic clicks,
registered in a temporary SQLite MLflow, promoted, packaged by the package logic into a
temporary BENTOML_HOME, and served with ``python -m bentoml serve <tag> --host 127.0.0.1``
(one worker). For each room it sends /recommend requests that list every item of the room
as candidates (k = 3, the default ε-greedy exploration), one at a time for the latency
percentiles (p50 / p99) and from ``--concurrency`` client threads for requests per second.
Every request is validated, scored, drawn and appended to the spool with an fsync before
it is answered — the cost of exact logging is part of what is measured.

The reference, measured in the same process for the same context and candidates: the
bare model — ``policy.scores`` (one forward pass over the candidates) and ``policy.slate``
(scores + exploration + propensities). The last columns are the HTTP p50 over each.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

ROOMS = {"small": 80, "big": 10_000}


def catalog() -> pd.DataFrame:
    ids = [f"{room}/{i}" for room, size in ROOMS.items() for i in range(size)]
    rng = np.random.default_rng(0)
    return pd.DataFrame({
        "item_id": pd.array(ids, dtype="string"),
        "room_id": pd.array([i.split("/")[0] for i in ids], dtype="string"),
        "first_seen": pd.Timestamp("2024-01-01"),
        "cat_colour": pd.array([f"c{c}" for c in rng.integers(0, 8, size=len(ids))], dtype="string"),
        "num_price": rng.lognormal(3.0, 1.0, size=len(ids)),
    })


def logs(items: pd.Series, n: int, seed: int, start: str) -> pd.DataFrame:
    from liveslate import schema

    rng = np.random.default_rng(seed)
    item_ids = items.to_numpy()[rng.integers(0, len(items), size=n)]
    users = rng.choice([f"u{i}" for i in range(20)], size=n)
    clicks = (rng.random(n) < 0.05).astype("int8")
    return schema.coerce_logs(pd.DataFrame({
        "impression_id": [f"imp{seed}-{i}" for i in range(n)],
        "ts": pd.Timestamp(start, tz="UTC") + pd.to_timedelta(np.arange(n), unit="s"),
        "room_id": [i.split("/")[0] for i in item_ids], "item_id": item_ids,
        "position": rng.integers(0, 3, size=n).astype("int16"), "click": clicks, "reward": clicks.astype("float32"),
        "propensity": 1.0 / 3.0, "policy": "random@bench",
        "ctx_user": pd.array(users, dtype="string"), "ctx_level": rng.normal(size=n),
    }))


def train(root: Path, cat: pd.DataFrame):
    from liveslate import schema
    from liveslate.config import DeepFMConfig, Params, TrainConfig
    from liveslate.policies.deepfm_train import train_deepfm
    from liveslate.policies.training import TrainingData, TrainRun

    data = TrainingData(train=logs(cat["item_id"], 20_000, 1, "2024-01-02"),
                        valid=logs(cat["item_id"], 2_000, 2, "2024-02-01"), catalog=cat,
                        index=schema.item_index(cat), item_vectors=None, slate_size=3, seed=3)
    params = Params(train=TrainConfig(deepfm_nokg=DeepFMConfig(use_kg=False, max_epochs=1)))
    run = TrainRun(name="deepfm_nokg", checkpoint_dir=root / "ckpt", progress=False, resume=False)
    policy = train_deepfm(data, params, run).policy
    policy.save(root / "policy")
    return policy


def package(root: Path, cat: pd.DataFrame, repo: Path) -> dict:
    import mlflow

    from liveslate.config import load_params
    from liveslate.evaluation.registry_ops import Registry
    from liveslate.policies.mlflow_registry import register_policy_directory
    from liveslate.serving.package import package_champion

    (root / "params.yaml").write_text(yaml.safe_dump({"tracking": {"registered_model": "bench-policy"},
                                                      "spool": {"directory": "spool"}}))
    (root / "bentofile.yaml").write_text((repo / "bentofile.yaml").read_text())
    (root / "src").symlink_to(repo / "src", target_is_directory=True)
    (root / "artifacts" / "validated").mkdir(parents=True)
    cat.to_parquet(root / "artifacts" / "validated" / "catalog.parquet", index=False)
    uri = f"sqlite:///{root / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    mlflow.create_experiment("bench", artifact_location=(root / "mlruns").as_uri())
    mlflow.set_experiment("bench")
    with mlflow.start_run():
        version = register_policy_directory(mlflow, root / "policy", "bench-policy", {"policy": "deepfm_nokg"})
    registry = Registry(uri, "bench-policy")
    registry.promote(str(version.version))
    params = load_params(root / "params.yaml")
    return package_champion(root, params, registry, root / "artifacts" / "validated" / "catalog.parquet",
                            Path(os.environ["BENTOML_HOME"])).record


def percentiles(seconds: list[float]) -> tuple[float, float]:
    values = np.asarray(seconds) * 1000.0
    return float(np.percentile(values, 50)), float(np.percentile(values, 99))


def http_case(url: str, body: bytes, requests: int, concurrency: int) -> tuple[float, float, float]:
    """(p50 ms, p99 ms) of sequential requests, and requests per second from ``concurrency`` threads."""
    import httpx

    headers = {"Content-Type": "application/json"}
    with httpx.Client(base_url=url, timeout=120) as client:
        for _ in range(10):
            assert client.post("/recommend", content=body, headers=headers).status_code == 200
        latencies = []
        for _ in range(requests):
            start = time.perf_counter()
            response = client.post("/recommend", content=body, headers=headers)
            latencies.append(time.perf_counter() - start)
            assert response.status_code == 200, response.text
    per_thread = max(1, requests // concurrency)
    failures: list[int] = []

    def work() -> None:
        with httpx.Client(base_url=url, timeout=120) as client:
            for _ in range(per_thread):
                status = client.post("/recommend", content=body, headers=headers).status_code
                if status != 200:
                    failures.append(status)

    threads = [threading.Thread(target=work) for _ in range(concurrency)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - start
    if failures:
        raise RuntimeError(f"{len(failures)} concurrent requests failed: {failures[:5]}")
    p50, p99 = percentiles(latencies)
    return p50, p99, per_thread * concurrency / elapsed


def bare_case(policy, cat: pd.DataFrame, room: str, repeats: int) -> tuple[float, float]:
    """p50 ms of policy.scores and of policy.slate for one request's context and candidates."""
    from liveslate import schema
    from liveslate.policies.base import Candidates, Exploration

    index = schema.item_index(cat)
    items = index.get_indexer(pd.Index(cat.loc[cat["room_id"] == room, "item_id"].astype(str))).tolist()
    candidates = Candidates.from_lists([items])
    contexts = pd.DataFrame({"ctx_user": pd.array(["u3"], dtype="string"), "ctx_level": [0.2]})
    scores, slates = [], []
    for i in range(repeats + 5):
        start = time.perf_counter()
        policy.scores(contexts, candidates)
        middle = time.perf_counter()
        policy.slate(contexts, candidates, 3, Exploration("epsilon", 0.1, seed=i))
        end = time.perf_counter()
        if i >= 5:
            scores.append(middle - start)
            slates.append(end - middle)
    return percentiles(scores)[0], percentiles(slates)[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300, help="requests per case (sequential and concurrent)")
    parser.add_argument("--concurrency", type=int, default=4, help="client threads of the throughput run")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (spool, server log)")
    args = parser.parse_args()
    repo = Path(__file__).resolve().parents[1]
    root = Path(tempfile.mkdtemp(prefix="liveslate-serve-bench-"))
    os.environ["BENTOML_HOME"] = str(root / "bentoml_home")
    os.environ.setdefault("BENTOML_DO_NOT_TRACK", "true")
    sys.path.insert(0, str(repo / "tests"))
    import serving_support  # the test helpers start and stop `bentoml serve` by PID

    import torch

    torch.set_num_threads(1)  # as the service (serving.torch_threads)
    cat = catalog()
    print(f"setting up in {root}: training, registering, packaging ...", flush=True)
    policy = train(root, cat)
    record = package(root, cat, repo)
    process, url = serving_support.start_server(record["bento_tag"], root, root / "serve.log")
    rows = []
    try:
        for room, size in ROOMS.items():
            items = cat.loc[cat["room_id"] == room, "item_id"].astype(str).tolist()
            body = json.dumps({"room_id": room, "context": {"ctx_user": "u3", "ctx_level": 0.2}, "k": 3,
                               "candidates": items}).encode()
            p50, p99, rps = http_case(url, body, args.requests, args.concurrency)
            score_ms, slate_ms = bare_case(policy, cat, room, args.requests)
            rows.append((size, len(body), p50, p99, rps, score_ms, slate_ms))
    finally:
        serving_support.stop_server(process)
    print(f"\n{record['bento_tag']} (1 worker), {args.requests} requests per case, "
          f"{args.concurrency} client threads for req/s; k = 3, ε-greedy, spool fsync per request")
    header = (f"{'candidates':>10} {'body kB':>8} {'HTTP p50 ms':>12} {'p99 ms':>8} {'req/s':>7} "
              f"{'scores p50 ms':>14} {'slate p50 ms':>13} {'p50/scores':>11} {'p50/slate':>10}")
    print(header)
    for size, body, p50, p99, rps, score_ms, slate_ms in rows:
        print(f"{size:>10,} {body / 1000:>8.1f} {p50:>12.2f} {p99:>8.2f} {rps:>7.1f} {score_ms:>14.3f} "
              f"{slate_ms:>13.3f} {p50 / score_ms:>10.1f}x {p50 / slate_ms:>9.1f}x")
    if args.keep:
        print(f"\nkept {root}")
    else:
        import shutil

        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
