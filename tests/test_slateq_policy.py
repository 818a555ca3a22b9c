"""The SlateQ policy: trainer on synthetic canonical logs, the Policy contract, slates, transitions."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
import torch
from policy_contract import check_policy_contract

import policy_synthetic as synth
from liveslate import schema
from liveslate.config import Params, SlateQConfig, TrainConfig
from liveslate.policies.base import Candidates, Exploration
from liveslate.policies.dataset import build_transitions
from liveslate.policies.encoders import fit_context_encoder
from liveslate.policies.registry import load_policy
from liveslate.policies.slateq import SlateQPolicy
from liveslate.policies.slateq_train import slate_transitions, train_slateq_policy
from liveslate.policies.trainers import get_trainer
from liveslate.policies.training import TrainingData, TrainRun

SMALL = SlateQConfig(steps=600, batch_size=1024, embedding_dim=4, hidden=8, lr=0.01, l2=0.0,
                     eval_every=100)


def training_data(n_train: int = 3000, n_valid: int = 500, with_vectors: bool = True) -> TrainingData:
    catalog = synth.catalog()
    index = schema.item_index(catalog)
    vectors = None
    if with_vectors:
        raw, ids = synth.item_vectors()
        vectors = raw[pd.Index(ids).get_indexer(index)]
    return TrainingData(train=synth.logs(n_train, seed=1), valid=synth.logs(n_valid, seed=2, start="2024-02-01"),
                        catalog=catalog, index=index, item_vectors=vectors, slate_size=3, seed=7)


def run_for(path, patience: int = 50) -> TrainRun:
    return TrainRun(name="slateq", checkpoint_dir=path / "ckpt", fingerprint="f", progress=False, patience=patience)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    before = torch.get_num_threads()
    result = train_slateq_policy(training_data(), Params(train=TrainConfig(slateq=SMALL)),
                                 run_for(tmp_path_factory.mktemp("slateq")))
    torch.set_num_threads(before)
    torch.use_deterministic_algorithms(False)
    return result


def room_batch(user: str, room: str = "r0", copies: int = 1) -> tuple[pd.DataFrame, Candidates]:
    index = schema.item_index(synth.catalog())
    items = [index.get_loc(f"{room}/{i}") for i in range(synth.ITEMS_PER_ROOM)]
    contexts = pd.DataFrame({"ctx_user": pd.array([user] * copies, dtype="string"), "ctx_level": [0.0] * copies})
    return contexts, Candidates.from_lists([items] * copies)


def test_trainer_is_registered_and_reports_its_run(trained):
    assert get_trainer("slateq") is train_slateq_policy
    assert isinstance(trained.policy, SlateQPolicy)
    metrics = trained.metrics
    assert metrics["train_impressions"] == 3000 and metrics["terminal_share"] == 1.0
    assert metrics["updates_per_second"] > 0 and np.isfinite(metrics["valid_choice_nll"])
    assert len(metrics["position_bias"]) == 3 and metrics["position_bias"][0] == 0.0
    assert list(trained.history[0])[0] == "step"
    assert all(row.keys() == trained.history[0].keys() for row in trained.history)


def test_choice_model_recovers_the_synthetic_click_rates(trained):
    """True CTR is 0.7 on (u0, c1) and (u1, c0), 0.1 otherwise, at every position (no position effect)."""
    policy = trained.policy
    colours = np.array([f"c{i % 2}" for i in range(synth.ITEMS_PER_ROOM)])
    errors = []
    for user, good_colour in (("u0", "c1"), ("u1", "c0")):
        truth = np.where(colours == good_colour, synth.HIGH, synth.LOW)
        for room in synth.ROOMS:
            contexts, candidates = room_batch(user, room)
            for position in range(3):
                fitted = policy.click_probability(pd.concat([contexts] * len(truth), ignore_index=True),
                                                  candidates.items[0], np.full(len(truth), position))
                errors.append(fitted - truth)
            # One-step logs: Q̄ = 1 per click, so the single-item value is the click probability.
            np.testing.assert_allclose(policy.scores(contexts, candidates)[0], truth, atol=0.13)
    errors = np.abs(np.concatenate(errors))
    # ~125 logged rows per (viewer, item): standard errors of 0.03–0.04 per cell, so every
    # cell within ~3.5 of them and the average far tighter.
    assert errors.max() < 0.13 and errors.mean() < 0.05, (errors.max(), errors.mean())
    assert np.all(np.abs(policy.position_bias) < 0.3)  # no planted position effect


def test_slateq_policy_contract_in_every_exploration_mode(trained, tmp_path):
    index = schema.item_index(synth.catalog())
    contexts = pd.DataFrame({"ctx_user": pd.array(["u0", "u1", "unseen", "u1"], dtype="string"),
                             "ctx_level": [0.0, 1.0, -2.0, np.nan]})
    candidates = Candidates.from_lists([list(range(6)), [6, 7, 8], [0, 11, 5, 9], [3, 2, 10, 1, 4]])
    assert candidates.items.max() < len(index)
    check_policy_contract(trained.policy, contexts, candidates, k=2, tmp_path=tmp_path)


@pytest.mark.parametrize("method", ["exact", "greedy", "top_k"])
def test_greedy_slate_is_the_optimiser_of_the_policys_own_slate_value(trained, method, tmp_path):
    """Enumerate every ordered 3-slate of a room under the saved model; the exact method must hit the maximum."""
    trained.policy.save(tmp_path / "p")
    policy = load_policy(tmp_path / "p")
    policy.architecture["slate_method"] = method
    contexts, candidates = room_batch("u0")
    k = 3
    chosen = policy.greedy_slate(contexts, candidates, k)
    everything = np.array(list(itertools.permutations(range(candidates.m), k)))
    many = Candidates(items=np.repeat(candidates.items, len(everything), axis=0),
                      mask=np.repeat(candidates.mask, len(everything), axis=0))
    values = policy.slate_values(pd.concat([contexts] * len(everything), ignore_index=True), many, everything)
    # Read the chosen slate's value off the same batch (float32 networks differ in the last
    # bits between batch shapes).
    value = values[[tuple(row) for row in everything.tolist()].index(tuple(chosen[0].tolist()))]
    if method == "exact":
        assert value == values.max()
    assert value <= values.max()
    # Three high-CTR items exist for u0 (the c1 colours): every method shows them.
    colours = [f"c{c % 2}" for c in chosen[0]]
    assert colours == ["c1"] * k


def test_slate_transitions_follow_sessions():
    catalog = synth.catalog()
    index = schema.item_index(catalog)
    logs = synth.logs(5, seed=9)
    # One session of two 2-item impressions (a, b), then a one-step impression (c).
    logs["impression_id"] = pd.array(["a", "a", "b", "b", "c"], dtype="string")
    logs["session_id"] = pd.array(["s", "s", "s", "s", pd.NA], dtype="string")
    logs["step"] = pd.array([0, 0, 1, 1, pd.NA], dtype="Int32")
    logs["position"] = np.array([0, 1, 1, 0, 2], dtype="int16")
    logs["room_id"] = pd.array(["r1"] * 5, dtype="string")
    logs["item_id"] = pd.array(["r1/0", "r1/3", "r1/4", "r1/5", "r1/2"], dtype="string")
    logs["ctx_user"] = pd.array(["u0", "u0", "u1", "u1", "u0"], dtype="string")
    logs["ctx_level"] = [0.1, 0.1, 0.2, 0.2, 0.3]
    logs["click"] = np.array([0, 1, 0, 0, 1], dtype="int8")
    logs["reward"] = logs["click"].astype("float32")
    encoder = fit_context_encoder(logs)
    data = slate_transitions(build_transitions(logs, encoder, index, 3, catalog))
    pos = {item: index.get_loc(item) for item in ["r1/0", "r1/2", "r1/3", "r1/4", "r1/5"]}
    assert data.done.tolist() == [False, True, True]
    assert data.slate_mask.tolist() == [[True, True, False], [True, True, False], [False, False, True]]
    assert data.slate_items[0, :2].tolist() == [pos["r1/0"], pos["r1/3"]]
    assert data.clicks.tolist() == [[0, 1, 0], [0, 0, 0], [0, 0, 1]]
    # The next slate of impression a is b as logged: r1/5 at position 0, r1/4 at position 1.
    assert data.next_slate_items[0, :2].tolist() == [pos["r1/5"], pos["r1/4"]]
    assert data.next_slate_mask[0].tolist() == [True, True, False]
    assert torch.equal(data.next_codes[0], data.codes[1])
    room = sorted(index.get_loc(f"r1/{i}") for i in range(synth.ITEMS_PER_ROOM))
    assert data.next_items[0][data.next_mask[0]].tolist() == room


def test_slate_transitions_reject_a_next_slate_outside_its_candidates():
    catalog = synth.catalog()
    index = schema.item_index(catalog)
    logs = synth.logs(2, seed=4)
    logs["session_id"] = pd.array(["s", "s"], dtype="string")
    logs["step"] = pd.array([0, 1], dtype="Int32")
    logs["room_id"] = pd.array(["r0", "r0"], dtype="string")
    logs["item_id"] = pd.array(["r0/1", "r0/2"], dtype="string")
    logs["candidates"] = [["r0/1", "r0/3"], ["r0/1", "r0/3"]]
    transitions = build_transitions(logs, fit_context_encoder(logs), index, 3, catalog)
    with pytest.raises(ValueError, match="the impression after .* shows item index .* not one of its candidates"):
        slate_transitions(transitions)
    with pytest.raises(ValueError, match="built without a catalogue"):
        slate_transitions(build_transitions(logs, fit_context_encoder(logs), index, 3))


@pytest.mark.parametrize("target", ["sarsa", "q_learning"])
def test_trainer_runs_on_session_logs_with_three_item_slates(tmp_path, target):
    """Sessions of three 3-item impressions: non-terminal transitions, finite losses, a valid policy."""
    rng = np.random.default_rng(3)
    frames = []
    for split, n_sessions in (("train", 60), ("valid", 20)):
        logs = synth.logs(n_sessions * 9, seed=11 if split == "train" else 12,
                          start="2024-01-02" if split == "train" else "2024-02-01")
        impression = np.repeat(np.arange(n_sessions * 3), 3)
        logs["impression_id"] = pd.array([f"{split}-{i}" for i in impression], dtype="string")
        logs["session_id"] = pd.array([f"{split}-s{i // 3}" for i in impression], dtype="string")
        logs["step"] = pd.array(impression % 3, dtype="Int32")
        logs["position"] = np.tile(np.arange(3), n_sessions * 3).astype("int16")
        logs["room_id"] = pd.array(["r0"] * len(logs), dtype="string")
        logs["item_id"] = pd.array([f"r0/{i}" for row in range(n_sessions * 3)
                                    for i in rng.permutation(synth.ITEMS_PER_ROOM)[:3]], dtype="string")
        logs["ctx_user"] = logs["ctx_user"].iloc[np.repeat(np.arange(0, len(logs), 3), 3)].to_numpy()
        logs["ctx_level"] = logs["ctx_level"].iloc[np.repeat(np.arange(0, len(logs), 3), 3)].to_numpy()
        frames.append(logs)
    data = TrainingData(train=frames[0], valid=frames[1], catalog=synth.catalog(),
                        index=schema.item_index(synth.catalog()), item_vectors=None, slate_size=3, seed=7)
    config = SlateQConfig(steps=20, batch_size=32, hidden=8, embedding_dim=4, eval_every=10, gamma=0.9,
                          target=target, use_kg=False)
    result = train_slateq_policy(data, Params(train=TrainConfig(slateq=config)), run_for(tmp_path))
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(False)
    assert result.metrics["terminal_share"] == pytest.approx(1 / 3)
    assert all(np.isfinite(row["train_td_error"]) and np.isfinite(row["valid_loss"]) for row in result.history)
    contexts, candidates = room_batch("u1")
    slate = result.policy.slate(contexts, candidates, 3, Exploration(mode="epsilon", epsilon=0.2, seed=1))
    assert len(set(slate.items[0].tolist())) == 3


def test_use_kg_without_vectors_names_the_setting(tmp_path):
    with pytest.raises(ValueError, match="train.slateq.use_kg is true but no KG item vectors"):
        train_slateq_policy(training_data(100, 50, with_vectors=False), Params(train=TrainConfig(slateq=SMALL)),
                            run_for(tmp_path))


def test_new_items_are_rejected_naming_the_row(trained):
    contexts, _ = room_batch("u0")
    with pytest.raises(ValueError, match="candidates row 0, column 1: item index 99 is outside the 12 items"):
        trained.policy.scores(contexts, Candidates.from_lists([[0, 99]]))
