"""The evaluation's details beside metrics/evaluation.json: what the report and select need.

evaluation.json keeps exactly the DESIGN.md shape; everything else lands in the details
payload (``artifacts/evaluation/details.json``): the registry version behind every row,
per-position estimates, paired lifts over the baseline and the KG ablation difference.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from liveslate.evaluation.evaluate import (
    NDCG_K,
    OPE_KEYS,
    RANKING_METRICS,
    EvaluationSetup,
    PolicyEvaluation,
    difference,
    logging_values,
    ope_difference,
    relative_lift,
)
from liveslate.ope.bootstrap import BootstrapConfig, derive_seed

# The KG ablation pair of the report: the same DeepFM with and without the KG item vectors.
KG_PAIR = ("deepfm", "deepfm_nokg")


def _estimates(results: dict[str, Any]) -> dict[str, dict[str, float]]:
    return {name: {key: float(getattr(result, key)) for key in OPE_KEYS} for name, result in results.items()}


def lifts_over(baseline: PolicyEvaluation, evaluations: dict[str, PolicyEvaluation],
               bootstrap: BootstrapConfig) -> dict[str, dict[str, dict[str, float]]]:
    """{policy: {mrr|hit_at_1|ndcg_at_3: relative lift over the baseline with a paired interval}}."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    if baseline.per_query is None:
        return out
    for name, evaluation in evaluations.items():
        if evaluation.per_query is None:
            continue
        entry = {}
        for column, metric in enumerate(RANKING_METRICS):
            lift = relative_lift(evaluation.per_query[:, column], baseline.per_query[:, column], bootstrap,
                                 f"{name}/{metric}")
            if lift is not None:
                entry[metric] = lift.as_dict()
        out[name] = entry
    return out


def kg_effect(evaluations: dict[str, PolicyEvaluation], setup: EvaluationSetup) -> dict[str, Any] | None:
    """Paired differences (with KG − without KG) of the ranking metrics and the primary estimate."""
    with_kg, without_kg = (evaluations.get(name) for name in KG_PAIR)
    if with_kg is None or without_kg is None:
        return None
    differences: dict[str, dict[str, float]] = {}
    if with_kg.per_query is not None and without_kg.per_query is not None:
        for column, metric in enumerate(RANKING_METRICS):
            differences[metric] = difference(with_kg.per_query[:, column], without_kg.per_query[:, column],
                                             setup.bootstrap, f"kg/{metric}").as_dict()
    primary = [e for e in setup.estimators if e.name == setup.primary][0]
    try:
        differences[setup.primary] = ope_difference(with_kg, without_kg, primary, setup.bootstrap).as_dict()
    except ValueError:
        pass  # an undefined estimate for either policy: the report shows the metrics that exist
    return {"with": KG_PAIR[0], "without": KG_PAIR[1], "differences": differences}


def logging_by_position(logs: pd.DataFrame, bootstrap: BootstrapConfig) -> dict[str, dict[str, Any]]:
    """{logging policy: {position: {value, ci_low, ci_high, n}}} on-policy, per logged position."""
    out: dict[str, dict[str, Any]] = {}
    for position, rows in logs.groupby(logs["position"].astype(int), sort=True):
        seed = derive_seed(bootstrap.seed, "position", str(position))
        for name, entry in logging_values(rows, BootstrapConfig(bootstrap.n_resamples, bootstrap.confidence,
                                                                seed)).items():
            out.setdefault(name, {})[str(position)] = entry
    return out


def details_payload(evaluations: dict[str, PolicyEvaluation], setup: EvaluationSetup, logs: pd.DataFrame, *,
                    baseline: str, versions: dict[str, str | None], champion: dict[str, Any] | None,
                    skipped: dict[str, str], reward_model_folds: int,
                    ope_logging_policies: tuple[str, ...] = ()) -> dict[str, Any]:
    """Everything the report and select read besides evaluation.json (JSON-ready)."""
    explore = setup.explore
    exploration = {"none": "none (greedy)", "epsilon": f"epsilon-greedy, ε = {explore.epsilon:g}",
                   "plackett_luce": f"Plackett–Luce, τ = {explore.temperature:g}"}[explore.mode]
    base = evaluations.get(baseline)
    return {
        "primary": setup.primary,
        "estimators": [e.name for e in setup.estimators],
        "confidence_label": f"{100 * setup.bootstrap.confidence:g} %",
        "bootstrap_resamples": setup.bootstrap.n_resamples,
        "reward_model_folds": reward_model_folds,
        "exploration": exploration,
        "ope_logging_policies": list(ope_logging_policies),
        "period": [str(logs["ts"].min()), str(logs["ts"].max())] if len(logs) else None,
        "slate_size": setup.k,
        "ndcg_k": NDCG_K,
        "baseline": baseline,
        "versions": versions,
        "champion": champion,
        "skipped": skipped,
        "failures": {name: e.failures for name, e in evaluations.items() if e.failures},
        "per_position": {name: {str(p): _estimates(r) for p, r in e.per_position.items()}
                         for name, e in evaluations.items()},
        "per_position_primary": {name: {str(p): _estimates(r)[setup.primary] for p, r in e.per_position.items()
                                        if setup.primary in r} for name, e in evaluations.items()},
        "logging_by_position": logging_by_position(logs, setup.bootstrap),
        "lifts": {} if base is None else lifts_over(base, evaluations, setup.bootstrap),
        "kg_effect": kg_effect(evaluations, setup),
    }
