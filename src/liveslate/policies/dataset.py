"""Canonical logs → arrays the models train on.

Two views of the same logs:

- ``LoggedRows``: one entry per logged (impression, position) row — what a click model
  such as DeepFM fits.
- ``Transitions``: one entry per impression (a shown slate), ordered by time; within a
  session (``session_id`` non-null, ordered by ``step``) each impression points to the
  next one as its successor (``next_index``) — the logged next slate of SARSA targets.
  The last impression of a session and every impression of a one-step log
  (``session_id`` null, as in OBD) are terminal (``done``, ``next_index`` = −1).

Item ids are mapped to the catalogue's stable item index (``schema.item_index``), so a
log that lacks some items or a catalogue that gained new ones never shifts indices.
Contexts are encoded with encoders fitted on the training split (``encoders.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from liveslate.policies.base import Candidates
from liveslate.policies.encoders import FeatureEncoder

PAD_ITEM = -1  # slate_items entry of a position the impression did not log


def item_positions(item_ids: pd.Series, index: pd.Index, where: str = "logs") -> np.ndarray:
    """[n] int64 stable item indices of ``item_ids``; raises ValueError naming the first unknown row."""
    positions = index.get_indexer(item_ids.astype(str).to_numpy())
    if (positions < 0).any():
        row = int(np.flatnonzero(positions < 0)[0])
        raise ValueError(f"{where} row {row}: item_id {item_ids.iloc[row]!r} is not in the catalogue's item index")
    return positions.astype(np.int64)


@dataclass(frozen=True, eq=False)
class LoggedRows:
    """One entry per logged row.

    context_codes [N, n_cat] int64 (0 = unknown), context_values [N, n_num] float32,
    items [N] int64 stable item index, positions [N] int64 slot, clicks [N] float32,
    rewards [N] float32, propensities [N] float64, room_ids [N] str.
    """

    context_codes: np.ndarray
    context_values: np.ndarray
    items: np.ndarray
    positions: np.ndarray
    clicks: np.ndarray
    rewards: np.ndarray
    propensities: np.ndarray
    room_ids: np.ndarray

    def __len__(self) -> int:
        return int(self.items.shape[0])


def encode_rows(logs: pd.DataFrame, context_encoder: FeatureEncoder, index: pd.Index,
                where: str = "logs") -> LoggedRows:
    """Canonical logs → LoggedRows (row order kept)."""
    logs = logs.reset_index(drop=True)
    codes, values = context_encoder.transform(logs, where=where)
    return LoggedRows(
        context_codes=codes,
        context_values=values,
        items=item_positions(logs["item_id"], index, where),
        positions=logs["position"].to_numpy(dtype=np.int64),
        clicks=logs["click"].to_numpy(dtype=np.float32),
        rewards=logs["reward"].to_numpy(dtype=np.float32),
        propensities=logs["propensity"].to_numpy(dtype=np.float64),
        room_ids=logs["room_id"].astype(str).to_numpy(),
    )


@dataclass(frozen=True, eq=False)
class Transitions:
    """One entry per impression, in time order (T impressions, k slots).

    impression_ids [T] str, session_ids [T] str ("" for one-step logs), room_ids [T] str,
    context_codes [T, n_cat] int64, context_values [T, n_num] float32,
    slate_items [T, k] int64 (PAD_ITEM where the slot was not logged), slate_mask [T, k] bool,
    clicks [T, k] float32, rewards [T, k] float32, propensities [T, k] float64 (0 where not logged),
    next_index [T] int64: index of the next impression of the same session, −1 when terminal,
    done [T] bool = next_index < 0,
    candidates: the candidate set of each impression (the ``candidates`` column of its
    position-0 row, else the whole catalogue of its room); None when built without a catalogue.
    """

    impression_ids: np.ndarray
    session_ids: np.ndarray
    room_ids: np.ndarray
    context_codes: np.ndarray
    context_values: np.ndarray
    slate_items: np.ndarray
    slate_mask: np.ndarray
    clicks: np.ndarray
    rewards: np.ndarray
    propensities: np.ndarray
    next_index: np.ndarray
    done: np.ndarray
    candidates: Candidates | None = None

    def __len__(self) -> int:
        return int(self.impression_ids.shape[0])

    @property
    def next_slate_items(self) -> np.ndarray:
        """[T, k] the logged next slate (all PAD_ITEM on terminal transitions)."""
        out = self.slate_items[np.maximum(self.next_index, 0)].copy()
        out[self.done] = PAD_ITEM
        return out

    @property
    def next_slate_mask(self) -> np.ndarray:
        out = self.slate_mask[np.maximum(self.next_index, 0)].copy()
        out[self.done] = False
        return out


def build_transitions(logs: pd.DataFrame, context_encoder: FeatureEncoder, index: pd.Index, slate_size: int,
                      catalog: pd.DataFrame | None = None, where: str = "logs") -> Transitions:
    """Canonical logs → Transitions.

    Impressions are ordered by (first ts, impression_id). Raises ValueError naming the
    impression when one logs a position twice, a position outside 0..slate_size−1, a
    context that changes between its rows, or when a session repeats a step.
    """
    if logs.empty:
        raise ValueError(f"{where}: no rows to build transitions from")
    logs = logs.reset_index(drop=True)
    items = item_positions(logs["item_id"], index, where)
    positions = logs["position"].to_numpy(dtype=np.int64)
    bad = np.flatnonzero((positions < 0) | (positions >= slate_size))
    if bad.size:
        row = int(bad[0])
        raise ValueError(f"{where} row {row} (impression {logs['impression_id'].iloc[row]!r}): position "
                         f"{positions[row]} is outside 0..{slate_size - 1}")
    duplicated = logs.duplicated(["impression_id", "position"])
    if duplicated.any():
        row = int(np.flatnonzero(duplicated.to_numpy())[0])
        raise ValueError(f"{where} row {row}: impression {logs['impression_id'].iloc[row]!r} logs position "
                         f"{positions[row]} twice")

    # Impression order: time of its first row, then id (deterministic for equal times).
    impression_ids = logs["impression_id"].astype(str)
    first = logs.assign(_imp=impression_ids).groupby("_imp", sort=False)["ts"].min()
    order = first.reset_index().sort_values(["ts", "_imp"], kind="mergesort")["_imp"].to_numpy()
    n_impressions = len(order)
    slot = pd.Index(order).get_indexer(impression_ids.to_numpy())

    context_columns = context_encoder.columns
    head = logs.sort_values("position", kind="mergesort").drop_duplicates("impression_id")
    head = head.set_index(head["impression_id"].astype(str)).loc[order]
    if context_columns:
        per_impression = logs.assign(_imp=impression_ids)[["_imp", *context_columns]].astype("string")
        varying = per_impression.groupby("_imp", sort=False).nunique(dropna=False)
        if (varying > 1).to_numpy().any():
            impression = varying.index[(varying > 1).any(axis=1).to_numpy()][0]
            raise ValueError(f"{where}: impression {impression!r} has different context values on its rows")
    codes, values = context_encoder.transform(head.reset_index(drop=True), where=where)

    slate_items = np.full((n_impressions, slate_size), PAD_ITEM, dtype=np.int64)
    slate_mask = np.zeros((n_impressions, slate_size), dtype=bool)
    clicks = np.zeros((n_impressions, slate_size), dtype=np.float32)
    rewards = np.zeros((n_impressions, slate_size), dtype=np.float32)
    propensities = np.zeros((n_impressions, slate_size), dtype=np.float64)
    slate_items[slot, positions] = items
    slate_mask[slot, positions] = True
    clicks[slot, positions] = logs["click"].to_numpy(dtype=np.float32)
    rewards[slot, positions] = logs["reward"].to_numpy(dtype=np.float32)
    propensities[slot, positions] = logs["propensity"].to_numpy(dtype=np.float64)

    session_ids, next_index = _successors(head, where)
    candidates = None
    if catalog is not None:
        candidates = impression_candidates(head, catalog, index, where)
    return Transitions(
        impression_ids=np.asarray(order, dtype=object),
        session_ids=session_ids,
        room_ids=head["room_id"].astype(str).to_numpy(),
        context_codes=codes,
        context_values=values,
        slate_items=slate_items,
        slate_mask=slate_mask,
        clicks=clicks,
        rewards=rewards,
        propensities=propensities,
        next_index=next_index,
        done=next_index < 0,
        candidates=candidates,
    )


def _successors(head: pd.DataFrame, where: str) -> tuple[np.ndarray, np.ndarray]:
    """Per impression (rows of ``head`` in transition order): session id and next impression's index."""
    n = len(head)
    session = head["session_id"].astype("string") if "session_id" in head.columns else pd.Series(pd.NA, index=head.index)
    in_session = session.notna().to_numpy()
    next_index = np.full(n, -1, dtype=np.int64)
    session_ids = np.where(in_session, session.fillna("").astype(str).to_numpy(), "").astype(object)
    if in_session.any():
        steps = head["step"]
        missing = in_session & steps.isna().to_numpy()
        if missing.any():
            raise ValueError(f"{where}: impression {head.index[int(np.flatnonzero(missing)[0])]!r} has a "
                             "session_id but no step")
        frame = pd.DataFrame({"session": session_ids[in_session], "step": steps.to_numpy()[in_session].astype(np.int64),
                              "row": np.flatnonzero(in_session)})
        repeated = frame.duplicated(["session", "step"])
        if repeated.any():
            bad = frame[repeated].iloc[0]
            raise ValueError(f"{where}: session {bad['session']!r} has step {bad['step']} on more than one impression")
        frame = frame.sort_values(["session", "step"], kind="mergesort")
        following = frame.groupby("session", sort=False)["row"].shift(-1)
        has_next = following.notna().to_numpy()
        next_index[frame["row"].to_numpy()[has_next]] = following.to_numpy()[has_next].astype(np.int64)
    return session_ids, next_index


def impression_candidates(head: pd.DataFrame, catalog: pd.DataFrame, index: pd.Index,
                          where: str = "logs") -> Candidates:
    """Candidate set of each impression: its logged ``candidates`` list, else its room's catalogue."""
    rooms = Candidates.whole_rooms(head["room_id"].astype(str).tolist(), catalog, index)
    if "candidates" not in head.columns:
        return rooms
    lists = []
    for row, logged in enumerate(head["candidates"].tolist()):
        if logged is None or (isinstance(logged, float) and np.isnan(logged)):
            lists.append(rooms.items[row][rooms.mask[row]].tolist())
        else:
            ids = pd.Series([str(v) for v in logged])
            lists.append(item_positions(ids, index, f"{where} impression {head.index[row]!r} candidates").tolist())
    return Candidates.from_lists(lists)
