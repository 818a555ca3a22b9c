"""Canonical logged feedback → the pieces OPE needs (impressions, candidates, keyed inputs).

A canonical log holds one row per (impression, position). Policies act per impression
(one context, one candidate set), estimators per row; :class:`ImpressionBatch` keeps
both views and the map between them. An impression's candidates are the ``candidates``
list on its position-0 row when logged, else every catalogue item of its room
(DESIGN.md), in stable item index order.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from liveslate.config import OpeRewardModelConfig
from liveslate.ope.inputs import ActionDist, LoggedRows, RewardPredictions, describe_rows
from liveslate.ope.reward_model import cross_fit_reward_model
from liveslate.policies.base import Candidates, Exploration, Policy
from liveslate.schema import context_columns


@dataclass(frozen=True, eq=False)
class ImpressionBatch:
    """n log rows of c impressions with m candidate columns.

    logs: the n canonical rows (index reset); impression_id: [c] unique ids;
    contexts: [c] rows of ctx_* columns (the position-0 row's, else the first row's);
    candidates: Candidates [c, m]; row_impression: [n] index into the impressions;
    logged_item: [n] stable item index of each row's item; candidate: [n] its column in
    the impression's candidate row.
    """

    logs: pd.DataFrame
    impression_id: np.ndarray
    contexts: pd.DataFrame
    candidates: Candidates
    row_impression: np.ndarray
    logged_item: np.ndarray
    candidate: np.ndarray

    @property
    def row_candidate_items(self) -> np.ndarray:
        """[n, m] item indices of each row's candidates (a copy per row: mind memory at scale)."""
        return self.candidates.items[self.row_impression]


def _candidate_lists(first_rows: pd.DataFrame, catalog: pd.DataFrame, index: pd.Index) -> Candidates:
    """Logged candidate lists where present, whole rooms elsewhere."""
    rooms = Candidates.whole_rooms(first_rows["room_id"].astype(str).to_numpy(), catalog, index)
    if "candidates" not in first_rows.columns:
        return rooms
    logged = first_rows["candidates"].to_numpy(dtype=object)
    has_list = np.array([value is not None and not (np.isscalar(value) and pd.isna(value)) for value in logged])
    if not has_list.any():
        return rooms
    lists = []
    for i, value in enumerate(logged):
        if not has_list[i]:
            lists.append(rooms.items[i, rooms.mask[i]].tolist())
            continue
        found = index.get_indexer(pd.Index([str(v) for v in value]))
        if (found < 0).any():
            unknown = [str(v) for v, f in zip(value, found) if f < 0][:5]
            raise ValueError(f"logs: impression {first_rows['impression_id'].iloc[i]!r} lists candidate(s) {unknown} "
                             "that are not in the item index")
        lists.append(found.tolist())
    return Candidates.from_lists(lists)


def prepare(logs: pd.DataFrame, catalog: pd.DataFrame, index: pd.Index) -> ImpressionBatch:
    """Group canonical ``logs`` by impression and locate every logged item among its candidates.

    Errors name the rows: an item missing from the item index, a logged item that is not
    one of its impression's candidates.
    """
    for column in ("impression_id", "position", "item_id", "room_id", "reward", "propensity"):
        if column not in logs.columns:
            raise ValueError(f"logs: missing column {column!r}")
    if logs.empty:
        raise ValueError("logs: no rows")
    logs = logs.reset_index(drop=True)
    ids = logs["impression_id"].astype(str).to_numpy(dtype=object)
    positions = logs["position"].to_numpy(dtype=np.int64)
    row_impression, impression_id = pd.factorize(ids)
    # Each impression's context and candidates come from its lowest-position row.
    order = np.lexsort((positions, row_impression))
    first = order[np.r_[True, row_impression[order][1:] != row_impression[order][:-1]]]
    first_rows = logs.iloc[first].reset_index(drop=True)
    candidates = _candidate_lists(first_rows, catalog, index)
    logged_item = index.get_indexer(logs["item_id"].astype(str).to_numpy(dtype=object))
    unknown = logged_item < 0
    if unknown.any():
        raise ValueError(f"logs.item_id: not in the item index at {describe_rows(ids, positions, unknown)}")
    row_items = candidates.items[row_impression]
    match = (row_items == logged_item[:, None]) & candidates.mask[row_impression]
    absent = ~match.any(axis=1)
    if absent.any():
        raise ValueError(f"logs.item_id: the logged item is not among its impression's candidates at "
                         f"{describe_rows(ids, positions, absent)}")
    return ImpressionBatch(
        logs=logs, impression_id=np.asarray(impression_id, dtype=object),
        contexts=first_rows[context_columns(first_rows)], candidates=candidates,
        row_impression=row_impression.astype(np.int64), logged_item=logged_item.astype(np.int64),
        candidate=match.argmax(axis=1).astype(np.int64))


def logged_rows(batch: ImpressionBatch) -> LoggedRows:
    """The keyed :class:`LoggedRows` of a batch (reward and logging propensity per row)."""
    return LoggedRows(
        impression_id=batch.logs["impression_id"].astype(str).to_numpy(dtype=object),
        position=batch.logs["position"].to_numpy(dtype=np.int64), candidate=batch.candidate,
        reward=batch.logs["reward"].to_numpy(dtype=np.float64),
        propensity=batch.logs["propensity"].to_numpy(dtype=np.float64))


def policy_action_dist(policy: Policy, batch: ImpressionBatch, k: int,
                       explore: Exploration = Exploration()) -> ActionDist:
    """``policy.action_dist`` on the batch's impressions, keyed by impression id ([c, m, k])."""
    values = policy.action_dist(batch.contexts, batch.candidates, k, explore)
    return ActionDist.per_impression(batch.impression_id, values, mask=batch.candidates.mask)


def reward_predictions(batch: ImpressionBatch, n_items: int, config: OpeRewardModelConfig, seed: int,
                       fold_groups: np.ndarray | None = None) -> RewardPredictions:
    """Cross-fitted reward-model predictions for every candidate of every row (see reward_model)."""
    return cross_fit_reward_model(batch.logs, batch.logged_item, batch.row_candidate_items, n_items, config, seed,
                                  fold_groups=fold_groups)
