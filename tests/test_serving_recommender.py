"""The recommender (what /recommend and /feedback do) on a tiny trained DeepFM, with a clock under test control.

Known answers: the logged propensities must equal ``Policy.action_dist`` of the same
context, candidates and exploration at the shown positions; the draws must follow them
(frequencies within 4.5 standard errors); a slate is redrawn exactly from its impression
id; the feedback rules are set by hand.
"""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pandas as pd
import pytest

import serving_support as support
from liveslate.policies.base import Candidates, Exploration
from liveslate.serving.bento_model import bento_catalog, content_hash, load_bundle, policy_item_ids, write_model_files
from liveslate.serving.records import impression_seed, parse_feedback, parse_impression
from liveslate.serving.recommender import Recommender, ServingSettings
from liveslate.serving.requests import ExploreSpec, FeedbackRequest, RecommendRequest, RequestError

UTC = dt.timezone.utc
NOON = dt.datetime(2024, 1, 2, 12, tzinfo=UTC)
CONTEXT = {"ctx_user": "u1", "ctx_level": 0.25}


class Clock:
    def __init__(self, now: dt.datetime) -> None:
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    root = tmp_path_factory.mktemp("recommender")
    policy_dir = support.train_policy(root / "policy")
    catalog = bento_catalog(support.catalog(), policy_item_ids(policy_dir))
    info = {"registered_version": "4", "policy": "deepfm_nokg", "kind": "deepfm",
            "content_hash": content_hash(policy_dir, catalog)}
    write_model_files(root / "model", policy_dir, catalog, info)
    return load_bundle(root / "model")


def recommender(bundle, tmp_path, clock=None, **settings) -> Recommender:
    defaults = {"exploration": Exploration("epsilon", epsilon=0.3)}
    return Recommender(bundle, tmp_path / "spool", ServingSettings(**{**defaults, **settings}),
                       clock=clock or Clock(NOON))


def logged(tmp_path, kind: str = "impressions") -> list[str]:
    return [line for path in sorted((tmp_path / "spool").glob(f"*/{kind}-*.jsonl"))
            for line in path.read_text().splitlines()]


def frame(context: dict) -> pd.DataFrame:
    return pd.DataFrame({"ctx_user": pd.array([context["ctx_user"]], dtype="string"),
                         "ctx_level": [float(context["ctx_level"])]})


@pytest.mark.parametrize("explore", [ExploreSpec(mode="none"), ExploreSpec(mode="epsilon", epsilon=0.4),
                                     ExploreSpec(mode="plackett_luce", temperature=0.5), None])
def test_logged_propensities_are_the_action_dist_of_the_request(bundle, tmp_path, explore):
    service = recommender(bundle, tmp_path)
    rng = np.random.default_rng(3)
    for context in support.contexts(12, seed=5):
        room = str(rng.choice(["r0", "r1"]))
        candidates = [f"{room}/{i}" for i in rng.permutation(6)[: int(rng.integers(3, 7))]]
        k = int(rng.integers(1, 4))
        response = service.recommend(RecommendRequest(room_id=room, context=context, k=k, candidates=candidates,
                                                      explore=explore))
        items = bundle.index.get_indexer(pd.Index(candidates)).tolist()
        mode = Exploration("epsilon", epsilon=0.3) if explore is None else Exploration(
            explore.mode, epsilon=explore.epsilon if explore.epsilon is not None else 0.3,
            temperature=explore.temperature or 1.0)
        dist = bundle.policy.action_dist(frame(context), Candidates.from_lists([items]), k, mode)[0]
        for entry in response.slate:
            column = candidates.index(entry.item_id)
            assert entry.propensity == pytest.approx(dist[column, entry.position], abs=1e-12)
        # The slate is redrawn exactly from the impression id's seed.
        seeded = Exploration(mode.mode, mode.epsilon, mode.temperature, seed=impression_seed(response.impression_id))
        again = bundle.policy.slate(frame(context), Candidates.from_lists([items]), k, seeded)
        assert [candidates[p] for p in again.positions[0]] == [e.item_id for e in response.slate]
        assert again.slate_probability[0] == pytest.approx(response.slate_probability)
    records = [parse_impression(line) for line in logged(tmp_path)]
    assert len(records) == 12 and len({r.impression_id for r in records}) == 12


def test_draws_follow_the_logged_propensities(bundle, tmp_path):
    """Position-0 frequencies of 600 ε-greedy draws vs the logged marginal (ε = 0.5, 6 candidates)."""
    service = recommender(bundle, tmp_path, exploration=Exploration("epsilon", epsilon=0.5))
    n = 600
    counts: dict[str, int] = {}
    propensity: dict[str, float] = {}
    for _ in range(n):
        top = service.recommend(RecommendRequest(room_id="r1", context=CONTEXT, k=1)).slate[0]
        counts[top.item_id] = counts.get(top.item_id, 0) + 1
        propensity[top.item_id] = top.propensity
    greedy = max(propensity, key=propensity.get)
    assert propensity[greedy] == pytest.approx(0.5 + 0.5 / 6) and len(counts) == 6
    for item, p in propensity.items():
        assert abs(counts[item] / n - p) < 4.5 * np.sqrt(p * (1 - p) / n), (item, counts[item], p)


@pytest.mark.parametrize("mode", ["none", "epsilon", "plackett_luce"])
def test_scores_are_computed_once_per_request(bundle, tmp_path, mode):
    service = recommender(bundle, tmp_path)
    original, calls = service.scores._scores, []

    def counted(contexts, candidates):
        calls.append(candidates.m)
        return original(contexts, candidates)

    service.scores._scores = counted
    try:
        response = service.recommend(RecommendRequest(room_id="r1", context=CONTEXT, k=3,
                                                      explore=ExploreSpec(mode=mode)))
    finally:
        service.scores._scores = original
    assert calls == [6]  # one pass over the room's six candidates, shared by the draw and the response
    shown = bundle.index.get_indexer(pd.Index([e.item_id for e in response.slate])).tolist()
    direct = original(frame(CONTEXT), Candidates.from_lists([shown]))[0]
    assert [e.score for e in response.slate] == pytest.approx(direct.tolist(), rel=1e-6)


def test_context_changes_the_slate(bundle, tmp_path):
    """The XOR model: u0 and u1 prefer opposite colours, so their greedy slates differ."""
    service = recommender(bundle, tmp_path, exploration=Exploration("none"))
    slates = {user: [e.item_id for e in service.recommend(RecommendRequest(
        room_id="r0", context={"ctx_user": user, "ctx_level": 0.0}, k=3)).slate] for user in ("u0", "u1")}
    colour = support.catalog().set_index("item_id")["cat_colour"]
    assert slates["u0"] != slates["u1"]
    assert {colour[i] for i in slates["u0"]} == {"c1"} and {colour[i] for i in slates["u1"]} == {"c0"}


BAD_REQUESTS = [
    ({"room_id": "r9"}, "room_id", "unknown room 'r9'; this Bento serves r0, r1"),
    ({"k": 4}, "k", "exceeds serving.max_k = 3"),
    ({"candidates": ["r0/1", "r0/2"]}, "k", "3 exceeds the 2 distinct candidate(s) of room 'r0'"),
    ({"candidates": ["r0/1", "r0/1", "r0/2", "r0/2"]}, "k", "3 exceeds the 2 distinct candidate(s)"),
    ({"candidates": ["r1/1", "nope"]}, "candidates", "none of the 2 id(s) is an item of room 'r0'"),
    ({"candidates": []}, "candidates", "empty list"),
    ({"context": {"ctx_user": "u1"}}, "context.ctx_level", "missing; the policy reads 2 context feature(s)"),
    ({"context": {"ctx_user": "u1", "ctx_level": "high"}}, "context.ctx_level", "expected a number or null"),
    ({"context": {"ctx_user": 0.5, "ctx_level": 1.0}}, "context.ctx_user", "expected a string or null"),
    ({"context": {**CONTEXT, "user_age": 3}}, "context.user_age", "expected a feature name starting with 'ctx_'"),
]


@pytest.mark.parametrize("change,field,message", BAD_REQUESTS)
def test_bad_requests_name_the_field(bundle, tmp_path, change, field, message):
    service = recommender(bundle, tmp_path)
    request = RecommendRequest(**{"room_id": "r0", "context": CONTEXT, "k": 3, **change})
    with pytest.raises(RequestError) as caught:
        service.recommend(request)
    assert caught.value.status == 400 and caught.value.field == field and message in caught.value.message
    assert logged(tmp_path) == []  # nothing is logged for a refused request


def test_candidates_deduplicated_unknown_dropped_or_rejected(bundle, tmp_path):
    service = recommender(bundle, tmp_path)
    response = service.recommend(RecommendRequest(room_id="r0", context=CONTEXT, k=2,
                                                  candidates=["r0/3", "x/1", "r0/3", "r1/0", "r0/5", "r0/1"]))
    assert response.dropped_candidates == ["x/1", "r1/0"]
    record = parse_impression(logged(tmp_path)[0])
    assert record.candidates == ("r0/3", "r0/5", "r0/1") and record.dropped_candidates == ("x/1", "r1/0")
    assert {e.item_id for e in response.slate} <= {"r0/3", "r0/5", "r0/1"}
    strict = recommender(bundle, tmp_path / "strict", unknown_candidates="reject")
    with pytest.raises(RequestError, match=r"candidates: 2 id\(s\) are not items of room 'r0'") as caught:
        strict.recommend(RecommendRequest(room_id="r0", context=CONTEXT, k=2, candidates=["r0/3", "x/1", "r1/0"]))
    assert caught.value.status == 400
    # Default candidates: the whole room, in item index order; extra ctx_* keys are logged as sent.
    whole = service.recommend(RecommendRequest(room_id="r1", context={**CONTEXT, "ctx_device": "tv"}, k=3))
    record = parse_impression(logged(tmp_path)[-1])
    assert whole.dropped_candidates == [] and record.candidates == tuple(f"r1/{i}" for i in range(6))
    assert record.context == {**CONTEXT, "ctx_device": "tv"}


def test_feedback_rules(bundle, tmp_path):
    clock = Clock(dt.datetime(2024, 1, 2, 23, 50, tzinfo=UTC))
    service = recommender(bundle, tmp_path, clock=clock)
    response = service.recommend(RecommendRequest(room_id="r0", context=CONTEXT, k=2))
    shown = [e.item_id for e in response.slate]
    other = next(f"r0/{i}" for i in range(6) if f"r0/{i}" not in shown)

    def refused(**fields) -> RequestError:
        with pytest.raises(RequestError) as caught:
            service.feedback(FeedbackRequest(**{"impression_id": response.impression_id, **fields}))
        return caught.value

    assert (refused(item_id=other, click=1).status, refused(item_id=other, click=1).field) == (400, "item_id")
    assert refused(item_id=shown[0], reward=2.5).field == "reward"  # above validate.reward_max = 1
    assert refused(item_id=shown[0], click=0, reward=0.5).field == "reward"
    unknown = refused(item_id=shown[0], click=1, impression_id="20240102-" + "f" * 32)
    assert (unknown.status, unknown.field) == (404, "impression_id")
    assert refused(item_id=shown[0], click=1, impression_id="not-an-id").status == 404
    # 20 minutes later it is the next day, but the impression's day is still open: the event
    # goes to the impression's folder. A reward alone means a click.
    clock.now += dt.timedelta(minutes=20)
    answer = service.feedback(FeedbackRequest(impression_id=response.impression_id, item_id=shown[1], reward=0.5))
    assert (answer.position, answer.click, answer.reward) == (1, 1, 0.5)
    events = [parse_feedback(line) for line in (tmp_path / "spool" / "2024-01-02").glob("feedback-*.jsonl")
              .__next__().read_text().splitlines()]
    assert [(e.item_id, e.click, e.reward) for e in events] == [(shown[1], 1, 0.5)]
    # Once the day is closed (00:30 the next day), feedback is refused with 410 and nothing is written.
    clock.now = dt.datetime(2024, 1, 3, 0, 30, tzinfo=UTC)
    gone = refused(item_id=shown[0], click=1)
    assert (gone.status, gone.field) == (410, "impression_id") and "closed at 2024-01-03T00:30:00+00:00" in gone.message
    assert len(logged(tmp_path, "feedback")) == 1


def test_restart_keeps_answering_feedback(bundle, tmp_path):
    first = recommender(bundle, tmp_path)
    response = first.recommend(RecommendRequest(room_id="r1", context=CONTEXT, k=1))
    restarted = recommender(bundle, tmp_path)
    assert restarted.load_index() == 1
    restarted.feedback(FeedbackRequest(impression_id=response.impression_id, item_id=response.slate[0].item_id,
                                       click=1))
    assert [json.loads(line)["impression_id"] for line in logged(tmp_path)] == [response.impression_id]
    assert [json.loads(line)["impression_id"] for line in logged(tmp_path, "feedback")] == [response.impression_id]
