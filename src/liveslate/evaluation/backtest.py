"""Rolling-origin backtest by UTC day: train on the days before d, evaluate on day d, pool.

With a few hundred clicks in a week of logs, one time split leaves tens of clicks to
test on. Here each day d after the first ``min_train_days`` is a fold: every policy is
(re)fitted on the rows before d (its newest ``valid_fraction`` held out for early
stopping) and scores day d's impressions. The test rows of all folds are then pooled
into one split — every click after the first training days is used once — and the
ranking metrics and the primary estimator are computed on the pool exactly as
``evaluate`` does (same queries, cross-fitted reward model, bootstrap).

Learned policies retrain with ``train.<name>`` overridden by
``backtest.train_overrides.<name>`` (a small budget) and without KG vectors unless
``backtest.use_kg_vectors`` (see BacktestConfig for why).
"""

from __future__ import annotations

import dataclasses
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm import tqdm

from liveslate.config import ConfigError, Params
from liveslate.evaluation.evaluate import EvaluationSetup, evaluate_policy, prepare_split, split_counts
from liveslate.evaluation.policy_set import reference_policy
from liveslate.policies.base import Policy


@dataclass(frozen=True)
class Fold:
    """One test day: the rows before it train, the rows on it test."""

    test_day: pd.Timestamp
    train_rows: int
    test_rows: int
    test_clicks: int

    def as_dict(self) -> dict[str, Any]:
        return {"test_day": self.test_day.strftime("%Y-%m-%d"), "train_rows": self.train_rows,
                "test_rows": self.test_rows, "test_clicks": self.test_clicks}


def log_days(logs: pd.DataFrame) -> pd.Series:
    """[n] the UTC calendar day (midnight timestamp) of each row's ``ts``."""
    ts = logs["ts"]
    if not isinstance(ts.dtype, pd.DatetimeTZDtype):
        raise ValueError(f"logs.ts: expected timezone-aware timestamps (UTC), got dtype {ts.dtype}")
    return ts.dt.tz_convert("UTC").dt.floor("D")


def day_folds(logs: pd.DataFrame, min_train_days: int) -> list[Fold]:
    """The folds: every day after the first ``min_train_days`` days of the logs."""
    days = log_days(logs)
    unique = sorted(days.unique())
    if len(unique) <= min_train_days:
        raise ValueError(f"backtest: the logs span {len(unique)} day(s); backtest.min_train_days = {min_train_days} "
                         "leaves no day to test on")
    folds = []
    for day in unique[min_train_days:]:
        on_day = (days == day).to_numpy()
        folds.append(Fold(test_day=pd.Timestamp(day), train_rows=int((days < day).sum()), test_rows=int(on_day.sum()),
                          test_clicks=int(logs.loc[on_day, "click"].sum())))
    return folds


def hold_out_newest(train: pd.DataFrame, fraction: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(fit rows, validation rows): the newest ``fraction`` of impressions validate; no impression is cut."""
    first_seen = train.groupby(train["impression_id"].astype(str))["ts"].transform("min")
    cut = first_seen.quantile(1.0 - fraction)
    valid = (first_seen > cut).to_numpy()
    if valid.all() or not valid.any():
        raise ValueError(f"backtest: cannot hold out {fraction:.0%} of {len(train)} training rows by time "
                         "(too few distinct timestamps)")
    return train.loc[~valid].reset_index(drop=True), train.loc[valid].reset_index(drop=True)


def budget_params(params: Params, name: str, overrides: dict[str, bool | int | float], use_kg: bool) -> Params:
    """``params`` with ``train.<name>`` overridden (unknown fields are ConfigErrors naming them)."""
    section = getattr(params.train, name, None)
    if section is None:
        raise ConfigError(f"backtest.policies: {name}: no train.{name} section")
    fields = {f.name for f in dataclasses.fields(section)}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise ConfigError(f"backtest.train_overrides.{name}.{unknown[0]}: not a field of train.{name} "
                          f"(expected one of {', '.join(sorted(fields))})")
    changes: dict[str, Any] = dict(overrides)
    if "use_kg" in fields and not use_kg:
        changes["use_kg"] = False
    try:
        section = dataclasses.replace(section, **changes)
        if hasattr(section, "check_ranges"):
            section.check_ranges(f"backtest.train_overrides.{name}")
    except (TypeError, ValueError) as error:
        raise ConfigError(f"backtest.train_overrides.{name}: {error}") from error
    return dataclasses.replace(params, train=dataclasses.replace(params.train, **{name: section}))


def train_on_fold(name: str, train: pd.DataFrame, catalog: pd.DataFrame, index: pd.Index, params: Params,
                  item_vectors: np.ndarray | None, checkpoint_dir: Path) -> Policy:
    """Fit learned policy ``name`` on ``train`` (newest share validates) with the backtest budget."""
    from liveslate.policies.trainers import get_trainer
    from liveslate.policies.training import TrainingData, TrainRun

    config = params.backtest
    fold_params = budget_params(params, name, config.train_overrides.get(name, {}),
                                config.use_kg_vectors and item_vectors is not None)
    fit, valid = hold_out_newest(train, config.valid_fraction)
    run = TrainRun(name=name, checkpoint_dir=checkpoint_dir, resume=False, progress=False,
                   threads=params.train.threads, deterministic=params.train.deterministic,
                   patience=params.train.patience, min_delta=params.train.min_delta)
    data = TrainingData(train=fit, valid=valid, catalog=catalog, index=index,
                        item_vectors=item_vectors if config.use_kg_vectors else None,
                        slate_size=params.validate.slate_size, seed=params.seed)
    policy = get_trainer(name)(data, fold_params, run).policy
    policy.name = name
    return policy


def _impression_days(batch) -> np.ndarray:
    """[c] UTC day of each impression of an ImpressionBatch (its first row's)."""
    days = log_days(batch.logs)
    first = pd.Series(days.to_numpy()).groupby(batch.row_impression).min()
    return first.reindex(range(len(batch.impression_id))).to_numpy()


def run_backtest(logs: pd.DataFrame, catalog: pd.DataFrame, index: pd.Index, params: Params, prior_path: Path,
                 item_vectors: np.ndarray | None = None, progress: bool = True) -> dict[str, Any]:
    """The metrics/backtest.json payload: {"policies": {...}, "folds": [...], "counts": {...}, "notes": [...]}."""
    from liveslate.policies.trainers import TRAINERS

    config = params.backtest
    setup = EvaluationSetup.from_params(params, label="backtest", only_primary=True)
    folds = day_folds(logs, config.min_train_days)
    days = log_days(logs)
    pooled = logs.loc[(days >= folds[0].test_day).to_numpy()].reset_index(drop=True)
    split = prepare_split(pooled, catalog, index, params.ope, params.seed, params.evaluate.ope_logging_policies,
                          label="backtest")
    query_days = None
    if split.queries is not None:
        lookup = pd.Index(split.batch.impression_id).get_indexer(split.queries.impression_id)
        query_days = _impression_days(split.batch)[lookup]
    ope_days = _impression_days(split.ope_batch)
    notes = []
    learned = [name for name in config.policies if name in TRAINERS]
    for name in config.policies:
        if name not in TRAINERS:
            notes.append(f"{name}: no trainer registered yet (policies/trainers.py); left out")
    if not config.use_kg_vectors:
        notes.append("Learned policies retrain without KG item vectors: the kg stage learnt them from the co-clicks "
                     "of the whole training split, so a fold testing inside it would see its own clicks.")
    names = learned + list(config.references)
    m = split.batch.candidates.m
    scores = {n: np.zeros((0 if split.queries is None else len(split.queries.impression_id), m)) for n in names}
    dists = {n: np.zeros((len(split.ope_batch.impression_id), split.ope_batch.candidates.m, setup.k)) for n in names}
    with tempfile.TemporaryDirectory(prefix="liveslate-backtest-") as tmp:
        steps = tqdm(total=len(folds) * len(names), desc="backtest", unit="fit", disable=not progress)
        for fold in folds:
            before = logs.loc[(days < fold.test_day).to_numpy()].reset_index(drop=True)
            for name in names:
                if name in learned:
                    policy = train_on_fold(name, before, catalog, index, params, item_vectors,
                                           Path(tmp) / fold.test_day.strftime("%Y%m%d") / name)
                else:
                    policy = reference_policy(name, index, before, prior_path, params, label="backtest")
                if query_days is not None:
                    rows = np.flatnonzero(query_days == fold.test_day)
                    if rows.size:
                        batch_rows = pd.Index(split.batch.impression_id).get_indexer(
                            split.queries.impression_id[rows])
                        scores[name][rows] = policy.checked_scores(
                            split.batch.contexts.iloc[batch_rows].reset_index(drop=True),
                            split.batch.candidates.take(batch_rows))
                rows = np.flatnonzero(ope_days == fold.test_day)
                if rows.size:
                    dists[name][rows] = policy.action_dist(split.ope_batch.contexts.iloc[rows].reset_index(drop=True),
                                                           split.ope_batch.candidates.take(rows), setup.k,
                                                           setup.explore)
                steps.update(1)
        steps.close()
    policies = {}
    for name in names:
        evaluation = evaluate_policy(None, split, setup, scores=scores[name] if split.queries is not None else None,
                                     dist=dists[name], name=name)
        policies[name] = evaluation.summary()
    return {"policies": policies, "folds": [f.as_dict() for f in folds], "counts": split_counts(split),
            "notes": notes}
