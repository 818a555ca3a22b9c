"""What /recommend and /feedback do, without BentoML: validate against the Bento, draw, log, answer.

/recommend: check the room, k and the context against the Bento; resolve the candidate
set (default: the room's items; duplicates removed; ids outside the room dropped and
reported, or rejected); draw one slate with ``Policy.slate`` under the request's
exploration (default ``evaluate.exploration``), seeded by the impression id so the draw
can be repeated; append the impression to the spool (fsynced) and only then answer.
The logged per-position propensities are ``Policy.action_dist`` at the shown positions.

/feedback: the impression must be in the spool (404 otherwise) and its day still open
(410 once collect may have copied it); the item must be one of its slate; the event is
appended to the feedback file of the impression's day.
"""

from __future__ import annotations

import datetime as dt
import math
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from liveslate.loop.spool import day_closed_at, is_closed
from liveslate.policies.base import Candidates, Exploration
from liveslate.schema import CONTEXT_PREFIX
from liveslate.serving.bento_model import ServingBundle
from liveslate.serving.impression_index import ImpressionIndex, ShownImpression
from liveslate.serving.records import (
    FeedbackRecord,
    ImpressionRecord,
    SlateEntryRecord,
    impression_day,
    impression_seed,
    new_impression_id,
)
from liveslate.serving.requests import (
    FeedbackRequest,
    FeedbackResponse,
    RecommendRequest,
    RecommendResponse,
    RequestError,
    SlateEntry,
)
from liveslate.serving.spool_writer import SpoolWriter


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


class ScoreMemo:
    """``policy.scores`` computed once per request: the response needs the scores, and
    ``Policy.slate`` computes them again inside (greedy slate, Plackett–Luce logits).

    Installed on the policy instance (``policy.scores = ScoreMemo(policy.scores)``). Inside
    ``with memo.request(contexts, candidates)`` a call with those very objects returns the
    scores computed on entry (a copy); any other call is passed through. Per thread, so
    concurrent requests never see each other's scores.
    """

    def __init__(self, scores: Callable[[pd.DataFrame, Candidates], np.ndarray]) -> None:
        self._scores = scores
        self._local = threading.local()

    def __call__(self, contexts: pd.DataFrame, candidates: Candidates) -> np.ndarray:
        held = getattr(self._local, "held", None)
        if held is not None and held[0] is contexts and held[1] is candidates:
            return held[2].copy()
        return self._scores(contexts, candidates)

    @contextmanager
    def request(self, contexts: pd.DataFrame, candidates: Candidates) -> Iterator[np.ndarray]:
        """Yield the scores [n, m] of this request's contexts and candidates, memoised for its duration."""
        scores = np.asarray(self._scores(contexts, candidates), dtype=np.float64)
        self._local.held = (contexts, candidates, scores)
        try:
            yield scores
        finally:
            self._local.held = None


@dataclass(frozen=True)
class ServingSettings:
    """The serving behaviour the Bento was built with (bento arguments; see serving.service).

    exploration: the default when a request names none (its seed is ignored: each
    impression gets its own); unknown_candidates: "drop" | "reject"; max_k: largest slate;
    reward_max: largest feedback reward (validate.reward_max); attribution_window: how long
    after its day's end an impression still takes feedback.
    """

    exploration: Exploration
    unknown_candidates: str = "drop"
    max_k: int = 3
    reward_max: float = 1.0
    attribution_window: dt.timedelta = dt.timedelta(minutes=30)
    model_tag: str = ""


class Recommender:
    """The service's behaviour over one loaded Bento model and one spool."""

    def __init__(self, bundle: ServingBundle, spool: os.PathLike | str, settings: ServingSettings,
                 clock: Callable[[], dt.datetime] = utc_now) -> None:
        self.bundle = bundle
        installed = bundle.policy.scores
        self.scores = installed if isinstance(installed, ScoreMemo) else ScoreMemo(installed)
        bundle.policy.scores = self.scores  # type: ignore[method-assign]
        self.settings = settings
        self.clock = clock
        self.writer = SpoolWriter(Path(spool), bundle.catalog)
        self.index = ImpressionIndex(Path(spool), self.day_is_open)
        self._position_of = {room: {int(item): i for i, item in enumerate(items)}
                             for room, items in bundle.rooms.items()}
        self._room_ids = {room: frozenset(bundle.index[items].tolist()) for room, items in bundle.rooms.items()}

    # ------------------------------------------------------------------ lifecycle
    def day_is_open(self, day: dt.date) -> bool:
        return not is_closed(day, self.clock(), self.settings.attribution_window)

    def load_index(self) -> int:
        """Index the impressions of the days that are still open (after a restart); returns their number."""
        today = self.clock().date()
        return self.index.load([today - dt.timedelta(days=1), today])

    # ------------------------------------------------------------------ /recommend
    def recommend(self, request: RecommendRequest) -> RecommendResponse:
        room = self._room(request.room_id)
        self._check_k_limit(request.k)
        contexts = self._contexts(request.context)
        items, dropped = self._candidates(room, request.candidates)
        if request.k > len(items):
            raise RequestError("k", f"{request.k} exceeds the {len(items)} distinct candidate(s) of room {room!r} "
                                    f"left to choose from", value=request.k)
        ts = self.clock()
        impression_id = new_impression_id(ts)
        explore = self._exploration(request, impression_seed(impression_id))
        candidates = Candidates.from_lists([items])
        with self.scores.request(contexts, candidates) as all_scores:
            slate = self.bundle.policy.slate(contexts, candidates, request.k, explore)
        shown = slate.items[0]
        scores = all_scores[0, slate.positions[0]]
        propensities = slate.propensities[0]
        slate_probability = float(slate.slate_probability[0])
        if not (np.isfinite(scores).all() and np.all((propensities > 0) & (propensities <= 1))
                and 0 < slate_probability <= 1):
            raise RuntimeError(f"{self.bundle.name}: non-finite score or a propensity outside (0, 1] for "
                               f"impression {impression_id}")
        item_ids = self.bundle.index[shown].tolist()
        entries = tuple(SlateEntryRecord(item_id=str(item), position=p, score=float(scores[p]),
                                         propensity=float(propensities[p])) for p, item in enumerate(item_ids))
        record = ImpressionRecord(
            impression_id=impression_id, ts=ts, room_id=room, policy=self.bundle.name,
            registered_version=str(self.bundle.info["registered_version"]), model_tag=self.settings.model_tag,
            session_id=request.session_id, step=request.step, viewer_id=request.viewer_id,
            context=dict(request.context), candidates=tuple(self.bundle.index[items].tolist()),
            dropped_candidates=tuple(dropped), k=request.k,
            explore={"mode": explore.mode, "epsilon": explore.epsilon, "temperature": explore.temperature,
                     "seed": explore.seed},
            slate=entries, slate_probability=slate_probability)
        day = ts.astimezone(dt.timezone.utc).date()
        self.writer.append("impressions", day, [record.to_json()])
        self.index.add(ShownImpression(impression_id=impression_id, day=day, ts=ts, items=record.items))
        return RecommendResponse(
            impression_id=impression_id, policy=self.bundle.name,
            slate=[SlateEntry(item_id=e.item_id, position=e.position, score=e.score, propensity=e.propensity)
                   for e in entries],
            slate_probability=slate_probability, dropped_candidates=list(dropped))

    def _room(self, room_id: str) -> str:
        if room_id not in self.bundle.rooms:
            raise RequestError("room_id", f"unknown room {room_id!r}; this Bento serves "
                                          f"{', '.join(sorted(self.bundle.rooms))}", value=room_id)
        return room_id

    def _check_k_limit(self, k: int) -> None:
        if k > self.settings.max_k:
            raise RequestError("k", f"{k} exceeds serving.max_k = {self.settings.max_k} (the slate positions the "
                                    "logs can hold)", value=k)

    def _contexts(self, context: dict[str, object]) -> pd.DataFrame:
        """One-row frame of ctx_* columns: categorical ones as strings, numeric ones as float64."""
        for key in context:
            if not key.startswith(CONTEXT_PREFIX) or len(key) == len(CONTEXT_PREFIX):
                raise RequestError(f"context.{key}", f"expected a feature name starting with {CONTEXT_PREFIX!r}",
                                   value=key)
        missing = [name for name in self.bundle.context_features if name not in context]
        if missing:
            total = len(self.bundle.context_features)
            raise RequestError(f"context.{missing[0]}", f"missing; the policy reads {total} context feature(s), "
                                                       f"{len(missing)} absent: {missing[:5]} (send null for an "
                                                       "unknown value)")
        columns: dict[str, pd.Series] = {}
        for key, value in context.items():
            numeric = (key in self.bundle.numeric_context
                       or (key not in self.bundle.context_features and isinstance(value, (int, float))))
            if key in self.bundle.numeric_context and isinstance(value, str):
                raise RequestError(f"context.{key}", f"expected a number or null (a numeric feature), got {value!r}",
                                   value=value)
            if key in self.bundle.context_features and not numeric and isinstance(value, float):
                raise RequestError(f"context.{key}", f"expected a string or null (a categorical feature), "
                                                     f"got {value!r}", value=value)
            if numeric:
                columns[key] = pd.Series([np.nan if value is None else float(value)], dtype="float64")
            else:
                columns[key] = pd.Series([None if value is None else str(value)], dtype="string")
        return pd.DataFrame(columns, index=pd.RangeIndex(1))

    def _candidates(self, room: str, requested: list[str] | None) -> tuple[list[int], list[str]]:
        """(item indices to choose from, in request order without duplicates; ids dropped)."""
        if requested is None:
            return self.bundle.rooms[room].tolist(), []
        if not requested:
            raise RequestError("candidates", "empty list; omit the field to choose from the whole room")
        distinct = list(dict.fromkeys(requested))
        known = self._room_ids[room]
        dropped = [item for item in distinct if item not in known]
        if dropped and self.settings.unknown_candidates == "reject":
            raise RequestError("candidates", f"{len(dropped)} id(s) are not items of room {room!r} in this Bento: "
                                             f"{dropped[:5]} (serving.unknown_candidates = reject)", value=dropped[:5])
        kept = [item for item in distinct if item in known]
        if not kept:
            raise RequestError("candidates", f"none of the {len(distinct)} id(s) is an item of room {room!r} in this "
                                             f"Bento: {dropped[:5]}", value=dropped[:5])
        return self.bundle.index.get_indexer(pd.Index(kept)).tolist(), dropped

    def _exploration(self, request: RecommendRequest, seed: int) -> Exploration:
        default = self.settings.exploration
        spec = request.explore
        if spec is None:
            return Exploration(mode=default.mode, epsilon=default.epsilon, temperature=default.temperature, seed=seed)
        return Exploration(mode=spec.mode, epsilon=default.epsilon if spec.epsilon is None else spec.epsilon,
                           temperature=default.temperature if spec.temperature is None else spec.temperature,
                           seed=seed)

    # ------------------------------------------------------------------ /feedback
    def feedback(self, request: FeedbackRequest) -> FeedbackResponse:
        day = impression_day(request.impression_id)
        shown = self.index.lookup(request.impression_id) if day is not None else None
        now = self.clock()
        if shown is None:
            if day is not None and not self.day_is_open(day):
                raise RequestError("impression_id", self._closed_message(request.impression_id, day), status=410,
                                   value=request.impression_id)
            raise RequestError("impression_id", f"unknown impression {request.impression_id!r}: no impression of an "
                                                "open day has it (use an id returned by /recommend)", status=404,
                               value=request.impression_id)
        if request.item_id not in shown.items:
            raise RequestError("item_id", f"{request.item_id!r} is not in the slate of impression "
                                          f"{request.impression_id} ({list(shown.items)})", value=request.item_id)
        click, reward = self._click_reward(request)
        record = FeedbackRecord(impression_id=shown.impression_id, item_id=request.item_id,
                                position=shown.items.index(request.item_id), click=click, reward=reward, ts=now)
        self.writer.append("feedback", shown.day, [record.to_json()])
        return FeedbackResponse(impression_id=record.impression_id, item_id=record.item_id, position=record.position,
                                click=click, reward=reward)

    def _closed_message(self, impression_id: str, day: dt.date) -> str:
        closed = day_closed_at(day, self.settings.attribution_window)
        return (f"impression {impression_id!r} is of day {day}, closed at {closed.isoformat()} (day end + "
                "attribution window); its logs may already be collected, so feedback is no longer recorded")

    def _click_reward(self, request: FeedbackRequest) -> tuple[int, float]:
        reward = request.reward
        click = request.click if request.click is not None else int(reward is not None and reward > 0)
        if reward is None:
            reward = float(click)
        if not math.isfinite(reward) or reward > self.settings.reward_max:
            raise RequestError("reward", f"expected a value in [0, {self.settings.reward_max:g}] "
                                         f"(validate.reward_max), got {reward}", value=reward)
        if click == 0 and reward > 0:
            raise RequestError("reward", f"a positive reward ({reward}) needs click = 1", value=reward)
        return int(click), float(reward)
