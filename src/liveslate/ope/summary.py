"""One call per question the evaluate and select stages ask of a policy on logged data.

- :func:`policy_estimates`: every configured estimator for one policy (its ``action_dist``
  on the logged impressions, a shared cross-fitted reward model) → the DESIGN.md
  ``ope`` block via :func:`ope_block`;
- :func:`on_policy_value`: a logging policy's own mean reward per slot with its interval
  (DESIGN.md ``logging`` block);
- :func:`policy_ranking`: MRR, Hit@1 and NDCG@k of the policy's scores on the clicked
  impressions.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from liveslate.config import OpeConfig
from liveslate.ope.bootstrap import BootstrapConfig, derive_seed, percentile_interval, resampled_means
from liveslate.ope.estimators import EstimateResult, build_estimators, estimate_all
from liveslate.ope.inputs import RewardPredictions, align
from liveslate.ope.logs import ImpressionBatch, logged_rows, policy_action_dist
from liveslate.ope.ranking import RankingResult, build_queries, ranking_metrics
from liveslate.policies.base import Exploration, Policy


def policy_estimates(batch: ImpressionBatch, policy: Policy, k: int, predictions: RewardPredictions,
                     config: OpeConfig, seed: int, explore: Exploration = Exploration()) -> dict[str, EstimateResult]:
    """{estimator: result} for ``policy`` under ``explore`` on the batch's logged rows.

    predictions: cross-fitted reward-model predictions for the same rows (compute them once
    with ``logs.reward_predictions`` and share them across policies). Every policy gets the
    same bootstrap resamples (seed derived from ``seed``), so their intervals are comparable.
    """
    estimators = build_estimators(config.estimators, clip_max_weight=config.clip_max_weight,
                                  switch_threshold=config.switch_threshold, dros_shrinkage=config.dros_shrinkage)
    inputs = align(logged_rows(batch), policy_action_dist(policy, batch, k, explore), predictions)
    bootstrap = BootstrapConfig(config.bootstrap_resamples, config.confidence, derive_seed(seed, "ope", "bootstrap"))
    return estimate_all(estimators, inputs, bootstrap)


def ope_block(results: dict[str, EstimateResult]) -> dict[str, dict]:
    """DESIGN.md's ``ope`` entry: {estimator: {value, ci_low, ci_high, ess, n, outside_reward_range}}."""
    return {name: result.summary() for name, result in results.items()}


def on_policy_value(logs: pd.DataFrame, bootstrap: BootstrapConfig) -> dict[str, float | int]:
    """Mean reward per logged row with a bootstrap interval over impressions: {value, ci_low, ci_high, n}."""
    if logs.empty:
        raise ValueError("on-policy value: no logged rows")
    reward = logs["reward"].to_numpy(dtype=np.float64)
    codes = pd.factorize(logs["impression_id"].astype(str).to_numpy(dtype=object))[0]
    low, high = percentile_interval(resampled_means(reward, codes, bootstrap.n_resamples, bootstrap.seed),
                                    bootstrap.confidence)
    return {"value": float(reward.mean()), "ci_low": low, "ci_high": high, "n": int(len(reward))}


def policy_ranking(batch: ImpressionBatch, policy: Policy, index: pd.Index, bootstrap: BootstrapConfig,
                   k: int = 3) -> RankingResult:
    """Ranking metrics of ``policy.scores`` over every candidate of each clicked impression.

    Raises ``ranking.NoClickedRows`` when no row of the batch has a click.
    """
    queries = build_queries(batch.logs, index, batch.impression_id, batch.candidates.items, batch.candidates.mask)
    rows = pd.Index(batch.impression_id).get_indexer(queries.impression_id)
    # Score only the clicked impressions: typically well under 1 % of the rows.
    scores = policy.scores(batch.contexts.iloc[rows].reset_index(drop=True), batch.candidates.take(rows))
    return ranking_metrics(queries, batch.impression_id[rows], scores, k=k, bootstrap=bootstrap)
