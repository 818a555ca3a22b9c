"""DeepFM: learns an interaction logistic regression cannot, passes the policy contract, trains reproducibly."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
import torch
from policy_contract import check_policy_contract
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss, roc_auc_score

import policy_synthetic as synth
from liveslate import schema
from liveslate.config import DeepFMConfig, Params, TrainConfig
from liveslate.policies.base import Candidates
from liveslate.policies.deepfm import DeepFMPolicy
from liveslate.policies.deepfm_train import train_deepfm
from liveslate.policies.training import NonFiniteLossError, TrainingData, TrainRun


def training_data(n_train: int, n_valid: int, use_vectors: bool = False) -> TrainingData:
    catalog = synth.catalog()
    index = schema.item_index(catalog)
    vectors = None
    if use_vectors:
        raw, ids = synth.item_vectors()
        vectors = raw[pd.Index(ids).get_indexer(index)]
    return TrainingData(train=synth.logs(n_train, seed=1), valid=synth.logs(n_valid, seed=2, start="2024-02-01"),
                        catalog=catalog, index=index, item_vectors=vectors, slate_size=3, seed=7)


def params_with(name: str = "deepfm_nokg", **changes) -> Params:
    base = DeepFMConfig(use_kg=name == "deepfm", embedding_dim=4, hidden=(16,), dropout=0.0, lr=0.05,
                        batch_size=256, max_epochs=20)
    section = dataclasses.replace(base, **changes)
    return Params(train=TrainConfig(**{name: section}))


def run_for(tmp_path, name: str = "deepfm_nokg", **changes) -> TrainRun:
    return TrainRun(name=name, checkpoint_dir=tmp_path / "ckpt" / name, fingerprint="f", progress=False,
                    patience=changes.pop("patience", 5))


def features(frame: pd.DataFrame) -> np.ndarray:
    """Main-effect design for logistic regression: one-hot viewer, colour, position + level."""
    colours = synth.catalog().set_index("item_id").loc[frame["item_id"].astype(str), "cat_colour"].astype(str)
    return np.column_stack([(frame["ctx_user"] == "u1").to_numpy(float), (colours == "c1").to_numpy(float),
                            np.eye(3)[frame["position"].to_numpy()], frame["ctx_level"].to_numpy()])


def test_deepfm_fits_xor_that_logistic_regression_cannot(tmp_path):
    data = training_data(3000, 1000)
    result = train_deepfm(data, params_with(item_id_field=False), run_for(tmp_path))
    test = synth.logs(3000, seed=3, start="2024-03-01")
    clicks = test["click"].to_numpy()
    index = data.index
    deepfm = result.policy.click_probability(test, index.get_indexer(test["item_id"].astype(str)),
                                             test["position"].to_numpy())
    logistic = LogisticRegression(max_iter=1000).fit(features(data.train), data.train["click"].to_numpy())
    baseline = logistic.predict_proba(features(test))[:, 1]
    colours = synth.catalog().set_index("item_id").loc[test["item_id"].astype(str), "cat_colour"].astype(str)
    oracle = synth.true_ctr(test["ctx_user"].astype(str).to_numpy(), colours.to_numpy())
    # Oracle AUC by hand: positives are 7/8 from the high group, negatives 3/4 from the low
    # group; AUC = 7/8·3/4 + ½(7/8·1/4 + 1/8·3/4) = 0.8125. The sample's oracle AUC is near it.
    oracle_auc = roc_auc_score(clicks, oracle)
    assert abs(oracle_auc - 0.8125) < 0.03
    assert roc_auc_score(clicks, baseline) < 0.6, "main effects carry no signal under XOR"
    assert roc_auc_score(clicks, deepfm) > oracle_auc - 0.02
    assert log_loss(clicks, deepfm) < log_loss(clicks, baseline) - 0.1
    assert abs(log_loss(clicks, deepfm) - log_loss(clicks, oracle)) < 0.02


def test_deepfm_policy_contract(tmp_path):
    data = training_data(600, 200, use_vectors=True)
    result = train_deepfm(data, params_with("deepfm", max_epochs=3), run_for(tmp_path, "deepfm"))
    contexts = pd.DataFrame({"ctx_user": pd.array(["u0", "u1", "unseen", "u1"], dtype="string"),
                             "ctx_level": [0.0, 1.0, -2.0, np.nan]})
    # Item 12 is newer than the policy (an item appended to the catalogue later): unknown bucket.
    candidates = Candidates.from_lists([[0, 1, 2, 3, 4, 5], [6, 7, 8], [1, 12, 7, 9], [11, 10, 0, 2, 4]])
    check_policy_contract(result.policy, contexts, candidates, k=2, tmp_path=tmp_path)


def test_training_is_deterministic_and_resumes_exactly(tmp_path):
    data = training_data(600, 200)
    first = train_deepfm(data, params_with(max_epochs=4, dropout=0.2), run_for(tmp_path / "a"))
    second = train_deepfm(data, params_with(max_epochs=4, dropout=0.2), run_for(tmp_path / "b"))
    assert first.history == second.history
    for key, tensor in first.policy.net.state_dict().items():
        assert torch.equal(tensor, second.policy.net.state_dict()[key]), key
    # Interrupted after 2 epochs (its checkpoint stays), then resumed to 4: same numbers.
    train_deepfm(data, params_with(max_epochs=2, dropout=0.2), run_for(tmp_path / "c"))
    resumed = train_deepfm(data, params_with(max_epochs=4, dropout=0.2), run_for(tmp_path / "c"))
    assert resumed.history == first.history
    for key, tensor in first.policy.net.state_dict().items():
        assert torch.equal(tensor, resumed.policy.net.state_dict()[key]), key


def test_non_finite_loss_stops_with_step_and_term(tmp_path):
    data = training_data(600, 200)
    with pytest.raises(NonFiniteLossError, match=r"step \d+: loss term '(valid_)?bce' is (nan|inf)"):
        train_deepfm(data, params_with(lr=1e30, max_epochs=5), run_for(tmp_path))


def test_use_kg_without_vectors_is_refused(tmp_path):
    with pytest.raises(ValueError, match="use_kg is true but no KG item vectors"):
        train_deepfm(training_data(100, 50), params_with("deepfm"), run_for(tmp_path, "deepfm"))


def test_saved_deepfm_is_loaded_without_pickles(tmp_path):
    data = training_data(300, 100)
    policy = train_deepfm(data, params_with(max_epochs=1), run_for(tmp_path)).policy
    policy.save(tmp_path / "model")
    state = torch.load(tmp_path / "model" / "weights.pt", weights_only=True)
    assert all(isinstance(v, torch.Tensor) for v in state.values())
    loaded = DeepFMPolicy.load(tmp_path / "model")
    assert loaded.context_encoder == policy.context_encoder and loaded.item_ids == policy.item_ids
