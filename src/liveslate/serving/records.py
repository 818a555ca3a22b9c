"""The JSON-lines records of the served-log spool, shared by the service (writer) and ingest (reader).

One impression line per served slate (``impressions-<pid>.jsonl``)::

    {"impression_id": "20261202-<32 hex>", "ts": "2026-12-02T10:00:00.123456+00:00",
     "room_id": "men", "policy": "deepfm@v7", "registered_version": "7", "model_tag": "...",
     "session_id": null, "step": null, "viewer_id": null,
     "context": {"ctx_user_feature_0": "81ce...", ...},
     "candidates": ["men/0", ...],            # the candidate set the policy scored, in that order
     "dropped_candidates": [],
     "k": 3, "explore": {"mode": "epsilon", "epsilon": 0.1, "temperature": 1.0, "seed": 123},
     "slate": [{"item_id": "men/5", "position": 0, "score": 0.01, "propensity": 0.9029}, ...],
     "slate_probability": 0.9}

One feedback line per event (``feedback-<pid>.jsonl``, in the folder of its impression's day)::

    {"impression_id": "...", "item_id": "men/5", "position": 0, "click": 1, "reward": 1.0,
     "ts": "2026-12-02T10:00:04.5+00:00"}

The impression id starts with the impression's UTC day (``YYYYMMDD``), so feedback finds
its day folder from the id alone. ``parse_*`` raise ValueError naming the field at fault.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
import uuid
from dataclasses import dataclass
from typing import Any

IMPRESSION_ID_PATTERN = re.compile(r"^(\d{8})-([0-9a-f]{32})$")


def new_impression_id(ts: dt.datetime) -> str:
    """``YYYYMMDD-<uuid4 hex>``: the UTC day of ``ts``, then 122 random bits."""
    return f"{ts.astimezone(dt.timezone.utc):%Y%m%d}-{uuid.uuid4().hex}"


def impression_day(impression_id: str) -> dt.date | None:
    """The UTC day encoded in an impression id, or None when the id is not one of ours."""
    match = IMPRESSION_ID_PATTERN.match(impression_id)
    if match is None:
        return None
    try:
        return dt.datetime.strptime(match.group(1), "%Y%m%d").date()
    except ValueError:
        return None


def impression_seed(impression_id: str) -> int:
    """The sampling seed of an impression: 60 bits of its random part (so a slate can be redrawn)."""
    match = IMPRESSION_ID_PATTERN.match(impression_id)
    if match is None:
        raise ValueError(f"impression_id {impression_id!r}: expected YYYYMMDD-<32 hex digits>")
    return int(match.group(2)[:15], 16)


def format_ts(ts: dt.datetime) -> str:
    if ts.tzinfo is None:
        raise ValueError(f"timestamp {ts!r} has no time zone; the spool is in UTC")
    return ts.astimezone(dt.timezone.utc).isoformat()


def parse_ts(value: Any, field: str) -> dt.datetime:
    if not isinstance(value, str):
        raise ValueError(f"{field}: expected an ISO timestamp string, got {value!r}")
    try:
        ts = dt.datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{field}: not an ISO timestamp: {value!r}") from None
    if ts.tzinfo is None:
        raise ValueError(f"{field}: timestamp {value!r} has no time zone")
    return ts.astimezone(dt.timezone.utc)


@dataclass(frozen=True)
class SlateEntryRecord:
    item_id: str
    position: int
    score: float
    propensity: float


@dataclass(frozen=True)
class ImpressionRecord:
    """One served slate; ``slate`` is ordered by position (0..k-1)."""

    impression_id: str
    ts: dt.datetime
    room_id: str
    policy: str
    registered_version: str
    model_tag: str
    session_id: str | None
    step: int | None
    viewer_id: str | None
    context: dict[str, str | float | int | None]
    candidates: tuple[str, ...]
    dropped_candidates: tuple[str, ...]
    k: int
    explore: dict[str, Any]
    slate: tuple[SlateEntryRecord, ...]
    slate_probability: float

    @property
    def items(self) -> tuple[str, ...]:
        return tuple(entry.item_id for entry in self.slate)

    def to_json(self) -> str:
        payload = {
            "impression_id": self.impression_id, "ts": format_ts(self.ts), "room_id": self.room_id,
            "policy": self.policy, "registered_version": self.registered_version, "model_tag": self.model_tag,
            "session_id": self.session_id, "step": self.step, "viewer_id": self.viewer_id,
            "context": self.context, "candidates": list(self.candidates),
            "dropped_candidates": list(self.dropped_candidates), "k": self.k, "explore": self.explore,
            "slate": [{"item_id": e.item_id, "position": e.position, "score": e.score, "propensity": e.propensity}
                      for e in self.slate],
            "slate_probability": self.slate_probability,
        }
        return json.dumps(payload, separators=(",", ":"), allow_nan=False)


@dataclass(frozen=True)
class FeedbackRecord:
    impression_id: str
    item_id: str
    position: int
    click: int
    reward: float
    ts: dt.datetime

    def to_json(self) -> str:
        return json.dumps({"impression_id": self.impression_id, "item_id": self.item_id, "position": self.position,
                           "click": self.click, "reward": self.reward, "ts": format_ts(self.ts)},
                          separators=(",", ":"), allow_nan=False)


def _get(payload: dict[str, Any], key: str, types: type | tuple[type, ...], nullable: bool = False) -> Any:
    if key not in payload:
        raise ValueError(f"{key}: missing")
    value = payload[key]
    if value is None and nullable:
        return None
    if isinstance(value, bool) and bool not in (types if isinstance(types, tuple) else (types,)):
        raise ValueError(f"{key}: expected {types}, got {value!r}")
    if not isinstance(value, types):
        raise ValueError(f"{key}: expected {getattr(types, '__name__', types)}, got {value!r}")
    return value


def _probability(value: Any, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (0.0 < float(value) <= 1.0):
        raise ValueError(f"{field}: expected a probability in (0, 1], got {value!r}")
    return float(value)


def _loads(line: str | bytes) -> dict[str, Any]:
    try:
        payload = json.loads(line)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"not a JSON line: {err}") from None
    if not isinstance(payload, dict):
        raise ValueError(f"expected a JSON object, got {type(payload).__name__}")
    return payload


def parse_impression(line: str | bytes) -> ImpressionRecord:
    """One impression line → record; ValueError names the field at fault."""
    payload = _loads(line)
    impression_id = _get(payload, "impression_id", str)
    if impression_day(impression_id) is None:
        raise ValueError(f"impression_id: expected YYYYMMDD-<32 hex digits>, got {impression_id!r}")
    context = _get(payload, "context", dict)
    for key, value in context.items():
        if isinstance(value, bool) or not (value is None or isinstance(value, (str, int, float))):
            raise ValueError(f"context.{key}: expected a string, a number or null, got {value!r}")
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"context.{key}: expected a finite number, got {value!r}")
    candidates = _get(payload, "candidates", list)
    if not candidates or not all(isinstance(c, str) for c in candidates):
        raise ValueError("candidates: expected a non-empty list of item id strings")
    k = _get(payload, "k", int)
    slate_raw = _get(payload, "slate", list)
    if len(slate_raw) != k or k < 1:
        raise ValueError(f"slate: expected k = {k} entries, got {len(slate_raw)}")
    slate = []
    for position, entry in enumerate(slate_raw):
        where = f"slate[{position}]"
        if not isinstance(entry, dict):
            raise ValueError(f"{where}: expected an object")
        item_id = entry.get("item_id")
        if not isinstance(item_id, str) or item_id not in candidates:
            raise ValueError(f"{where}.item_id: expected one of the candidates, got {item_id!r}")
        if entry.get("position") != position:
            raise ValueError(f"{where}.position: expected {position}, got {entry.get('position')!r}")
        score = entry.get("score")
        if isinstance(score, bool) or not isinstance(score, (int, float)) or not math.isfinite(score):
            raise ValueError(f"{where}.score: expected a finite number, got {score!r}")
        slate.append(SlateEntryRecord(item_id, position, float(score),
                                      _probability(entry.get("propensity"), f"{where}.propensity")))
    if len({e.item_id for e in slate}) != len(slate):
        raise ValueError("slate: an item appears twice")
    step = _get(payload, "step", int, nullable=True)
    if step is not None and step < 0:
        raise ValueError(f"step: expected >= 0, got {step}")
    return ImpressionRecord(
        impression_id=impression_id, ts=parse_ts(payload.get("ts"), "ts"),
        room_id=_get(payload, "room_id", str), policy=_get(payload, "policy", str),
        registered_version=str(_get(payload, "registered_version", str)), model_tag=_get(payload, "model_tag", str),
        session_id=_get(payload, "session_id", str, nullable=True), step=step,
        viewer_id=_get(payload, "viewer_id", str, nullable=True), context=context,
        candidates=tuple(candidates), dropped_candidates=tuple(_get(payload, "dropped_candidates", list)),
        k=k, explore=_get(payload, "explore", dict), slate=tuple(slate),
        slate_probability=_probability(payload.get("slate_probability"), "slate_probability"))


def parse_feedback(line: str | bytes) -> FeedbackRecord:
    """One feedback line → record; ValueError names the field at fault."""
    payload = _loads(line)
    click = _get(payload, "click", int)
    if click not in (0, 1):
        raise ValueError(f"click: expected 0 or 1, got {click!r}")
    reward = _get(payload, "reward", (int, float))
    if not math.isfinite(reward) or reward < 0:
        raise ValueError(f"reward: expected a finite number >= 0, got {reward!r}")
    position = _get(payload, "position", int)
    if position < 0:
        raise ValueError(f"position: expected >= 0, got {position}")
    return FeedbackRecord(impression_id=_get(payload, "impression_id", str), item_id=_get(payload, "item_id", str),
                          position=position, click=click, reward=float(reward), ts=parse_ts(payload.get("ts"), "ts"))
