"""A real `bentoml serve` of a packaged Bento on a free 127.0.0.1 port (two worker processes),
shared by every check of this module and stopped by its PID at the end.

The concurrency check: 8 threads × 200 recommendations, each followed by feedback on one
shown item, with four exploration settings → no error, every impression and every
feedback event in the spool exactly once (the workers write their own files), and every
logged propensity equal to the policy's ``action_dist`` for that context, candidate set
and exploration, recomputed here from the Bento's model.
"""

from __future__ import annotations

import json
import os
import threading
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import serving_support as support
from liveslate.policies.base import Candidates, Exploration

CONTEXT = {"ctx_user": "u1", "ctx_level": -0.5}
EXPLORE = [None, {"mode": "none"}, {"mode": "epsilon", "epsilon": 0.2}, {"mode": "plackett_luce", "temperature": 0.7}]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    support.bentoml_home(tmp_path_factory)
    root, _, record = support.packaged_project(tmp_path_factory.mktemp("server"), workers=2, threads=4)
    process, url = support.start_server(record["bento_tag"], root, root / "serve.log")
    try:
        yield root, record, url, process
    finally:
        support.stop_server(process)
        assert process.poll() is not None
        with pytest.raises(ProcessLookupError):
            os.killpg(process.pid, 0)  # the whole process group is gone


def spool(root: Path, kind: str) -> list[dict]:
    return [json.loads(line) for path in sorted((root / "spool").glob(f"*/{kind}-*.jsonl"))
            for line in path.read_text().splitlines()]


def test_health_readiness_and_metadata(server):
    _, record, url, _ = server
    assert support.get(f"{url}/readyz")[0] == 200 and support.get(f"{url}/healthz")[0] == 200
    status, meta = support.get(f"{url}/metadata")
    assert status == 200 and meta["model_tag"] == record["model_tag"]
    assert meta["policy"] == f"deepfm_nokg@v{record['registered_version']}" and meta["items"] == 12


def test_bad_requests_over_http_leave_the_server_healthy(server):
    _, _, url, _ = server
    status, body = support.post(f"{url}/recommend", b"{not json")
    assert status == 400 and "Invalid JSON" in body["detail"][0]["msg"]
    status, body = support.post(f"{url}/recommend", {"room_id": "r0", "context": CONTEXT, "k": 0})
    assert status == 400 and body["detail"][0]["loc"] == ["k"]
    status, body = support.post(f"{url}/recommend", {"room_id": "attic", "context": CONTEXT, "k": 1})
    assert status == 400 and body["detail"][0]["loc"] == ["room_id"]
    status, body = support.post(f"{url}/recommend", b"[" + b"1," * 600_000 + b"1]")
    assert status == 413 and body["detail"][0]["loc"] == ["body"]
    status, body = support.post(f"{url}/feedback", {"impression_id": "20991231-" + "a" * 32, "item_id": "r0/1",
                                                    "click": 1})
    assert status == 404 and "impression_id: unknown impression" in body[0]["error"]
    assert support.get(f"{url}/readyz")[0] == 200
    assert support.post(f"{url}/recommend", {"room_id": "r1", "context": CONTEXT, "k": 3})[0] == 200


def test_concurrent_requests_are_logged_once_with_exact_propensities(server):
    import bentoml
    import httpx

    from liveslate.policies.registry import load_policy

    root, record, url, _ = server
    before = {line["impression_id"] for line in spool(root, "impressions")}
    threads, per_thread = 8, 200
    sent: list[dict] = []
    errors: list[str] = []
    lock = threading.Lock()

    def work(thread: int) -> None:
        rng = np.random.default_rng(thread)
        contexts = support.contexts(per_thread, seed=100 + thread)
        with httpx.Client(base_url=url, timeout=60) as client:
            for i in range(per_thread):
                explore = EXPLORE[(thread + i) % len(EXPLORE)]
                request = {"room_id": f"r{i % 2}", "context": contexts[i], "k": int(rng.integers(1, 4)),
                           **({"explore": explore} if explore else {})}
                response = client.post("/recommend", json=request)
                if response.status_code != 200:
                    with lock:
                        errors.append(f"recommend {response.status_code}: {response.text[:200]}")
                    continue
                body = response.json()
                shown = body["slate"][int(rng.integers(0, len(body["slate"])))]["item_id"]
                feedback = client.post("/feedback", json={"impression_id": body["impression_id"], "item_id": shown,
                                                          "click": int(rng.integers(0, 2))})
                if feedback.status_code != 200:
                    with lock:
                        errors.append(f"feedback {feedback.status_code}: {feedback.text[:200]}")
                with lock:
                    sent.append({"request": request, "response": body, "feedback_item": shown})

    workers = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert errors == []
    assert len(sent) == threads * per_thread

    impressions = [line for line in spool(root, "impressions") if line["impression_id"] not in before]
    counts = Counter(line["impression_id"] for line in impressions)
    assert len(counts) == len(sent) and set(counts.values()) == {1}
    assert counts.keys() == {s["response"]["impression_id"] for s in sent}
    feedback = Counter((line["impression_id"], line["item_id"]) for line in spool(root, "feedback")
                       if line["impression_id"] in counts)
    assert feedback == Counter((s["response"]["impression_id"], s["feedback_item"]) for s in sent)
    pids = {path.name for path in (root / "spool").glob("*/impressions-*.jsonl")}
    assert 1 <= len(pids) <= 2  # one file per worker process that served

    # Every logged propensity is action_dist[context, shown column, position] under the request's exploration.
    policy = load_policy(Path(bentoml.models.get(record["model_tag"]).path) / "policy")
    index = pd.Index(json.loads((Path(bentoml.models.get(record["model_tag"]).path) / "policy" / "config.json")
                                .read_text())["item_ids"])
    by_id = {line["impression_id"]: line for line in impressions}
    groups: dict[tuple, list[dict]] = {}
    for item in sent:
        explore = item["request"].get("explore") or {"mode": "epsilon", "epsilon": 0.3}
        key = (explore["mode"], explore.get("epsilon", 0.3), explore.get("temperature", 1.0), item["request"]["k"])
        groups.setdefault(key, []).append(item)
    checked = 0
    for (mode, epsilon, temperature, k), items in groups.items():
        logged = [by_id[item["response"]["impression_id"]] for item in items]
        contexts = pd.DataFrame({"ctx_user": pd.array([line["context"]["ctx_user"] for line in logged],
                                                      dtype="string"),
                                 "ctx_level": [float(line["context"]["ctx_level"]) for line in logged]})
        candidates = Candidates.from_lists([index.get_indexer(pd.Index(line["candidates"])).tolist()
                                            for line in logged])
        dist = policy.action_dist(contexts, candidates, k, Exploration(mode, epsilon, temperature))
        # ε-greedy and greedy marginals depend on the ranking only: equal to the last bit. Plackett–Luce
        # marginals depend on DeepFM's float32 logits, which a batch of 200 rows rounds differently
        # from the service's batch of one (relative differences ~1e-7).
        tolerance = {"rel": 1e-5} if mode == "plackett_luce" else {"abs": 1e-12}
        for row, (line, item) in enumerate(zip(logged, items)):
            assert [e["propensity"] for e in line["slate"]] == [e["propensity"] for e in item["response"]["slate"]]
            for entry in line["slate"]:
                column = line["candidates"].index(entry["item_id"])
                assert entry["propensity"] == pytest.approx(dist[row, column, entry["position"]], **tolerance)
                checked += 1
    assert checked == sum(s["request"]["k"] for s in sent)
