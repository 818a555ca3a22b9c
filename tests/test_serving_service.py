"""The BentoML service class of a packaged Bento: called directly, then through its ASGI app.

The Bento is built by the package logic from a tiny DeepFM registered in a temporary
SQLite MLflow; the service reads the Bento's build arguments as `bentoml serve` would.
Every bad request of the issue is a row of one table: it must get its 4xx naming the
field, and the service must answer a good request and /readyz afterwards.
"""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

import serving_support as support
from liveslate.serving.requests import FeedbackRequest, RecommendRequest

CONTEXT = {"ctx_user": "u0", "ctx_level": 1.5}
GOOD = {"room_id": "r0", "context": CONTEXT, "k": 2}


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    support.bentoml_home(tmp_path_factory)
    return support.packaged_project(tmp_path_factory.mktemp("service"))


@pytest.fixture(scope="module")
def service_class(project):
    _, _, record = project
    support.use_bento_arguments(record["bento_tag"])
    from liveslate.serving.service import LiveslateService

    return LiveslateService


@pytest.fixture(scope="module")
def client(project, service_class):
    from starlette.testclient import TestClient

    _, _, record = project
    support.use_bento_arguments(record["bento_tag"])
    with TestClient(support.asgi_app()) as test_client:
        yield test_client


def spool_lines(root, kind: str = "impressions") -> list[dict]:
    return [json.loads(line) for path in sorted((root / "spool").glob(f"*/{kind}-*.jsonl"))
            for line in path.read_text().splitlines()]


def test_direct_calls_on_the_service_class(project, service_class):
    root, _, record = project
    support.use_bento_arguments(record["bento_tag"])
    service = service_class()  # loads the BentoML model named by the Bento's model_tag argument
    assert service.__is_ready__()
    response = service.recommend(RecommendRequest(**GOOD))
    assert response.policy == f"deepfm_nokg@v{record['registered_version']}" and len(response.slate) == 2
    item = response.slate[0].item_id
    answer = service.feedback(FeedbackRequest(impression_id=response.impression_id, item_id=item, click=1))
    assert (answer.item_id, answer.position, answer.click) == (item, 0, 1)
    with pytest.raises(ValidationError) as caught:  # BentoML answers it with 400 and the loc
        service.recommend(RecommendRequest(**{**GOOD, "room_id": "nowhere"}))
    assert caught.value.errors()[0]["loc"] == ("room_id",)
    from bentoml.exceptions import BentoMLException

    with pytest.raises(BentoMLException) as missing:
        service.feedback(FeedbackRequest(impression_id="20240101-" + "0" * 32, item_id=item, click=1))
    assert missing.value.error_code == 410  # a day closed long ago
    meta = service.metadata()
    assert (meta.items, meta.rooms, meta.registered_version) == (12, {"r0": 6, "r1": 6}, record["registered_version"])
    assert meta.model_tag == record["model_tag"] and meta.data_version == "synthetic-data"
    assert meta.exploration == {"mode": "epsilon", "epsilon": 0.3, "temperature": 1.0}
    assert response.impression_id in {line["impression_id"] for line in spool_lines(root)}


def body_of(kind: str):
    """Request bodies too big for serving.max_request_bytes (1 MiB): declared, and streamed in chunks."""
    payload = json.dumps({**GOOD, "candidates": [f"r0/{i % 6}" for i in range(200_000)]}).encode()
    if kind == "declared":
        return {"content": payload}

    def chunks():
        for start in range(0, len(payload), 65_536):
            yield payload[start:start + 65_536]
    return {"content": chunks()}


# (name, path, body, status, field named, text in the message)
BAD = [
    ("body not JSON", "/recommend", b"room_id=r0&k=2", 400, None, "Invalid JSON"),
    ("body not an object", "/recommend", b"[1, 2]", 400, None, "Input should be an object"),
    ("missing room_id", "/recommend", {"context": CONTEXT, "k": 2}, 400, "room_id", "Field required"),
    ("missing k", "/recommend", {"room_id": "r0", "context": CONTEXT}, 400, "k", "Field required"),
    ("k of the wrong type", "/recommend", {**GOOD, "k": "2"}, 400, "k", "valid integer"),
    ("context of the wrong type", "/recommend", {**GOOD, "context": ["u0"]}, 400, "context",
     "Input should be an object"),
    ("candidates of the wrong type", "/recommend", {**GOOD, "candidates": "r0/1"}, 400, "candidates", "valid array"),
    ("k = 0", "/recommend", {**GOOD, "k": 0}, 400, "k", "greater than 0"),
    ("k < 0", "/recommend", {**GOOD, "k": -3}, 400, "k", "greater than 0"),
    ("k > distinct candidates", "/recommend", {**GOOD, "candidates": ["r0/1", "r0/1"]}, 400, "k",
     "2 exceeds the 1 distinct candidate(s)"),
    ("k > max_k", "/recommend", {**GOOD, "k": 5}, 400, "k", "serving.max_k = 3"),
    ("unknown room", "/recommend", {**GOOD, "room_id": "kitchen"}, 400, "room_id", "unknown room 'kitchen'"),
    ("no known candidate", "/recommend", {**GOOD, "candidates": ["zz/1"]}, 400, "candidates", "none of the 1"),
    ("unknown field", "/recommend", {**GOOD, "candidate": ["r0/1"]}, 400, "candidate", "Extra inputs"),
    ("explore mode", "/recommend", {**GOOD, "explore": {"mode": "greedy"}}, 400, "explore.mode", "Input should be"),
    ("epsilon > 1", "/recommend", {**GOOD, "explore": {"mode": "epsilon", "epsilon": 1.5}}, 400, "explore.epsilon",
     "less than or equal to 1"),
    ("context feature missing", "/recommend", {**GOOD, "context": {"ctx_user": "u0"}}, 400, "context.ctx_level",
     "missing"),
    ("numeric feature as text", "/recommend", {**GOOD, "context": {"ctx_user": "u0", "ctx_level": "high"}}, 400,
     "context.ctx_level", "expected a number"),
    ("payload over the limit", "/recommend", body_of("declared"), 413, "body", "serving.max_request_bytes"),
    ("streamed payload over the limit", "/recommend", body_of("chunked"), 413, "body", "serving.max_request_bytes"),
    ("feedback without click or reward", "/feedback", {"impression_id": "x", "item_id": "r0/1"}, 400, None,
     "click or reward"),
    ("feedback click of 2", "/feedback", {"impression_id": "x", "item_id": "r0/1", "click": 2}, 400, "click",
     "Input should be 0 or 1"),
    ("feedback negative reward", "/feedback", {"impression_id": "x", "item_id": "r0/1", "reward": -1}, 400, "reward",
     "greater than or equal to 0"),
    ("feedback unknown impression", "/feedback", {"impression_id": "2020-x", "item_id": "r0/1", "click": 1}, 404,
     "impression_id", "unknown impression"),
]


@pytest.mark.parametrize("name,path,body,status,field,text", BAD, ids=[row[0] for row in BAD])
def test_bad_requests_get_4xx_naming_the_field(client, name, path, body, status, field, text):
    if isinstance(body, dict) and "content" in body:
        response = client.post(path, headers={"Content-Type": "application/json"}, **body)
    elif isinstance(body, bytes):
        response = client.post(path, content=body, headers={"Content-Type": "application/json"})
    else:
        response = client.post(path, json=body)
    assert response.status_code == status, response.text
    payload = response.json()
    errors = payload if isinstance(payload, list) else [payload]
    messages = " ".join(json.dumps(e) for e in errors)
    assert text in messages
    if field is not None:
        locs = [".".join(map(str, d["loc"])) for e in errors for d in e.get("detail", [])]
        assert field in locs or messages.count(f"{field}:") > 0, messages
    # The service stays healthy: ready, and a good request still gets its slate.
    assert client.get("/readyz").status_code == 200
    assert client.post("/recommend", json=GOOD).status_code == 200


def test_asgi_roundtrip_metadata_and_dropped_candidates(project, client):
    root, _, record = project
    assert client.get("/healthz").status_code == 200 and client.get("/livez").status_code == 200
    meta = client.get("/metadata").json()
    assert meta["policy"] == f"deepfm_nokg@v{record['registered_version']}" and meta["items"] == 12
    response = client.post("/recommend", json={**GOOD, "candidates": ["r0/2", "x/9", "r0/2", "r0/4", "r1/1"],
                                               "session_id": "s-1", "step": 0, "viewer_id": "v-7"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["dropped_candidates"] == ["x/9", "r1/1"]
    assert {e["item_id"] for e in body["slate"]} == {"r0/2", "r0/4"}
    logged = next(line for line in spool_lines(root) if line["impression_id"] == body["impression_id"])
    assert logged["candidates"] == ["r0/2", "r0/4"] and logged["session_id"] == "s-1" and logged["viewer_id"] == "v-7"
    assert [e["propensity"] for e in logged["slate"]] == [e["propensity"] for e in body["slate"]]
    click = client.post("/feedback", json={"impression_id": body["impression_id"],
                                           "item_id": body["slate"][1]["item_id"], "click": 1})
    assert click.status_code == 200 and click.json()["position"] == 1
    wrong = client.post("/feedback", json={"impression_id": body["impression_id"], "item_id": "r0/5", "click": 1})
    assert wrong.status_code == 400 and wrong.json()["detail"][0]["loc"] == ["item_id"]


def test_reject_mode_refuses_unknown_candidates(project, service_class):
    """serving.unknown_candidates = reject (a Bento argument): a direct call on a service built with it."""
    _, _, record = project
    support.use_bento_arguments(record["bento_tag"], unknown_candidates="reject")
    try:
        strict = service_class()
    finally:
        support.use_bento_arguments(record["bento_tag"])
    with pytest.raises(ValidationError) as caught:
        strict.recommend(RecommendRequest(**{**GOOD, "candidates": ["r0/1", "r0/2", "x/1"]}))
    error = caught.value.errors()[0]
    assert error["loc"] == ("candidates",) and "serving.unknown_candidates = reject" in error["msg"]
    assert len(strict.recommend(RecommendRequest(**{**GOOD, "candidates": ["r0/1", "r0/2"]})).slate) == 2
