"""Every policy owned by the policy core passes the reusable contract (tests/policy_contract.py)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from policy_contract import check_policy_contract

from liveslate.policies.base import Candidates
from liveslate.policies.reference import BTSReplicaPolicy, PopularityPolicy, UniformPolicy

ITEM_IDS = [f"r{room}/{i}" for room in range(2) for i in range(6)]


def contract_batch() -> tuple[pd.DataFrame, Candidates]:
    """Five requests with ragged candidate rows (3 to 6 candidates, padded to 6)."""
    contexts = pd.DataFrame({"ctx_user": pd.array(["a", "b", "a", "zz-unseen", "b"], dtype="string"),
                             "ctx_level": [0.5, -1.0, 2.0, 0.0, 1.5]})
    candidates = Candidates.from_lists([[0, 1, 2, 3, 4, 5], [6, 7, 8], [2, 9, 4, 11], [10, 3, 1, 0, 7], [5, 11, 6]])
    return contexts, candidates


def synthetic_logs(seed: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    items = rng.integers(0, len(ITEM_IDS), size=400)
    ctr = np.linspace(0.05, 0.6, len(ITEM_IDS))
    return pd.DataFrame({"item_id": pd.array([ITEM_IDS[i] for i in items], dtype="string"),
                         "click": (rng.random(400) < ctr[items]).astype("int8")})


def test_uniform_policy_contract(tmp_path):
    contexts, candidates = contract_batch()
    check_policy_contract(UniformPolicy(ITEM_IDS), contexts, candidates, k=2, tmp_path=tmp_path)


def test_bts_replica_contract(tmp_path):
    contexts, candidates = contract_batch()
    alpha = np.arange(1, len(ITEM_IDS) + 1, dtype=float)
    beta = np.full(len(ITEM_IDS), 20.0)
    policy = BTSReplicaPolicy(ITEM_IDS, alpha, beta, mc_samples=3_000, mc_seed=5)
    check_policy_contract(policy, contexts, candidates, k=2, tmp_path=tmp_path)


def test_popularity_contract(tmp_path):
    contexts, candidates = contract_batch()
    policy = PopularityPolicy.from_logs(synthetic_logs(), ITEM_IDS, prior_impressions=5.0)
    check_policy_contract(policy, contexts, candidates, k=2, tmp_path=tmp_path)


def test_contract_catches_a_broken_policy(tmp_path):
    """The contract is not vacuous: ε/m over the padded width instead of ε/m_row fails it."""
    from liveslate.policies import exploration

    class PaddedEpsilon(PopularityPolicy):
        def action_dist(self, contexts, candidates, k, explore):
            if explore.mode != "epsilon":
                return super().action_dist(contexts, candidates, k, explore)
            greedy = self.greedy_slate(contexts, candidates, k)
            dist = (1 - explore.epsilon) * exploration.one_hot_dist(greedy, candidates.m)
            return dist + explore.epsilon / candidates.m * candidates.mask[:, :, None]

    contexts, candidates = contract_batch()
    good = PopularityPolicy.from_logs(synthetic_logs(), ITEM_IDS)
    broken = PaddedEpsilon(good.item_ids, good.ctr, good.default_ctr)
    with pytest.raises(AssertionError, match="sums to"):
        check_policy_contract(broken, contexts, candidates, k=2, tmp_path=tmp_path)
