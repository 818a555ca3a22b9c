"""Every policy on one split of logged feedback: ranking metrics and off-policy estimates.

For a split (canonical logs) the shared parts are built once (:func:`prepare_split`):
the impressions and their candidates, the keyed logged rows, the cross-fitted reward
model (it depends on the logs, not on the policy), and the ranking queries (impressions
with a click). Each policy then contributes (:func:`evaluate_policy`):

- ranking: MRR, Hit@1 and NDCG@3 of ``Policy.scores`` over each clicked impression's
  candidates (ties as the expectation over random orders), bootstrap CIs over queries;
- OPE: ``Policy.action_dist`` under the evaluation exploration mode, every configured
  estimator with a bootstrap CI (resampling impressions) and its effective sample size,
  overall and per logged position.

:func:`evaluation_payload` assembles ``metrics/evaluation.json`` in exactly the DESIGN.md
shape; :func:`paired_comparison` gives the lifts and differences of the report, with
paired bootstrap intervals (both policies scored on the same resampled queries/rows).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from liveslate.config import OpeConfig
from liveslate.ope.bootstrap import BootstrapConfig, derive_seed, percentile_interval, resampled_means
from liveslate.ope.estimators import Estimator, EstimateResult, build_estimators, estimate_all
from liveslate.ope.inputs import ActionDist, LoggedRows, OPEInputs, RewardPredictions, align
from liveslate.ope.logs import ImpressionBatch, logged_rows, policy_action_dist, prepare, reward_predictions
from liveslate.ope.ranking import NoClickedRows, RankingQueries, RankingResult, build_queries, per_query_metrics, \
    ranking_metrics
from liveslate.policies.base import Exploration, Policy

# NDCG cut-off: fixed, because the metric's key in evaluation.json (ndcg_at_3) is part of the contract.
NDCG_K = 3
RANKING_METRICS = ("mrr", "hit_at_1", f"ndcg_at_{NDCG_K}")
OPE_KEYS = ("value", "ci_low", "ci_high", "ess")


@dataclass(frozen=True)
class EvaluationSetup:
    """How every policy is evaluated.

    k: slate size (positions); explore: the exploration mode of the learned policies;
    estimators: built from the ope section; primary: the selection estimator;
    bootstrap: resamples, confidence and seed of every interval; reward_range: (low, high).
    """

    k: int
    explore: Exploration
    estimators: tuple[Estimator, ...]
    primary: str
    bootstrap: BootstrapConfig
    reward_range: tuple[float, float]

    @classmethod
    def from_params(cls, params: Any, label: str = "evaluate", only_primary: bool = False) -> "EvaluationSetup":
        """From params: ope (estimators, bootstrap), evaluate (exploration, reward range), validate.slate_size.

        only_primary: estimate ``ope.primary`` alone (the backtest).
        """
        ope: OpeConfig = params.ope
        exploration = params.evaluate.exploration
        low, high = params.evaluate.reward_range
        return cls(
            k=params.validate.slate_size,
            explore=Exploration(mode=exploration.mode, epsilon=exploration.epsilon,
                                temperature=exploration.temperature, seed=derive_seed(params.seed, label, "explore")),
            estimators=tuple(build_estimators((ope.primary,) if only_primary else ope.estimators,
                                              clip_max_weight=ope.clip_max_weight,
                                              switch_threshold=ope.switch_threshold,
                                              dros_shrinkage=ope.dros_shrinkage)),
            primary=ope.primary,
            bootstrap=BootstrapConfig(ope.bootstrap_resamples, ope.confidence,
                                      derive_seed(params.seed, label, "bootstrap")),
            reward_range=(float(low), float(high)),
        )


@dataclass(frozen=True, eq=False)
class PreparedSplit:
    """The policy-independent parts of one split (see the module docstring).

    batch: every row (ranking queries, logging values); ope_batch / rows / predictions: the
    rows that enter the off-policy estimates (those of the chosen logging policies);
    queries is None when no impression of the split has a click (ranking metrics are then
    undefined and left out, never NaN).
    """

    batch: ImpressionBatch
    ope_batch: ImpressionBatch
    rows: LoggedRows
    predictions: RewardPredictions
    queries: RankingQueries | None


def prepare_split(logs: pd.DataFrame, catalog: pd.DataFrame, index: pd.Index, ope: OpeConfig, seed: int,
                  ope_policies: tuple[str, ...] = (), label: str = "evaluate") -> PreparedSplit:
    """Group ``logs`` by impression, cross-fit the reward model, collect the clicked queries.

    ope_policies: logging policies (``policy`` column) whose rows enter the off-policy
    estimates; empty = every row. Ranking metrics always use every clicked impression.
    """
    batch = prepare(logs, catalog, index)
    ope_batch = batch
    if ope_policies:
        chosen = logs["policy"].astype(str).isin(ope_policies).to_numpy()
        if not chosen.any():
            found = sorted(logs["policy"].astype(str).unique())
            raise ValueError(f"no rows of the logging policies {list(ope_policies)} for the off-policy estimates "
                             f"(the split holds {found})")
        ope_batch = prepare(logs.loc[chosen], catalog, index)
    predictions = reward_predictions(ope_batch, len(index), ope.reward_model, derive_seed(seed, label, "reward_model"))
    try:
        queries = build_queries(batch.logs, index, batch.impression_id, batch.candidates.items,
                                batch.candidates.mask)
    except NoClickedRows:
        queries = None
    return PreparedSplit(batch=batch, ope_batch=ope_batch, rows=logged_rows(ope_batch), predictions=predictions,
                         queries=queries)


@dataclass(eq=False)
class PolicyEvaluation:
    """One policy's results on one split.

    ranking: summary with CIs (None without clicked queries); per_query: [q, 3] reciprocal
    rank, hit@1, NDCG@3 per clicked impression (query order of the split); ope: estimator →
    result; per_position: position → estimator → result; inputs: the aligned OPE inputs
    (kept for paired comparisons); failures: estimator (or "ranking") → why it is undefined.
    """

    name: str
    ranking: RankingResult | None
    per_query: np.ndarray | None
    ope: dict[str, EstimateResult]
    per_position: dict[int, dict[str, EstimateResult]]
    inputs: OPEInputs
    failures: dict[str, str] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """This policy's entry of evaluation.json (DESIGN.md keys only)."""
        out: dict[str, Any] = {}
        if self.ranking is not None:
            out.update({"mrr": self.ranking.mrr, "mrr_ci": list(self.ranking.mrr_ci),
                        "hit_at_1": self.ranking.hit_at_1, "hit_at_1_ci": list(self.ranking.hit_at_1_ci),
                        f"ndcg_at_{NDCG_K}": self.ranking.ndcg, f"ndcg_at_{NDCG_K}_ci": list(self.ranking.ndcg_ci)})
        out["ope"] = {name: {key: float(getattr(result, key)) for key in OPE_KEYS} for name, result in self.ope.items()}
        return out


def _estimate(estimators: tuple[Estimator, ...], inputs: OPEInputs,
              bootstrap: BootstrapConfig) -> tuple[dict[str, EstimateResult], dict[str, str]]:
    """Every estimator on the same resamples; one that is undefined here is left out with its reason."""
    try:
        return estimate_all(list(estimators), inputs, bootstrap), {}
    except ValueError:
        results, failures = {}, {}
        for estimator in estimators:
            try:
                results.update(estimate_all([estimator], inputs, bootstrap))
            except ValueError as error:
                failures[estimator.name] = str(error)
        return results, failures


def _subset(inputs: OPEInputs, rows: np.ndarray) -> OPEInputs:
    logs = inputs.logs
    return OPEInputs(
        logs=LoggedRows(impression_id=logs.impression_id[rows], position=logs.position[rows],
                        candidate=logs.candidate[rows], reward=logs.reward[rows], propensity=logs.propensity[rows]),
        evaluation_probability=inputs.evaluation_probability[rows],
        action_dist=None if inputs.action_dist is None else inputs.action_dist[rows],
        reward_hat=None if inputs.reward_hat is None else inputs.reward_hat[rows],
        reward_model=inputs.reward_model, reward_model_folds=inputs.reward_model_folds,
        reward_range=inputs.reward_range)


def query_scores(policy: Policy, split: PreparedSplit) -> np.ndarray:
    """[q, m] the policy's scores of each clicked impression's candidates (query order)."""
    assert split.queries is not None
    rows = pd.Index(split.batch.impression_id).get_indexer(split.queries.impression_id)
    contexts = split.batch.contexts.iloc[rows].reset_index(drop=True)
    return policy.checked_scores(contexts, split.batch.candidates.take(rows))


def evaluate_policy(policy: Policy | None, split: PreparedSplit, setup: EvaluationSetup,
                    scores: np.ndarray | None = None, dist: np.ndarray | None = None,
                    name: str | None = None) -> PolicyEvaluation:
    """Ranking metrics and every estimator (overall and per position) of ``policy`` on ``split``.

    scores [q, m] (query order) / dist [c, m, k] (``split.ope_batch`` impressions) may be
    given (the backtest assembles them fold by fold, with ``policy`` None and a ``name``);
    otherwise they come from ``policy.scores`` / ``policy.action_dist``.
    """
    if policy is None and (dist is None or name is None or (split.queries is not None and scores is None)):
        raise ValueError("evaluate_policy: without a policy, give its scores, its action distribution and a name")
    failures: dict[str, str] = {}
    ranking, per_query = None, None
    if split.queries is not None:
        if scores is None:
            scores = query_scores(policy, split)
        ranking = ranking_metrics(split.queries, split.queries.impression_id, scores, k=NDCG_K,
                                  bootstrap=setup.bootstrap)
        per_query = np.stack(per_query_metrics(scores, split.queries.mask, split.queries.relevant, NDCG_K), axis=1)
    else:
        failures["ranking"] = "no impression of the split has a click"
    if dist is None:
        action = policy_action_dist(policy, split.ope_batch, setup.k, setup.explore)
    else:
        action = ActionDist.per_impression(split.ope_batch.impression_id, dist, mask=split.ope_batch.candidates.mask)
    inputs = align(split.rows, action, split.predictions, reward_range=setup.reward_range)
    ope, ope_failures = _estimate(setup.estimators, inputs, setup.bootstrap)
    failures.update(ope_failures)
    per_position = {}
    for position in np.unique(inputs.logs.position):
        per_position[int(position)], _ = _estimate(setup.estimators, _subset(inputs, inputs.logs.position == position),
                                                   setup.bootstrap)
    return PolicyEvaluation(name=name or policy.name, ranking=ranking, per_query=per_query, ope=ope,
                            per_position=per_position, inputs=inputs, failures=failures)


def logging_values(logs: pd.DataFrame, bootstrap: BootstrapConfig) -> dict[str, dict[str, float | int]]:
    """On-policy value of each logging policy: its mean reward per logged row, with a bootstrap CI.

    Returns {policy: {value, ci_low, ci_high, n}} (n = rows); impressions are the resampling unit.
    """
    out: dict[str, dict[str, float | int]] = {}
    for name, rows in logs.groupby(logs["policy"].astype(str), sort=True):
        reward = rows["reward"].to_numpy(dtype=np.float64)
        codes = pd.factorize(rows["impression_id"].astype(str))[0].astype(np.int64)
        samples = resampled_means(reward, codes, bootstrap.n_resamples, derive_seed(bootstrap.seed, "logging", name))
        low, high = percentile_interval(samples, bootstrap.confidence)
        out[str(name)] = {"value": float(reward.mean()), "ci_low": low, "ci_high": high, "n": int(len(rows))}
    return out


def split_counts(split: PreparedSplit) -> dict[str, Any]:
    """The ``counts`` of evaluation.json: rows, impressions, clicks and what the ranking excluded."""
    logs = split.batch.logs
    counts: dict[str, Any] = {
        "rows": int(len(logs)),
        "impressions": int(len(split.batch.impression_id)),
        "clicks": int(logs["click"].sum()),
        "ranking_queries": 0 if split.queries is None else int(len(split.queries.impression_id)),
        "excluded_rows_without_click": int(len(logs)) if split.queries is None else split.queries.excluded_rows,
        "excluded_impressions_without_click": (int(len(split.batch.impression_id)) if split.queries is None
                                               else split.queries.excluded_impressions),
        "rows_by_logging_policy": {str(k): int(v) for k, v in logs["policy"].astype(str).value_counts().sort_index().items()},
        "rows_by_position": {str(k): int(v) for k, v in logs["position"].value_counts().sort_index().items()},
        "ope_rows": int(len(split.ope_batch.logs)),
        "ope_clicks": int(split.ope_batch.logs["click"].sum()),
    }
    return counts


def evaluation_payload(evaluations: dict[str, PolicyEvaluation], logging: dict[str, dict[str, float | int]],
                       counts: dict[str, Any]) -> dict[str, Any]:
    """metrics/evaluation.json: {"policies": {NAME: ...}, "logging": {...}, "counts": {...}} (DESIGN.md)."""
    return {"policies": {name: evaluation.summary() for name, evaluation in evaluations.items()},
            "logging": logging, "counts": counts}


# --------------------------------------------------------------------------- paired comparisons


@dataclass(frozen=True)
class Comparison:
    """A statistic of policy a relative to policy b with a paired percentile interval."""

    value: float
    ci_low: float
    ci_high: float

    def as_dict(self) -> dict[str, float]:
        return {"value": self.value, "ci_low": self.ci_low, "ci_high": self.ci_high}


def relative_lift(a: np.ndarray, b: np.ndarray, bootstrap: BootstrapConfig, label: str) -> Comparison | None:
    """mean(a) / mean(b) − 1 over the same queries, resampled together; None when mean(b) is 0."""
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"relative_lift: expected two [q] arrays over the same queries, got {a.shape} and {b.shape}")
    if b.mean() <= 0.0:
        return None
    samples = resampled_means(np.stack([a, b], axis=1), None, bootstrap.n_resamples,
                              derive_seed(bootstrap.seed, "lift", label))
    with np.errstate(divide="ignore", invalid="ignore"):
        lifts = samples[:, 0] / samples[:, 1] - 1.0
    low, high = percentile_interval(lifts, bootstrap.confidence)
    return Comparison(float(a.mean() / b.mean() - 1.0), low, high)


def difference(a: np.ndarray, b: np.ndarray, bootstrap: BootstrapConfig, label: str) -> Comparison:
    """mean(a) − mean(b) over the same queries with a paired bootstrap interval."""
    samples = resampled_means(a - b, None, bootstrap.n_resamples, derive_seed(bootstrap.seed, "difference", label))
    low, high = percentile_interval(samples, bootstrap.confidence)
    return Comparison(float((a - b).mean()), low, high)


def ope_difference(a: PolicyEvaluation, b: PolicyEvaluation, estimator: Estimator,
                   bootstrap: BootstrapConfig) -> Comparison:
    """V̂_a − V̂_b of one estimator on the same logged rows, impressions resampled together.

    Each estimate is mean(direct) + mean(weighted) / mean(normaliser), so a resample
    recomputes both from the six column means (self-normalised estimators included).
    """
    if not np.array_equal(a.inputs.logs.impression_id, b.inputs.logs.impression_id):
        raise ValueError(f"ope_difference: {a.name} and {b.name} were not evaluated on the same rows")
    columns = []
    for inputs in (a.inputs, b.inputs):
        terms = estimator.terms(inputs)
        normaliser = np.ones_like(terms.weighted) if terms.normaliser is None else terms.normaliser
        columns += [terms.direct, terms.weighted, normaliser]
    stacked = np.stack(columns, axis=1)
    means = stacked.mean(axis=0)
    samples = resampled_means(stacked, a.inputs.impression_codes(), bootstrap.n_resamples,
                              derive_seed(bootstrap.seed, "ope_difference", estimator.name, a.name, b.name))
    with np.errstate(divide="ignore", invalid="ignore"):
        diffs = (samples[:, 0] + samples[:, 1] / samples[:, 2]) - (samples[:, 3] + samples[:, 4] / samples[:, 5])
    value = (means[0] + means[1] / means[2]) - (means[3] + means[4] / means[5])
    low, high = percentile_interval(diffs, bootstrap.confidence)
    return Comparison(float(value), low, high)
