"""The SAC policy: trainer on synthetic logs, the Policy contract, Plackett–Luce slates, transitions."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest
import torch
from policy_contract import check_policy_contract

import policy_synthetic as synth
from liveslate import schema
from liveslate.config import Params, SacConfig, TrainConfig
from liveslate.policies.base import Candidates, Exploration
from liveslate.policies.dataset import build_transitions
from liveslate.policies.encoders import fit_context_encoder
from liveslate.policies.registry import load_policy
from liveslate.policies.sac import SacPolicy
from liveslate.policies.sac_train import item_transitions, train_sac_policy
from liveslate.policies.trainers import get_trainer
from liveslate.policies.training import TrainingData, TrainRun

SMALL = SacConfig(steps=300, batch_size=128, embedding_dim=4, hidden=16, actor_lr=3e-3, critic_lr=1e-2,
                  alpha_lr=1e-2, tau=0.05, eval_every=100)


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
    return TrainRun(name="sac", checkpoint_dir=path / "ckpt", fingerprint="f", progress=False, patience=patience)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    before = torch.get_num_threads()
    result = train_sac_policy(training_data(), Params(train=TrainConfig(sac=SMALL)),
                              run_for(tmp_path_factory.mktemp("sac")))
    torch.set_num_threads(before)
    torch.use_deterministic_algorithms(False)
    return result


def room_batch(user: str, room: str = "r0", copies: int = 1) -> tuple[pd.DataFrame, Candidates]:
    index = schema.item_index(synth.catalog())
    items = [index.get_loc(f"{room}/{i}") for i in range(synth.ITEMS_PER_ROOM)]
    contexts = pd.DataFrame({"ctx_user": pd.array([user] * copies, dtype="string"), "ctx_level": [0.0] * copies})
    return contexts, Candidates.from_lists([items] * copies)


def test_trainer_is_registered_and_reports_throughput(trained):
    assert get_trainer("sac") is train_sac_policy
    assert isinstance(trained.policy, SacPolicy)
    assert trained.metrics["updates_per_second"] > 0
    assert trained.metrics["train_transitions"] == 3000 and trained.metrics["terminal_share"] == 1.0
    assert list(trained.history[0])[0] == "step"
    assert all(row.keys() == trained.history[0].keys() for row in trained.history)


@pytest.mark.parametrize("user, good_colour", [("u0", "c1"), ("u1", "c0")])
def test_actor_favours_the_items_that_click_for_each_viewer(trained, user, good_colour):
    """True CTR is 0.7 on (u0, c1) and (u1, c0), 0.1 otherwise; uniform would put 0.5 on either colour."""
    for room in synth.ROOMS:
        contexts, candidates = room_batch(user, room)
        probs = np.exp(trained.policy.scores(contexts, candidates))[0]
        colours = [f"c{i % 2}" for i in range(synth.ITEMS_PER_ROOM)]
        mass = sum(p for p, colour in zip(probs, colours) if colour == good_colour)
        assert mass > 0.8
        q = trained.policy.q_values(contexts, candidates)[0]
        good = [q[i] for i, c in enumerate(colours) if c == good_colour]
        bad = [q[i] for i, c in enumerate(colours) if c != good_colour]
        assert min(good) > max(bad)


def test_sac_policy_contract(trained, tmp_path):
    index = schema.item_index(synth.catalog())
    contexts = pd.DataFrame({"ctx_user": pd.array(["u0", "u1", "unseen", "u1"], dtype="string"),
                             "ctx_level": [0.0, 1.0, -2.0, np.nan]})
    candidates = Candidates.from_lists([list(range(6)), [6, 7, 8], [0, 11, 5, 9], [3, 2, 10, 1, 4]])
    assert candidates.items.max() < len(index)
    check_policy_contract(trained.policy, contexts, candidates, k=2, tmp_path=tmp_path)


def test_saved_policy_loads_with_the_same_temperature_and_critics(trained, tmp_path):
    trained.policy.save(tmp_path / "sac")
    loaded = load_policy(tmp_path / "sac")
    contexts, candidates = room_batch("u1")
    assert loaded.alpha == trained.policy.alpha
    np.testing.assert_array_equal(loaded.q_values(contexts, candidates), trained.policy.q_values(contexts, candidates))


def plackett_luce_probability(probs: np.ndarray, slate: tuple[int, ...]) -> float:
    """P(ordered slate) when items are drawn one by one without replacement with weights ``probs``."""
    left, out = 1.0, 1.0
    for column in slate:
        out *= probs[column] / left
        left -= probs[column]
    return out


def test_plackett_luce_slate_probabilities_match_frequencies(trained):
    draws, k = 20_000, 3
    contexts, candidates = room_batch("u0", copies=draws)
    log_pi = trained.policy.scores(contexts.iloc[:1], candidates.take([0]))[0]
    probs = np.exp(log_pi - log_pi.max())
    probs /= probs.sum()  # the actor's float32 log π, renormalised in float64 (as PL's softmax does)
    slate = trained.policy.slate(contexts, candidates, k, Exploration(mode="plackett_luce", temperature=1.0, seed=5))
    exact = {s: plackett_luce_probability(probs, s) for s in itertools.permutations(range(len(probs)), k)}
    assert sum(exact.values()) == pytest.approx(1.0, abs=1e-12)
    drawn = [tuple(row) for row in slate.positions.tolist()]
    # The reported whole-slate probability is the closed form of each drawn slate under its
    # row's own scores (float32 networks give last-bit differences between batch shapes).
    row_log_pi = trained.policy.scores(contexts, candidates)
    row_probs = np.exp(row_log_pi - row_log_pi.max(axis=1, keepdims=True))
    row_probs /= row_probs.sum(axis=1, keepdims=True)
    closed_form = [plackett_luce_probability(row_probs[i], s) for i, s in enumerate(drawn)]
    np.testing.assert_allclose(slate.slate_probability, closed_form, rtol=1e-9)
    # Frequencies: each of the 120 slates within 5 binomial standard errors (all 120 at once
    # fail by chance with probability < 120 · 5.7e-7).
    counts = pd.Series(drawn).value_counts()
    for s, p in exact.items():
        frequency = counts.get(s, 0) / draws
        assert abs(frequency - p) <= 5 * math.sqrt(p * (1 - p) / draws) + 1e-12, (s, frequency, p)
    # Per-position marginals (exact for a room of 6) against the same draws.
    dist = trained.policy.action_dist(contexts.iloc[:1], candidates.take([0]), k,
                                      Exploration(mode="plackett_luce", temperature=1.0))[0]
    for position in range(k):
        frequency = np.bincount(slate.positions[:, position], minlength=len(probs)) / draws
        bound = 5 * np.sqrt(dist[:, position] * (1 - dist[:, position]) / draws) + 1e-12
        assert np.all(np.abs(frequency - dist[:, position]) <= bound)
        expected = [sum(p for s, p in exact.items() if s[position] == j) for j in range(len(probs))]
        np.testing.assert_allclose(dist[:, position], expected, atol=1e-9)


def test_item_transitions_follow_sessions_and_locate_the_logged_item():
    catalog = synth.catalog()
    index = schema.item_index(catalog)
    logs = synth.logs(4, seed=9)
    logs["session_id"] = pd.array(["s", "s", "s", pd.NA], dtype="string")
    logs["step"] = pd.array([0, 1, 2, pd.NA], dtype="Int32")
    encoder = fit_context_encoder(logs)
    transitions = build_transitions(logs, encoder, index, 3, catalog)
    tensors = item_transitions(transitions)
    assert tensors.done.tolist() == [False, False, True, True]
    for row in range(4):
        logged = index.get_loc(str(logs["item_id"].iloc[row]))
        assert tensors.items[row, tensors.action[row]].item() == logged
        assert tensors.reward[row].item() == logs["reward"].iloc[row]
    # Non-terminal rows carry the next impression's context and candidates.
    for row in (0, 1):
        assert torch.equal(tensors.next_codes[row], tensors.codes[row + 1])
        assert torch.equal(tensors.next_items[row], tensors.items[row + 1])


def test_item_transitions_reject_a_logged_item_outside_the_candidates():
    catalog = synth.catalog()
    index = schema.item_index(catalog)
    logs = synth.logs(3, seed=4)
    logs.loc[0, "candidates"] = None
    logs["candidates"] = [["r1/0", "r1/1"] if i == 1 else None for i in range(3)]
    logs.loc[1, "item_id"] = "r0/2"
    transitions = build_transitions(logs, fit_context_encoder(logs), index, 3, catalog)
    with pytest.raises(ValueError, match="logs item index .* not one of its candidates"):
        item_transitions(transitions)


def test_use_kg_without_vectors_names_the_setting(tmp_path):
    with pytest.raises(ValueError, match="train.sac.use_kg is true but no KG item vectors"):
        train_sac_policy(training_data(100, 50, with_vectors=False), Params(train=TrainConfig(sac=SMALL)),
                         run_for(tmp_path))
