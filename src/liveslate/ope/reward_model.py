"""Cross-fitted reward model q̂(x, item, position) for DM and the DR family.

Choice: an L2-regularised **main-effects** generalised linear model on one-hot context
features, a one-hot of the item (the stable item index) and a one-hot of the position —
logistic for 0/1 rewards (clicks), ridge for other rewards. Why this model:
- clicks are rare (~0.4 % on OBD), so a model with interactions would mostly fit noise;
  the main effects already carry what the data can support (item popularity, position
  bias, viewer segment);
- the logit is additive, logit q̂(x, j, p) = b + u(x) + v_p + w_j, so predicting every
  candidate of a million rows is a broadcast u + v + w[items], not a million model calls;
- it fits in seconds on a million rows, so the benchmark can refit it per resample.

Cross-fitting: impressions are split into K folds (seeded); each fold's predictions come
from the model fitted on the other K − 1 folds, so DR never corrects a row with a model
that saw that row's reward (that would bias the correction towards zero). Rows of one
impression — and bootstrap duplicates of a row, which keep its impression id — always
fall in the same fold. K is recorded in the returned :class:`RewardPredictions`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import sparse

from liveslate.config import OpeRewardModelConfig
from liveslate.ope.inputs import RewardPredictions
from liveslate.schema import context_columns

MISSING = "<missing>"


def fold_of_impressions(impression_id: np.ndarray, folds: int, seed: int) -> np.ndarray:
    """[n] fold 0..K−1 of each row; every row of an impression gets the same fold."""
    codes, uniques = pd.factorize(np.asarray(impression_id, dtype=object))
    if len(uniques) < folds:
        raise ValueError(f"reward_model: {len(uniques)} impression(s) cannot fill {folds} cross-fitting folds")
    rank = np.random.default_rng(seed).permutation(len(uniques))
    return (rank % folds)[codes]


class _ContextEncoder:
    """ctx_* columns → sparse design block: one-hot strings (unknown → all zero), standardised numbers."""

    def __init__(self, frame: pd.DataFrame):
        self.categorical = [c for c in context_columns(frame) if not pd.api.types.is_numeric_dtype(frame[c])]
        self.numeric = [c for c in context_columns(frame) if pd.api.types.is_numeric_dtype(frame[c])]
        self.levels = {c: pd.Index(pd.unique(self._strings(frame[c]))) for c in self.categorical}
        self.mean = {c: float(frame[c].mean()) if frame[c].notna().any() else 0.0 for c in self.numeric}
        self.scale = {c: (float(frame[c].std()) or 1.0) if frame[c].notna().sum() > 1 else 1.0 for c in self.numeric}
        self.width = sum(len(v) for v in self.levels.values()) + len(self.numeric)

    @staticmethod
    def _strings(column: pd.Series) -> np.ndarray:
        return column.astype("string").fillna(MISSING).to_numpy(dtype=object)

    def transform(self, frame: pd.DataFrame) -> sparse.csr_matrix:
        n = len(frame)
        blocks = []
        for column in self.categorical:
            index = self.levels[column].get_indexer(self._strings(frame[column]))
            known = index >= 0
            blocks.append(sparse.csr_matrix((np.ones(known.sum()), (np.flatnonzero(known), index[known])),
                                            shape=(n, len(self.levels[column]))))
        if self.numeric:
            values = np.column_stack([((frame[c].astype(float) - self.mean[c]) / self.scale[c]).fillna(0.0)
                                      for c in self.numeric])
            blocks.append(sparse.csr_matrix(values))
        return sparse.hstack(blocks, format="csr") if blocks else sparse.csr_matrix((n, 0))


def _one_hot(index: np.ndarray, width: int) -> sparse.csr_matrix:
    return sparse.csr_matrix((np.ones(len(index)), (np.arange(len(index)), index)), shape=(len(index), width))


@dataclass(frozen=True)
class _FittedModel:
    """Additive score s(x, j, p) = intercept + context part + position[p] + item[j] on the link scale."""

    encoder: _ContextEncoder
    intercept: float
    context: np.ndarray
    position: np.ndarray
    item: np.ndarray
    logistic: bool

    def predict(self, frame: pd.DataFrame, positions: np.ndarray, candidate_items: np.ndarray) -> np.ndarray:
        base = self.intercept + self.encoder.transform(frame) @ self.context + self.position[positions]
        score = self.item[candidate_items]
        score += base[:, None]
        if self.logistic:
            # In place: the [n, m] array is the largest thing this module holds.
            np.negative(score, out=score)
            np.exp(score, out=score)
            score += 1.0
            np.reciprocal(score, out=score)
        return score


def _fit(frame: pd.DataFrame, positions: np.ndarray, items: np.ndarray, reward: np.ndarray, n_items: int,
         n_positions: int, logistic: bool, config: OpeRewardModelConfig) -> _FittedModel:
    from sklearn.linear_model import LogisticRegression, Ridge

    encoder = _ContextEncoder(frame)
    design = sparse.hstack([encoder.transform(frame), _one_hot(positions, n_positions), _one_hot(items, n_items)],
                           format="csr")
    width = encoder.width
    if np.all(reward == reward[0]):
        # A constant training reward (e.g. no click in the fold) cannot fit a classifier; predict
        # the smoothed rate (Σr + ½) / (n + 1) — never exactly 0 or 1 — or the constant for ridge.
        coef = np.zeros(design.shape[1])
        if logistic:
            rate = (reward.sum() + 0.5) / (len(reward) + 1.0)
            intercept = float(np.log(rate / (1.0 - rate)))
        else:
            intercept = float(reward[0])
    elif logistic:
        model = LogisticRegression(C=1.0 / config.l2, max_iter=config.max_iter)
        model.fit(design, reward.astype(int))
        intercept, coef = float(model.intercept_[0]), model.coef_[0]
    else:
        model = Ridge(alpha=config.l2)
        model.fit(design, reward)
        intercept, coef = float(model.intercept_), np.asarray(model.coef_)
    return _FittedModel(encoder=encoder, intercept=intercept, context=coef[:width],
                        position=coef[width: width + n_positions], item=coef[width + n_positions:],
                        logistic=logistic)


def cross_fit_reward_model(logs: pd.DataFrame, logged_item: np.ndarray, candidate_items: np.ndarray, n_items: int,
                           config: OpeRewardModelConfig, seed: int,
                           reward_range: tuple[float, float] = (0.0, 1.0),
                           fold_groups: np.ndarray | None = None) -> RewardPredictions:
    """Cross-fitted q̂ for every candidate of every logged row, at the row's logged position.

    logs: canonical log rows (impression_id, position, reward, ctx_*), n rows;
    logged_item: [n] item index of the logged item; candidate_items: [n, m] item indices
    of each row's candidates (padding: any valid index); n_items: size of the item index.
    fold_groups: [n] keys that must share a fold (default: the impression id); a bootstrap
    resample passes the original impression of each copy so duplicates never straddle folds.
    Returns predictions [n, m] in reward units keyed by the rows' (impression_id, position).
    """
    n = len(logs)
    logged_item = np.asarray(logged_item, dtype=np.int64)
    candidate_items = np.asarray(candidate_items, dtype=np.int64)
    if logged_item.shape != (n,) or candidate_items.ndim != 2 or candidate_items.shape[0] != n:
        raise ValueError(f"reward_model: expected logged_item [{n}] and candidate_items [{n}, m], "
                         f"got {logged_item.shape} and {candidate_items.shape}")
    for what, index in (("logged_item", logged_item), ("candidate_items", candidate_items)):
        if index.size and (index.min() < 0 or index.max() >= n_items):
            raise ValueError(f"reward_model.{what}: item index outside [0, {n_items})")
    reward = logs["reward"].to_numpy(dtype=np.float64)
    if not np.isfinite(reward).all():
        raise ValueError(f"reward_model: non-finite reward at row index(es) {np.flatnonzero(~np.isfinite(reward))[:5].tolist()}")
    positions = logs["position"].to_numpy(dtype=np.int64)
    n_positions = int(positions.max()) + 1
    logistic = bool(np.isin(reward, (0.0, 1.0)).all())
    impression_id = logs["impression_id"].to_numpy(dtype=object)
    groups = impression_id if fold_groups is None else np.asarray(fold_groups, dtype=object)
    if groups.shape != (n,):
        raise ValueError(f"reward_model.fold_groups: expected {n} keys, got shape {groups.shape}")
    fold = fold_of_impressions(groups, config.folds, seed)
    predictions = np.empty(candidate_items.shape, dtype=np.float64)
    for k in range(config.folds):
        held_out = fold == k
        train = ~held_out
        model = _fit(logs.loc[train], positions[train], logged_item[train], reward[train], n_items, n_positions,
                     logistic, config)
        predictions[held_out] = model.predict(logs.loc[held_out], positions[held_out], candidate_items[held_out])
    if not logistic:
        np.clip(predictions, reward_range[0], reward_range[1], out=predictions)
    kind = "logistic" if logistic else "ridge"
    return RewardPredictions(
        impression_id=impression_id, position=positions, values=predictions, folds=config.folds,
        model=f"{kind} main effects (context one-hot + item + position), l2={config.l2}, K={config.folds}")
