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

import functools
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


@dataclass(frozen=True)
class _Contexts:
    """ctx_* columns encoded once for all folds.

    codes: [n, c_cat] int codes of the categorical columns (missing is a level of its own);
    n_levels: [c_cat] levels per column; numeric: [n, c_num] float (NaN = missing).
    """

    codes: np.ndarray
    n_levels: np.ndarray
    numeric: np.ndarray

    @classmethod
    def of(cls, frame: pd.DataFrame) -> "_Contexts":
        columns = context_columns(frame)
        categorical = [c for c in columns if not pd.api.types.is_numeric_dtype(frame[c])]
        numeric = [c for c in columns if pd.api.types.is_numeric_dtype(frame[c])]
        codes, n_levels = [], []
        for column in categorical:
            values = frame[column].astype(object).to_numpy(dtype=object, na_value=MISSING)
            column_codes, uniques = pd.factorize(values)
            codes.append(column_codes)
            n_levels.append(len(uniques))
        n = len(frame)
        return cls(codes=np.column_stack(codes).astype(np.int64) if codes else np.zeros((n, 0), np.int64),
                   n_levels=np.array(n_levels, dtype=np.int64),
                   numeric=np.column_stack([frame[c].to_numpy(dtype=np.float64, na_value=np.nan) for c in numeric])
                   if numeric else np.zeros((n, 0)))

    def take(self, rows: np.ndarray) -> "_Contexts":
        return _Contexts(codes=self.codes[rows], n_levels=self.n_levels, numeric=self.numeric[rows])


@dataclass(frozen=True)
class _ContextEncoder:
    """Design block of the context, fitted on the training rows of a fold.

    Categorical levels absent from the training rows encode as all zero (the baseline), so
    a held-out row with a level the model never saw gets no made-up effect; numeric columns
    are standardised with the training mean and scale, missing → the mean.
    """

    columns: tuple[np.ndarray, ...]  # per categorical column: global code → design column, −1 = unseen
    mean: np.ndarray
    scale: np.ndarray
    width: int

    @classmethod
    def fit(cls, contexts: _Contexts) -> "_ContextEncoder":
        columns, offset = [], 0
        for j, n_levels in enumerate(contexts.n_levels):
            seen = np.zeros(n_levels, dtype=bool)
            seen[contexts.codes[:, j]] = True
            mapping = np.where(seen, np.cumsum(seen) - 1 + offset, -1)
            columns.append(mapping)
            offset += int(seen.sum())
        numeric = contexts.numeric
        with np.errstate(invalid="ignore"):
            present = np.isfinite(numeric).sum(axis=0)
            mean = np.where(present > 0, np.nansum(numeric, axis=0) / np.maximum(present, 1), 0.0)
            scale = np.sqrt(np.nansum((numeric - mean) ** 2, axis=0) / np.maximum(present - 1, 1))
        scale = np.where(scale > 0, scale, 1.0)
        return cls(columns=tuple(columns), mean=mean, scale=scale, width=offset + numeric.shape[1])

    def transform(self, contexts: _Contexts) -> sparse.csr_matrix:
        n = contexts.codes.shape[0]
        rows, cols = [], []
        for j, mapping in enumerate(self.columns):
            index = mapping[contexts.codes[:, j]]
            known = index >= 0
            rows.append(np.flatnonzero(known))
            cols.append(index[known])
        n_categorical = self.width - len(self.mean)
        rows_all = np.concatenate(rows) if rows else np.zeros(0, np.int64)
        block = sparse.csr_matrix((np.ones(len(rows_all)), (rows_all, np.concatenate(cols) if cols else rows_all)),
                                  shape=(n, n_categorical))
        if len(self.mean) == 0:
            return block
        values = np.nan_to_num((contexts.numeric - self.mean) / self.scale, nan=0.0)
        return sparse.hstack([block, sparse.csr_matrix(values)], format="csr")


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

    def predict(self, contexts: _Contexts, positions: np.ndarray, candidate_items: np.ndarray) -> np.ndarray:
        base = self.intercept + self.encoder.transform(contexts) @ self.context + self.position[positions]
        score = self.item[candidate_items]
        score += base[:, None]
        if self.logistic:
            # In place: the [n, m] array is the largest thing this module holds.
            np.negative(score, out=score)
            np.exp(score, out=score)
            score += 1.0
            np.reciprocal(score, out=score)
        return score


@functools.cache
def _blas_controller():
    """One threadpoolctl controller per process: finding the BLAS libraries costs ~20 ms a time."""
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


def _fit(contexts: _Contexts, positions: np.ndarray, items: np.ndarray, reward: np.ndarray, n_items: int,
         n_positions: int, logistic: bool, config: OpeRewardModelConfig) -> _FittedModel:
    from sklearn.linear_model import LogisticRegression, Ridge

    encoder = _ContextEncoder.fit(contexts)
    design = sparse.hstack([encoder.transform(contexts), _one_hot(positions, n_positions), _one_hot(items, n_items)],
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
    else:
        # The solver's BLAS calls are tiny (~100 coefficients): threads only contend for the
        # cores (10x slower on a busy 2-core machine), so one thread it is.
        with _blas_controller().limit(limits=1, user_api="blas"):
            if logistic:
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
    contexts = _Contexts.of(logs)
    predictions = np.empty(candidate_items.shape, dtype=np.float64)
    for k in range(config.folds):
        held_out = fold == k
        train = ~held_out
        model = _fit(contexts.take(train), positions[train], logged_item[train], reward[train], n_items, n_positions,
                     logistic, config)
        predictions[held_out] = model.predict(contexts.take(held_out), positions[held_out], candidate_items[held_out])
    if not logistic:
        np.clip(predictions, reward_range[0], reward_range[1], out=predictions)
    kind = "logistic" if logistic else "ridge"
    return RewardPredictions(
        impression_id=impression_id, position=positions, values=predictions, folds=config.folds,
        model=f"{kind} main effects (context one-hot + item + position), l2={config.l2}, K={config.folds}")
