"""evaluate_policy / evaluation_payload on synthetic logs whose answers are known in closed form.

World (tests/evaluation_synthetic.py): uniform random logging over 5 items per room,
propensity 1/5, click rate ctr[item] with no context or position effect. Two policies:
- uniform: its importance weight is 1 on every row, so IPS is exactly the mean logged
  reward; all candidates tie, so MRR = H_5 / 5, Hit@1 = 1/5, NDCG@3 = (1 + 1/log2 3 + 1/2) / 5;
- an oracle ranking items by their true ctr, acting ε-greedily: its value at position p
  is (1 − ε) ctr_(p) + ε mean(ctr); the clicked item's rank is its local id + 1.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import evaluation_synthetic as synth
from liveslate.config import OpeConfig, OpeRewardModelConfig
from liveslate.evaluation.evaluate import (
    EvaluationSetup,
    evaluate_policy,
    evaluation_payload,
    logging_values,
    prepare_split,
    relative_lift,
    split_counts,
)
from liveslate.ope.bootstrap import BootstrapConfig
from liveslate.ope.estimators import build_estimators
from liveslate.policies.base import Exploration
from liveslate.policies.reference import PopularityPolicy, UniformPolicy
from liveslate.schema import item_index

CTR = np.array([0.5, 0.3, 0.2, 0.1, 0.05])
EPSILON = 0.2
ESTIMATORS = ("ips", "snips", "dm", "dr")


@pytest.fixture(scope="module")
def world():
    logs = synth.logs(CTR[None, :], rows_per_day=4000, seed=5)
    catalog = synth.catalog()
    index = item_index(catalog)
    ope = OpeConfig(primary="dr", estimators=ESTIMATORS, bootstrap_resamples=200,
                    reward_model=OpeRewardModelConfig(folds=2))
    split = prepare_split(logs, catalog, index, ope, seed=1)
    setup = EvaluationSetup(k=synth.SLATE, explore=Exploration(mode="epsilon", epsilon=EPSILON, seed=0),
                            estimators=tuple(build_estimators(ESTIMATORS)), primary="dr",
                            bootstrap=BootstrapConfig(200, 0.95, 7), reward_range=(0.0, 1.0))
    items = list(index)
    oracle = PopularityPolicy(items, np.array([CTR[int(i.split("/")[1])] for i in items]), float(CTR.mean()),
                              name="oracle")
    evaluations = {"uniform": evaluate_policy(UniformPolicy(items), split, setup),
                   "oracle": evaluate_policy(oracle, split, setup)}
    return logs, split, setup, evaluations


def test_uniform_policy_closed_forms(world):
    logs, _, _, evaluations = world
    uniform = evaluations["uniform"]
    mean_reward = logs["reward"].astype(float).mean()
    assert uniform.ope["ips"].value == pytest.approx(mean_reward, abs=1e-12)
    assert uniform.ope["ips"].ess == pytest.approx(len(logs))
    assert uniform.ranking.mrr == pytest.approx(sum(1 / r for r in range(1, 6)) / 5, abs=1e-12)
    assert uniform.ranking.hit_at_1 == pytest.approx(0.2, abs=1e-12)
    assert uniform.ranking.ndcg == pytest.approx((1 + 1 / math.log2(3) + 0.5) / 5, abs=1e-12)
    for position, results in uniform.per_position.items():
        at = logs["position"] == position
        assert results["ips"].value == pytest.approx(logs.loc[at, "reward"].astype(float).mean(), abs=1e-12)


def test_oracle_ranking_follows_the_clicked_items_rank(world):
    logs, _, _, evaluations = world
    clicked = logs.loc[logs["click"] == 1, "item_id"].str.split("/").str[1].astype(int).to_numpy()
    oracle = evaluations["oracle"].ranking
    assert oracle.n_queries == len(clicked)
    assert oracle.mrr == pytest.approx(np.mean(1.0 / (clicked + 1)), abs=1e-12)
    assert oracle.hit_at_1 == pytest.approx(np.mean(clicked == 0), abs=1e-12)
    lift = relative_lift(evaluations["oracle"].per_query[:, 0], evaluations["uniform"].per_query[:, 0],
                         BootstrapConfig(200, 0.95, 3), "test")
    assert lift.value == pytest.approx(oracle.mrr / evaluations["uniform"].ranking.mrr - 1, abs=1e-12)
    assert lift.ci_low > 0  # the oracle ranks clicked items far better than ties


def test_oracle_value_matches_its_closed_form(world):
    logs, _, _, evaluations = world
    best_three = np.sort(CTR)[::-1][: synth.SLATE]
    share = logs["position"].value_counts(normalize=True).sort_index().to_numpy()
    truth = float(np.sum(share * ((1 - EPSILON) * best_three + EPSILON * CTR.mean())))
    for name in ("ips", "snips", "dr"):
        result = evaluations["oracle"].ope[name]
        assert result.ci_low <= truth <= result.ci_high, (name, result.value, truth)
    # The oracle beats uniform random by far more than the noise.
    assert evaluations["oracle"].ope["dr"].ci_low > evaluations["uniform"].ope["dr"].ci_high


def test_payload_has_exactly_the_design_shape(world):
    logs, split, setup, evaluations = world
    payload = evaluation_payload(evaluations, logging_values(logs, setup.bootstrap), split_counts(split))
    assert set(payload) == {"policies", "logging", "counts"}
    for name, row in payload["policies"].items():
        assert set(row) == {"mrr", "mrr_ci", "hit_at_1", "hit_at_1_ci", "ndcg_at_3", "ndcg_at_3_ci", "ope"}, name
        assert set(row["ope"]) == set(ESTIMATORS)
        for estimate in row["ope"].values():
            assert set(estimate) == {"value", "ci_low", "ci_high", "ess"}
            assert all(math.isfinite(v) for v in estimate.values())
        # (a constant per-query metric, as for uniform, gives an interval equal to the value up to rounding)
        assert row["mrr_ci"][0] - 1e-12 <= row["mrr"] <= row["mrr_ci"][1] + 1e-12
    assert set(payload["logging"]) == {"random@sim"}
    assert payload["logging"]["random@sim"]["n"] == len(logs)
    assert payload["logging"]["random@sim"]["value"] == pytest.approx(logs["reward"].astype(float).mean())
    counts = payload["counts"]
    assert counts["rows"] == len(logs) and counts["clicks"] == int(logs["click"].sum())
    assert counts["ranking_queries"] + counts["excluded_impressions_without_click"] == len(logs)


def test_ope_rows_can_be_restricted_to_some_logging_policies():
    catalog = synth.catalog()
    index = item_index(catalog)
    import pandas as pd

    logs = pd.concat([synth.logs(CTR[None, :], 300, seed=1, policy="random@sim"),
                      synth.logs(CTR[None, :], 200, seed=2, policy="other@sim")], ignore_index=True)
    ope = OpeConfig(primary="dr", estimators=ESTIMATORS, bootstrap_resamples=100)
    split = prepare_split(logs, catalog, index, ope, seed=1, ope_policies=("random@sim",))
    assert len(split.rows) == 300 and len(split.batch.logs) == 500
    with pytest.raises(ValueError, match=r"no rows of the logging policies \['bts@obd'\]"):
        prepare_split(logs, catalog, index, ope, seed=1, ope_policies=("bts@obd",))
