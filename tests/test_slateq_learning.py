"""SlateQ learning on synthetic logs with known answers (tensor level, no files)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from liveslate.config import SlateQConfig
from liveslate.policies import slateq_training as training_module
from liveslate.policies.choice_model import choice_logits, choice_probabilities
from liveslate.policies.slate_optim import optimise_slates
from liveslate.policies.training import Checkpoint, NonFiniteLossError, TrainRun
from liveslate.policies.slateq_training import (  # noqa: I001
    SlateTransitions,
    build_networks,
    l2_norm,
    losses,
    slate_instance,
    slateq_update,
    make_optimizer,
    train_slateq,
)


def transitions(codes, slate_items, slate_positions, clicks, rewards, done=None, next_codes=None,
                next_slate_items=None, next_items=None):
    """SlateTransitions from plain arrays; the next slate is shown at positions 0..K'−1."""
    n = len(codes)
    long = lambda a: torch.as_tensor(np.array(a), dtype=torch.int64)  # noqa: E731
    flt = lambda a: torch.as_tensor(np.asarray(a), dtype=torch.float32)  # noqa: E731
    slate_items = np.asarray(slate_items)
    done = np.ones(n, bool) if done is None else np.asarray(done)
    next_codes = np.zeros_like(codes) if next_codes is None else next_codes
    next_slate_items = np.zeros((n, 1), np.int64) if next_slate_items is None else np.asarray(next_slate_items)
    next_items = next_slate_items if next_items is None else np.asarray(next_items)
    return SlateTransitions(
        codes=long(codes), numeric=torch.zeros(n, 0), slate_items=long(slate_items),
        slate_positions=long(slate_positions), slate_mask=torch.ones(slate_items.shape, dtype=torch.bool),
        clicks=flt(clicks), rewards=flt(rewards), done=torch.as_tensor(done),
        next_codes=long(next_codes), next_numeric=torch.zeros(n, 0), next_slate_items=long(next_slate_items),
        next_slate_positions=long(np.broadcast_to(np.arange(next_slate_items.shape[1]), next_slate_items.shape)),
        next_slate_mask=torch.ones(next_slate_items.shape, dtype=torch.bool),
        next_items=long(next_items), next_mask=torch.ones(next_items.shape, dtype=torch.bool))


@pytest.fixture(autouse=True)
def one_thread():
    """These networks are tiny: one thread is faster than two fighting over shared CI cores."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


# ----------------------------------------------------------------------------- choice model


def test_choice_model_recovers_planted_click_probabilities_and_position_bias():
    rng = np.random.default_rng(11)
    n_contexts, n_items, k, n = 3, 6, 3, 20_000
    true_utility = rng.normal(-1.0, 1.0, size=(n_contexts, n_items))
    true_bias = np.array([0.0, -0.5, -1.2])
    codes = rng.integers(0, n_contexts, size=(n, 1))
    slates = np.argsort(rng.random((n, n_items)), axis=1)[:, :k]  # uniformly random ordered slates
    logits = np.concatenate([np.zeros((n, 1)), true_utility[codes[:, 0][:, None], slates] + true_bias], axis=1)
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    outcome = (rng.random((n, 1)) > np.cumsum(probs, axis=1)).sum(axis=1)  # 0 = no click, 1 + s = slot s
    clicks = np.zeros((n, k), np.float32)
    clicks[outcome > 0, outcome[outcome > 0] - 1] = 1.0
    data = transitions(codes, slates, np.broadcast_to(np.arange(k), (n, k)), clicks, clicks)

    config = SlateQConfig(steps=400, batch_size=4096, lr=0.03, l2=0.0, gamma=0.0,
                          embedding_dim=4, hidden=8, eval_every=100)
    torch.manual_seed(0)
    nets = build_networks(config, [n_contexts], 0, n_items, n_positions=k)
    train_slateq(nets, data, config, seed=0, progress=False)

    fitted_bias = nets.choice.bias().detach().numpy()
    np.testing.assert_allclose(fitted_bias, true_bias, atol=0.1)
    # Click probabilities on fresh random slates in every context, against the planted model.
    test_codes = np.repeat(np.arange(n_contexts), 50)[:, None]
    test_slates = np.argsort(rng.random((len(test_codes), n_items)), axis=1)[:, :k]
    positions = torch.as_tensor(np.broadcast_to(np.arange(k), test_slates.shape).copy())
    with torch.no_grad():
        utility = nets.choice.utility(torch.as_tensor(test_codes), torch.zeros(len(test_codes), 0),
                                      torch.as_tensor(test_slates))
        fitted = choice_probabilities(choice_logits(utility, positions, torch.ones(test_slates.shape, dtype=torch.bool),
                                                    nets.choice.bias())).numpy()
    true_logits = np.concatenate([np.zeros((len(test_codes), 1)),
                                  true_utility[test_codes[:, 0][:, None], test_slates] + true_bias], axis=1)
    truth = np.exp(true_logits) / np.exp(true_logits).sum(axis=1, keepdims=True)
    # ~3,300 showings per (context, item): a standard error of ~0.01 per probability.
    assert np.abs(fitted - truth).max() < 0.04, np.abs(fitted - truth).max()


# ----------------------------------------------------------------------------- two-step toy

A, B, C, D = 0, 1, 2, 3
START, GOOD, POOR = 0, 1, 2


def two_step_log(seed: int, n_sessions: int = 2000):
    """Start state: show A or B alone. A pays 1 but leads to the poor state (everything pays 0);
    B pays 0.5 and leads to the good state, where C pays 2 and D pays 0. Every shown item is
    clicked with probability 0.8; a no-click ends the session. The logger shows uniformly
    random items. True values (no-click worth 0):
        V(good) = 0.8·2 = 1.6 for the best slate {C}, 0.8·(2 + 0)/2 = 0.8 for the logger's;
        Q̄(start, A) = 1;  Q̄(start, B) = 0.5 + γ·0.8 (SARSA) or 0.5 + γ·1.6 (Q-learning).
    """
    rng = np.random.default_rng(seed)
    rows = []  # (code, item, click, reward, done, next_code, next_item)
    for _ in range(n_sessions):
        first = rng.choice([A, B])
        clicked = rng.random() < 0.8
        if not clicked:
            rows.append((START, first, 0, 0.0, True, START, C))
            continue
        state = POOR if first == A else GOOD
        second = rng.choice([C, D])
        rows.append((START, first, 1, 1.0 if first == A else 0.5, False, state, second))
        clicked2 = rng.random() < 0.8
        reward2 = 2.0 if (state == GOOD and second == C and clicked2) else 0.0
        rows.append((state, second, int(clicked2), reward2, True, state, C))
    code, item, click, reward, done, next_code, next_item = map(np.array, zip(*rows))
    n = len(rows)
    return transitions(code[:, None], item[:, None], np.zeros((n, 1)), click[:, None].astype(np.float32),
                       reward[:, None].astype(np.float32), done=done.astype(bool), next_codes=next_code[:, None],
                       next_slate_items=next_item[:, None], next_items=np.tile([C, D], (n, 1)))


@pytest.mark.parametrize("target,gamma,best,q_b", [
    ("sarsa", 0.9, B, 0.5 + 0.9 * 0.8),
    ("q_learning", 0.9, B, 0.5 + 0.9 * 1.6),
    ("sarsa", 0.0, A, 0.5),  # γ = 0 skips the next state, so the target type cannot matter
])
def test_long_term_value_beats_the_myopic_item_only_when_gamma_is_positive(target, gamma, best, q_b):
    data = two_step_log(seed=5)
    config = SlateQConfig(steps=600, batch_size=256, lr=0.05, l2=0.0, gamma=gamma, target=target,
                          tau=0.1, embedding_dim=4, hidden=8, eval_every=600)
    torch.manual_seed(0)
    nets = build_networks(config, [3], 0, 4, n_positions=1)
    train_slateq(nets, data, config, seed=0, progress=False)
    with torch.no_grad():
        codes, numeric, candidates = torch.tensor([[START]]), torch.zeros(1, 0), torch.tensor([[A, B]])
        values, null_value = nets.value(codes, numeric, candidates)
        instance = slate_instance(nets.choice.utility(codes, numeric, candidates), values, null_value,
                                  nets.choice.bias(), torch.ones(1, 2, dtype=torch.bool), k=1)
    assert values[0, A].item() == pytest.approx(1.0, abs=0.12)
    assert values[0, B].item() == pytest.approx(q_b, abs=0.15)
    for method in ("exact", "greedy", "top_k"):
        assert optimise_slates(instance, method).slates[0, 0].item() == best, method


# ----------------------------------------------------------------------------- update step


@pytest.mark.parametrize("k", [1, 2, 3])
@pytest.mark.parametrize("target", ["sarsa", "q_learning"])
@pytest.mark.parametrize("method", ["exact", "greedy", "top_k"])
def test_one_update_step_has_a_finite_loss(k, target, method):
    rng = np.random.default_rng(k)
    n, n_items = 64, 8
    slates = np.argsort(rng.random((n, n_items)), axis=1)[:, :k]
    clicks = (rng.random((n, k)) < 0.3).astype(np.float32)
    data = transitions(rng.integers(0, 4, size=(n, 2)), slates, np.broadcast_to(np.arange(k), (n, k)), clicks,
                       clicks * rng.random((n, k)).astype(np.float32), done=rng.random(n) < 0.3,
                       next_codes=rng.integers(0, 4, size=(n, 2)),
                       next_slate_items=np.argsort(rng.random((n, n_items)), axis=1)[:, :k],
                       next_items=np.tile(np.arange(n_items), (n, 1)))
    config = SlateQConfig(gamma=0.9, target=target, slate_method=method, hidden=8, embedding_dim=4)
    torch.manual_seed(0)
    nets = build_networks(config, [4, 4], 0, n_items, n_positions=3)
    before = [p.detach().clone() for p in nets.value.parameters()]
    terms = slateq_update(nets, make_optimizer(nets, config), data, config, step=1)
    assert all(np.isfinite(v) for v in terms.values())
    assert terms["choice_nll"] > 0 and terms["td_error"] > 0
    assert any(not torch.equal(a, b) for a, b in zip(before, nets.value.parameters()))


def test_non_finite_loss_names_the_step_and_term():
    data = transitions(np.zeros((4, 1)), np.zeros((4, 1)), np.zeros((4, 1)), np.ones((4, 1)),
                       np.full((4, 1), np.nan))
    config = SlateQConfig(gamma=0.0, hidden=4, embedding_dim=2)
    nets = build_networks(config, [1], 0, 1, n_positions=1)
    with pytest.raises(NonFiniteLossError, match="step 7: loss term 'objective' is nan"):
        slateq_update(nets, make_optimizer(nets, config), data, config, step=7)


def test_l2_prior_spares_only_the_global_levels_and_position_bias():
    config = SlateQConfig(hidden=4, embedding_dim=2, l2=0.5, gamma=0.0)
    nets = build_networks(config, [3], 0, 5, n_positions=3)
    with torch.no_grad():
        nets.choice.scorer.offset.fill_(100.0)
        nets.choice.free_bias.fill_(100.0)
        nets.value.scorer.offset.fill_(100.0)
    by_hand = sum(float((p.detach() ** 2).sum()) for module in (nets.choice, nets.value) for name, p in module.named_parameters()
                  if name not in ("scorer.offset", "free_bias"))
    assert l2_norm(nets.choice).item() + l2_norm(nets.value).item() == pytest.approx(by_hand, rel=1e-5)
    data = transitions(np.zeros((4, 1)), np.zeros((4, 1)), np.zeros((4, 1)), np.ones((4, 1)), np.ones((4, 1)))
    terms = losses(nets, data, config)
    assert terms["objective"].item() == pytest.approx(terms["loss"].item() + 0.5 * by_hand, rel=1e-5)


def test_bad_transitions_are_rejected():
    data = transitions(np.zeros((2, 1)), np.zeros((2, 1)), np.zeros((2, 1)), np.zeros((2, 1)), np.zeros((2, 1)))
    with pytest.raises(ValueError, match="transitions.clicks: 1 rows, expected 2"):
        dataclasses.replace(data, clicks=data.clicks[:1])
    with pytest.raises(ValueError, match="row 1: the slate shows no item"):
        dataclasses.replace(data, slate_mask=torch.tensor([[True], [False]]))
    with pytest.raises(ValueError, match="row 0: not terminal but next_slate_mask is empty"):
        dataclasses.replace(data, done=torch.tensor([False, True]), next_slate_mask=torch.tensor([[False], [True]]))


def test_an_interrupted_run_resumes_where_it_stopped(tmp_path, monkeypatch):
    """40 updates, then 40 more from the checkpoint, equal 80 uninterrupted updates exactly."""
    data = two_step_log(seed=2, n_sessions=200)
    short = SlateQConfig(steps=40, batch_size=32, eval_every=10, gamma=0.9, hidden=4, embedding_dim=2)
    full = dataclasses.replace(short, steps=80)

    def run(config, checkpoint):
        torch.manual_seed(0)
        nets = build_networks(config, [3], 0, 4, n_positions=1)
        result = train_slateq(nets, data, config, seed=3, progress=False, checkpoint=checkpoint)
        return nets, result

    straight, straight_result = run(full, None)
    checkpoint = Checkpoint(TrainRun(name="slateq", checkpoint_dir=tmp_path, fingerprint="f"))
    run(short, checkpoint)
    calls = []
    update = training_module.slateq_update
    monkeypatch.setattr(training_module, "slateq_update", lambda *args: calls.append(1) or update(*args))
    resumed, resumed_result = run(full, checkpoint)
    assert len(calls) == 40  # only the updates after the checkpoint ran again
    assert [row["step"] for row in resumed_result.history] == [row["step"] for row in straight_result.history]
    assert resumed_result.best_step == straight_result.best_step
    for a, b in zip(straight.modules().state_dict().values(), resumed.modules().state_dict().values()):
        assert torch.equal(a, b)
