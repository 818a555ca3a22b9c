"""Typed, validated and aligned inputs of the off-policy estimators.

Item-position logs (OBD style) have one row per (impression, position): the item the
logging policy showed there, its click/reward and the logging propensity. An estimator
needs three things per logged row, and each comes from a different producer:

- the logs themselves (:class:`LoggedRows`);
- the evaluation policy: its distribution over the row's candidates at the logged
  position (:class:`ActionDist`), or only its probability of the logged item there
  (:class:`EvaluationProbability`, enough for the importance-sampling estimators);
- optionally a reward model's prediction for every candidate at the logged position
  (:class:`RewardPredictions`, needed by DM and the DR family).

Every producer carries its own keys, and :func:`align` joins them on
``(impression_id, position)`` — never by length or order — so predictions made for
another split, or an action distribution computed for other impressions, are refused
with the offending rows named instead of being silently paired with the wrong rows.

Memory: ``Policy.action_dist`` returns ``[n, m, k]``; for a million rows, 80 candidates
and 3 positions that is 1.9 GB of float64. Only the logged position's slice is ever
used, so the primary form is ``[n, m]`` keyed by (impression, position)
(:meth:`ActionDist.at_position`); the ``[n_impressions, m, k]`` form
(:meth:`ActionDist.per_impression`) is accepted and sliced at the logged positions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import pandas as pd

# A distribution must sum to 1 within this tolerance (float32 producers included).
SUM_TOLERANCE = 1e-6
# Error messages name at most this many offending rows, then the total count.
NAMED_ROWS = 5


def describe_rows(impression_id: np.ndarray, position: np.ndarray | None, bad: np.ndarray) -> str:
    """'N row(s), e.g. (impression 'a', position 0), ...' for the True entries of ``bad``."""
    where = np.flatnonzero(bad)
    shown = []
    for i in where[:NAMED_ROWS]:
        if position is None:
            shown.append(f"(impression {impression_id[i]!r})")
        else:
            shown.append(f"(impression {impression_id[i]!r}, position {int(position[i])})")
    more = f" and {len(where) - NAMED_ROWS} more" if len(where) > NAMED_ROWS else ""
    return f"{len(where)} row(s): {', '.join(shown)}{more}"


def _as_ids(values: Sequence[str] | np.ndarray, what: str) -> np.ndarray:
    ids = np.asarray(values, dtype=object)
    if ids.ndim != 1:
        raise ValueError(f"{what}.impression_id: expected a 1-d array, got shape {ids.shape}")
    missing = pd.isna(ids)
    if missing.any():
        raise ValueError(f"{what}.impression_id: null ids at row index(es) {np.flatnonzero(missing)[:NAMED_ROWS].tolist()}")
    return ids.astype(str).astype(object)


def _as_positions(values: Sequence[int] | np.ndarray, n: int, ids: np.ndarray, what: str) -> np.ndarray:
    position = np.asarray(values)
    if position.shape != (n,):
        raise ValueError(f"{what}.position: expected shape ({n},), got {position.shape}")
    if not np.issubdtype(position.dtype, np.integer):
        raise ValueError(f"{what}.position: expected integer slots, got dtype {position.dtype}")
    position = position.astype(np.int64)
    if (position < 0).any():
        raise ValueError(f"{what}.position: negative slot at {describe_rows(ids, position, position < 0)}")
    return position


def _as_float(values: Sequence[float] | np.ndarray, shape: tuple[int, ...], what: str) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    if array.shape != shape:
        raise ValueError(f"{what}: expected shape {shape}, got {array.shape}")
    return array


def _check_unique(ids: np.ndarray, position: np.ndarray | None, what: str) -> None:
    key = pd.factorize(ids)[0].astype(np.int64)
    if position is not None:
        key = key * (int(position.max(initial=0)) + 1) + position
    duplicated = pd.Index(key).duplicated(keep=False)
    if duplicated.any():
        key = "impression id" if position is None else "(impression id, position)"
        raise ValueError(f"{what}: {key} is not unique: {describe_rows(ids, position, duplicated)}")


def _check_mask(mask: np.ndarray | None, shape: tuple[int, int], ids: np.ndarray, position: np.ndarray | None,
                what: str) -> np.ndarray | None:
    if mask is None:
        return None
    mask = np.asarray(mask)
    if mask.shape != shape or mask.dtype != np.bool_:
        raise ValueError(f"{what}.mask: expected a bool array of shape {shape}, got {mask.dtype} {mask.shape}")
    empty = ~mask.any(axis=1)
    if empty.any():
        raise ValueError(f"{what}.mask: no real candidate at {describe_rows(ids, position, empty)}")
    return mask


@dataclass(frozen=True)
class LoggedRows:
    """Item-position logs, one entry per (impression, position) row.

    impression_id: [n] str; position: [n] int (0-based slot); candidate: [n] int, the
    column of the logged item in the row's candidate list (the columns of
    :class:`ActionDist` and :class:`RewardPredictions`); reward: [n] float; propensity:
    [n] float, P(logging policy shows this item at this position | context), in (0, 1].
    """

    impression_id: np.ndarray
    position: np.ndarray
    candidate: np.ndarray
    reward: np.ndarray
    propensity: np.ndarray

    def __post_init__(self) -> None:
        ids = _as_ids(self.impression_id, "logs")
        n = len(ids)
        if n == 0:
            raise ValueError("logs: no rows to evaluate")
        position = _as_positions(self.position, n, ids, "logs")
        candidate = np.asarray(self.candidate)
        if candidate.shape != (n,) or not np.issubdtype(candidate.dtype, np.integer):
            raise ValueError(f"logs.candidate: expected {n} integer candidate columns, got {candidate.dtype} {candidate.shape}")
        candidate = candidate.astype(np.int64)
        if (candidate < 0).any():
            raise ValueError(f"logs.candidate: negative column at {describe_rows(ids, position, candidate < 0)}")
        reward = _as_float(self.reward, (n,), "logs.reward")
        bad = ~np.isfinite(reward)
        if bad.any():
            raise ValueError(f"logs.reward: non-finite value at {describe_rows(ids, position, bad)}")
        propensity = _as_float(self.propensity, (n,), "logs.propensity")
        bad = ~(np.isfinite(propensity) & (propensity > 0.0) & (propensity <= 1.0))
        if bad.any():
            raise ValueError(f"logs.propensity: expected a probability in (0, 1] at {describe_rows(ids, position, bad)}")
        _check_unique(ids, position, "logs")
        for name, value in (("impression_id", ids), ("position", position), ("candidate", candidate),
                            ("reward", reward), ("propensity", propensity)):
            object.__setattr__(self, name, value)

    def __len__(self) -> int:
        return len(self.impression_id)


@dataclass(frozen=True)
class ActionDist:
    """The evaluation policy's distribution over each row's candidates.

    Two layouts (build them with the class methods):
    - ``at_position``: values [r, m] = P(candidate j at ``position[i]``), keyed by
      (impression_id, position) — the primary, memory-light form;
    - ``per_impression``: values [r, m, k] = ``Policy.action_dist`` output, keyed by
      impression_id; the logged position selects the slice.
    Each position's column sums to 1 over the real candidates and is 0 on padding
    (``mask`` [r, m], True = real candidate; None = all real).
    """

    impression_id: np.ndarray
    values: np.ndarray
    position: np.ndarray | None = None
    mask: np.ndarray | None = None

    @classmethod
    def at_position(cls, impression_id: Sequence[str] | np.ndarray, position: Sequence[int] | np.ndarray,
                    values: np.ndarray, mask: np.ndarray | None = None) -> "ActionDist":
        return cls(impression_id=np.asarray(impression_id, dtype=object), values=values,
                   position=np.asarray(position), mask=mask)

    @classmethod
    def per_impression(cls, impression_id: Sequence[str] | np.ndarray, values: np.ndarray,
                       mask: np.ndarray | None = None) -> "ActionDist":
        return cls(impression_id=np.asarray(impression_id, dtype=object), values=values, position=None, mask=mask)

    def __post_init__(self) -> None:
        ids = _as_ids(self.impression_id, "action_dist")
        values = np.asarray(self.values, dtype=np.float64)
        expected_ndim = 2 if self.position is not None else 3
        if values.ndim != expected_ndim or values.shape[0] != len(ids):
            layout = "[rows, candidates]" if expected_ndim == 2 else "[impressions, candidates, positions]"
            raise ValueError(f"action_dist: expected {layout} with {len(ids)} rows, got shape {values.shape}")
        position = None if self.position is None else _as_positions(self.position, len(ids), ids, "action_dist")
        mask = _check_mask(self.mask, values.shape[:2], ids, position, "action_dist")
        _check_distribution(values, mask, ids, position)
        _check_unique(ids, position, "action_dist")
        object.__setattr__(self, "impression_id", ids)
        object.__setattr__(self, "values", values)
        object.__setattr__(self, "position", position)
        object.__setattr__(self, "mask", mask)


def _check_distribution(values: np.ndarray, mask: np.ndarray | None, ids: np.ndarray,
                        position: np.ndarray | None) -> None:
    """Finite, non-negative, zero on padding, summing to 1 per position; errors name the rows."""
    spread = (lambda a: a) if values.ndim == 2 else (lambda a: a.any(axis=-1))
    bad = spread(~np.isfinite(values)).any(axis=1)
    if bad.any():
        raise ValueError(f"action_dist: non-finite entry at {describe_rows(ids, position, bad)}")
    bad = spread(values < 0.0).any(axis=1)
    if bad.any():
        raise ValueError(f"action_dist: negative entry at {describe_rows(ids, position, bad)}")
    if mask is not None:
        padded = values * (~mask if values.ndim == 2 else ~mask[:, :, None])
        bad = spread(padded > 0.0).any(axis=1)
        if bad.any():
            raise ValueError(f"action_dist: probability on a padded (masked) candidate at {describe_rows(ids, position, bad)}")
    totals = values.sum(axis=1)  # [r] or [r, k]
    off_cells = np.abs(totals - 1.0) > SUM_TOLERANCE
    off = off_cells.any(axis=1) if off_cells.ndim == 2 else off_cells
    if off.any():
        first = np.flatnonzero(off)[0]
        if off_cells.ndim == 2:
            slot = int(np.flatnonzero(off_cells[first])[0])
            example = f"position {slot} sums to {round(float(totals[first, slot]), 6)}"
        else:
            example = f"sum {round(float(totals[first]), 6)}"
        raise ValueError(f"action_dist: not a distribution over candidates ({example} instead of 1) at "
                         f"{describe_rows(ids, position, off)}")


@dataclass(frozen=True)
class EvaluationProbability:
    """π_e(logged item | context, logged position) per row, keyed by (impression_id, position).

    probability: [r] float in [0, 1]. Enough for IPS, clipped IPS and SNIPS; DM and the
    DR family need the whole distribution (:class:`ActionDist`).
    """

    impression_id: np.ndarray
    position: np.ndarray
    probability: np.ndarray

    def __post_init__(self) -> None:
        ids = _as_ids(self.impression_id, "evaluation_probability")
        position = _as_positions(self.position, len(ids), ids, "evaluation_probability")
        probability = _as_float(self.probability, (len(ids),), "evaluation_probability.probability")
        bad = ~(np.isfinite(probability) & (probability >= 0.0) & (probability <= 1.0))
        if bad.any():
            raise ValueError(f"evaluation_probability: expected a probability in [0, 1] at {describe_rows(ids, position, bad)}")
        _check_unique(ids, position, "evaluation_probability")
        object.__setattr__(self, "impression_id", ids)
        object.__setattr__(self, "position", position)
        object.__setattr__(self, "probability", probability)


@dataclass(frozen=True)
class RewardPredictions:
    """A reward model's prediction for every candidate at each row's logged position.

    values: [r, m] float (reward units), keyed by (impression_id, position); padded
    candidates must still hold a finite number (their weight is 0). ``folds`` is the
    number of cross-fitting folds (0 = not cross-fitted), ``model`` a short description.
    """

    impression_id: np.ndarray
    position: np.ndarray
    values: np.ndarray
    folds: int = 0
    model: str = "unspecified"

    def __post_init__(self) -> None:
        ids = _as_ids(self.impression_id, "reward_predictions")
        position = _as_positions(self.position, len(ids), ids, "reward_predictions")
        values = np.asarray(self.values, dtype=np.float64)
        if values.ndim != 2 or values.shape[0] != len(ids):
            raise ValueError(f"reward_predictions: expected [rows, candidates] with {len(ids)} rows, got {values.shape}")
        bad = ~np.isfinite(values).all(axis=1)
        if bad.any():
            raise ValueError(f"reward_predictions: non-finite prediction at {describe_rows(ids, position, bad)}")
        _check_unique(ids, position, "reward_predictions")
        object.__setattr__(self, "impression_id", ids)
        object.__setattr__(self, "position", position)
        object.__setattr__(self, "values", values)


@dataclass(frozen=True)
class OPEInputs:
    """Everything an estimator reads, row i of every array being logged row i.

    Built by :func:`align`. Shapes: n logged rows, m candidate columns.
    evaluation_probability [n] = π_e(logged item | x, logged position);
    action_dist [n, m] and reward_hat [n, m] at the logged position (None when not given);
    reward_range = (low, high) of a single reward, used to flag implausible estimates.
    """

    logs: LoggedRows
    evaluation_probability: np.ndarray
    action_dist: np.ndarray | None = None
    reward_hat: np.ndarray | None = None
    reward_model: str = "none"
    reward_model_folds: int = 0
    reward_range: tuple[float, float] = (0.0, 1.0)
    _cache: dict = field(default_factory=dict, repr=False, compare=False)

    def __len__(self) -> int:
        return len(self.logs)

    @property
    def reward(self) -> np.ndarray:
        return self.logs.reward

    @property
    def importance_weight(self) -> np.ndarray:
        """[n] π_e(a_i | x_i, p_i) / π_b(a_i | x_i, p_i)."""
        if "weight" not in self._cache:
            self._cache["weight"] = self.evaluation_probability / self.logs.propensity
        return self._cache["weight"]

    def require_reward_model(self, estimator: str) -> tuple[np.ndarray, np.ndarray]:
        """(q̂ of the logged item [n], Σ_j π_e(j) q̂(j) [n]) or an error naming what is missing."""
        if self.action_dist is None:
            raise ValueError(f"{estimator}: needs the evaluation policy's whole action_dist, "
                             "not only the probability of the logged item")
        if self.reward_hat is None:
            raise ValueError(f"{estimator}: needs reward-model predictions (RewardPredictions) for every candidate")
        if "dm" not in self._cache:
            rows = np.arange(len(self))
            self._cache["logged_hat"] = self.reward_hat[rows, self.logs.candidate]
            # einsum keeps the [n, m] product out of memory.
            self._cache["dm"] = np.einsum("ij,ij->i", self.action_dist, self.reward_hat)
        return self._cache["logged_hat"], self._cache["dm"]

    def impression_codes(self) -> np.ndarray:
        """[n] int codes of impression ids: the resampling unit of the bootstrap."""
        if "codes" not in self._cache:
            self._cache["codes"] = pd.factorize(self.logs.impression_id)[0].astype(np.int64)
        return self._cache["codes"]


def _row_lookup(ref_ids: np.ndarray, ref_pos: np.ndarray | None, other_ids: np.ndarray,
                other_pos: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """(indexer [n_ref] into other, -1 = absent; used [n_other] bool) by (id[, position]) keys."""
    codes, _ = pd.factorize(np.concatenate([ref_ids, other_ids]))
    codes = codes.astype(np.int64)
    ref_codes, other_codes = codes[: len(ref_ids)], codes[len(ref_ids):]
    if ref_pos is not None and other_pos is not None:
        span = int(max(ref_pos.max(initial=0), other_pos.max(initial=0))) + 1
        ref_codes = ref_codes * span + ref_pos
        other_codes = other_codes * span + other_pos
    indexer = pd.Index(other_codes).get_indexer(ref_codes)
    used = np.zeros(len(other_ids), dtype=bool)
    used[indexer[indexer >= 0]] = True
    return indexer, used


def _aligned(logs: LoggedRows, ids: np.ndarray, position: np.ndarray | None, what: str) -> np.ndarray:
    """Indexer from logged rows into a producer's rows; any unmatched key on either side is an error."""
    indexer, used = _row_lookup(logs.impression_id, logs.position if position is not None else None, ids, position)
    missing = indexer < 0
    if missing.any():
        raise ValueError(f"{what}: no entry for logged {describe_rows(logs.impression_id, logs.position, missing)} "
                         "(keys must be the logged (impression_id, position) pairs of this split)")
    if not used.all():
        raise ValueError(f"{what}: keyed by rows that are not in these logs — another split? "
                         f"{describe_rows(ids, position, ~used)}")
    return indexer


def _take(values: np.ndarray, indexer: np.ndarray) -> np.ndarray:
    """values[indexer] without copying when the producer's rows are already in log order."""
    if len(indexer) == len(values) and (indexer == np.arange(len(indexer))).all():
        return values
    return values[indexer]


def align(logs: LoggedRows, evaluation: ActionDist | EvaluationProbability,
          reward_predictions: RewardPredictions | None = None,
          reward_range: tuple[float, float] = (0.0, 1.0)) -> OPEInputs:
    """Join the producers on the logged (impression_id, position) keys → :class:`OPEInputs`.

    Errors name the rows: a logged row without an entry, an entry for a row not in the
    logs (e.g. predictions made for another split), a logged item in a padded column,
    a candidate column beyond the distribution's width.
    """
    low, high = reward_range
    if not (np.isfinite(low) and np.isfinite(high) and low < high):
        raise ValueError(f"reward_range: expected finite low < high, got {reward_range}")
    out_of_range = (logs.reward < low) | (logs.reward > high)
    if out_of_range.any():
        raise ValueError(f"logs.reward: outside the reward range [{low}, {high}] at "
                         f"{describe_rows(logs.impression_id, logs.position, out_of_range)}")
    action_dist = None
    if isinstance(evaluation, ActionDist):
        indexer = _aligned(logs, evaluation.impression_id, evaluation.position, "action_dist")
        width = evaluation.values.shape[1]
        beyond = logs.candidate >= width
        if beyond.any():
            raise ValueError(f"logs.candidate: column beyond the {width} candidates of action_dist at "
                             f"{describe_rows(logs.impression_id, logs.position, beyond)}")
        if evaluation.position is None:
            depth = evaluation.values.shape[2]
            deep = logs.position >= depth
            if deep.any():
                raise ValueError(f"logs.position: action_dist covers {depth} positions only; "
                                 f"{describe_rows(logs.impression_id, logs.position, deep)}")
            action_dist = evaluation.values[indexer, :, logs.position]
        else:
            action_dist = _take(evaluation.values, indexer)
        if evaluation.mask is not None:
            mask_rows = _take(evaluation.mask, indexer)
            padded = ~mask_rows[np.arange(len(logs)), logs.candidate]
            if padded.any():
                raise ValueError(f"logs.candidate: the logged item sits in a padded candidate column at "
                                 f"{describe_rows(logs.impression_id, logs.position, padded)}")
        probability = action_dist[np.arange(len(logs)), logs.candidate]
    elif isinstance(evaluation, EvaluationProbability):
        indexer = _aligned(logs, evaluation.impression_id, evaluation.position, "evaluation_probability")
        probability = _take(evaluation.probability, indexer)
    else:
        raise TypeError(f"evaluation: expected ActionDist or EvaluationProbability, got {type(evaluation).__name__}")
    reward_hat = None
    model, folds = "none", 0
    if reward_predictions is not None:
        indexer = _aligned(logs, reward_predictions.impression_id, reward_predictions.position, "reward_predictions")
        reward_hat = _take(reward_predictions.values, indexer)
        if action_dist is not None and reward_hat.shape[1] != action_dist.shape[1]:
            raise ValueError(f"reward_predictions: {reward_hat.shape[1]} candidate columns, "
                             f"action_dist has {action_dist.shape[1]}")
        beyond = logs.candidate >= reward_hat.shape[1]
        if beyond.any():
            raise ValueError(f"logs.candidate: column beyond the {reward_hat.shape[1]} predicted candidates at "
                             f"{describe_rows(logs.impression_id, logs.position, beyond)}")
        model, folds = reward_predictions.model, reward_predictions.folds
    return OPEInputs(logs=logs, evaluation_probability=np.asarray(probability, dtype=np.float64),
                     action_dist=action_dist, reward_hat=reward_hat, reward_model=model,
                     reward_model_folds=folds, reward_range=(float(low), float(high)))
