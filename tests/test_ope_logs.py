"""Canonical logs → OPE inputs, and the one-call summaries used by evaluation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from liveslate.config import OpeConfig, OpeRewardModelConfig
from liveslate.ope.bootstrap import BootstrapConfig
from liveslate.ope.logs import logged_rows, prepare, reward_predictions
from liveslate.ope.ranking import NoClickedRows
from liveslate.ope.summary import on_policy_value, ope_block, policy_estimates, policy_ranking
from liveslate.policies.reference import PopularityPolicy, UniformPolicy
from liveslate.schema import item_index

FAST = BootstrapConfig(n_resamples=100, confidence=0.95, seed=1)


def catalog() -> pd.DataFrame:
    items = [f"a/{i}" for i in range(4)] + [f"b/{i}" for i in range(3)]
    return pd.DataFrame({"item_id": pd.array(items, dtype="string"),
                         "room_id": pd.array([i.split("/")[0] for i in items], dtype="string"),
                         "first_seen": pd.Timestamp("2019-11-24")})


def uniform_logs(n: int, seed: int) -> pd.DataFrame:
    """Room a (4 items), one row per impression, item drawn uniformly: propensity 1/4."""
    rng = np.random.default_rng(seed)
    item = rng.integers(0, 4, size=n)
    click = (rng.random(n) < np.array([0.05, 0.1, 0.2, 0.3])[item]).astype("int8")
    return pd.DataFrame({
        "impression_id": pd.array([f"u{i}" for i in range(n)], dtype="string"),
        "room_id": pd.array(["a"] * n, dtype="string"),
        "item_id": pd.array([f"a/{j}" for j in item], dtype="string"),
        "position": np.zeros(n, dtype="int16"),
        "click": click, "reward": click.astype("float32"),
        "propensity": np.full(n, 0.25),
        "candidates": pd.Series([None] * n, dtype="object"),
        "ctx_segment": pd.array(rng.choice(["x", "y"], size=n), dtype="string"),
    })


def test_prepare_locates_each_logged_item_among_its_room():
    cat = catalog()
    index = item_index(cat)
    logs = uniform_logs(20, seed=0)
    batch = prepare(logs, cat, index)
    assert batch.candidates.items.shape == (20, 4)
    np.testing.assert_array_equal(index[batch.candidates.items[batch.row_impression, batch.candidate]],
                                  logs["item_id"].astype(str))
    assert list(batch.contexts.columns) == ["ctx_segment"]


def test_logged_candidate_lists_override_the_whole_room():
    cat = catalog()
    logs = uniform_logs(3, seed=0)
    logs["item_id"] = pd.array(["a/1", "a/2", "a/1"], dtype="string")
    logs["candidates"] = pd.Series([["a/2", "a/1"], None, ["a/1", "a/0", "a/3"]], dtype="object")
    batch = prepare(logs, cat, item_index(cat))
    assert batch.candidates.counts.tolist() == [2, 4, 3]
    assert batch.candidate.tolist() == [1, 2, 0]


@pytest.mark.parametrize("change, message", [
    ({"item_id": "b/1"}, r"the logged item is not among its impression's candidates at 1 row\(s\): \(impression 'u0', position 0\)"),
    ({"item_id": "a/99"}, r"logs.item_id: not in the item index at 1 row\(s\): \(impression 'u0'"),
])
def test_prepare_rejects_items_outside_the_candidates(change, message):
    logs = uniform_logs(5, seed=0)
    for column, value in change.items():
        logs[column] = logs[column].astype(object)
        logs.loc[0, column] = value
    with pytest.raises(ValueError, match=message):
        prepare(logs, catalog(), item_index(catalog()))


def test_uniform_policy_on_uniform_logs_gives_the_sample_mean():
    cat = catalog()
    index = item_index(cat)
    logs = uniform_logs(3000, seed=2)
    batch = prepare(logs, cat, index)
    config = OpeConfig(bootstrap_resamples=200, reward_model=OpeRewardModelConfig(folds=2))
    predictions = reward_predictions(batch, len(index), config.reward_model, seed=3)
    results = policy_estimates(batch, UniformPolicy(list(index)), 1, predictions, config, seed=4)
    mean = logs["reward"].mean()
    assert results["ips"].value == pytest.approx(mean)
    assert results["snips"].value == pytest.approx(mean)
    # Uniform evaluation = uniform logging: w ≡ 1, so DR = mean_i[mean_j q̂_ij + r_i − q̂_i,logged].
    q = predictions.values
    by_hand = q.mean(axis=1).mean() + (logs["reward"].to_numpy() - q[np.arange(3000), batch.candidate]).mean()
    assert results["dr"].value == pytest.approx(by_hand)
    assert results["dm"].value == pytest.approx(q.mean(axis=1).mean())
    block = ope_block(results)
    assert set(block["dr"]) >= {"value", "ci_low", "ci_high", "ess"} and block["ips"]["ess"] == pytest.approx(3000)
    value = on_policy_value(logs, FAST)
    assert value["value"] == pytest.approx(mean) and value["n"] == 3000
    assert value["ci_low"] < mean < value["ci_high"]
    assert len(logged_rows(batch)) == 3000


def test_policy_ranking_scores_the_clicked_impressions():
    cat = catalog()
    index = item_index(cat)
    logs = uniform_logs(400, seed=5)
    batch = prepare(logs, cat, index)
    # Popularity trained on the same rows: item a/3 (CTR 0.3) should rank first most often.
    popularity = PopularityPolicy.from_logs(logs, list(index), prior_impressions=0.0)
    result = policy_ranking(batch, popularity, index, FAST)
    clicked = logs[logs["click"] == 1]
    ranks = clicked["item_id"].map(lambda item: 1 + int((popularity.ctr[:4] > popularity.ctr[index.get_loc(item)]).sum()))
    assert result.n_queries == len(clicked)
    assert result.mrr == pytest.approx(float((1.0 / ranks).mean()))  # no ties among four distinct CTRs
    assert result.hit_at_1 == pytest.approx(float((ranks == 1).mean()))
    assert result.excluded_rows == 400 - len(clicked)
    with pytest.raises(NoClickedRows):
        policy_ranking(prepare(logs[logs["click"] == 0], cat, index), popularity, index, FAST)
