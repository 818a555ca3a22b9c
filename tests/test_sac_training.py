"""Offline discrete SAC training on synthetic problems with known answers."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch

from liveslate.config import ConfigError, SacConfig, from_mapping
from liveslate.policies.sac_training import (
    EntropyTargetWarning,
    NonFiniteLossError,
    TransitionTensors,
    build_networks,
    train_sac,
)

@pytest.fixture(autouse=True)
def one_thread():
    """One torch thread, as the train stage uses: tiny networks lose time to a second one."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# Small and fast: a few hundred updates of 16-wide networks take about a second.
FAST = SacConfig(steps=300, batch_size=128, embedding_dim=4, hidden=16, actor_lr=1e-2, critic_lr=1e-2,
                 alpha_lr=1e-2, tau=0.05, eval_every=100)
N_CONTEXTS = 3


def bandit(n: int, click_rate: list[float], logged: list[int] | None = None, seed: int = 0) -> TransitionTensors:
    """One-step logs: every row offers all ``len(click_rate)`` items; the logger picks uniformly among ``logged``."""
    generator = torch.Generator().manual_seed(seed)
    m = len(click_rate)
    logged = list(range(m)) if logged is None else logged
    codes = torch.randint(N_CONTEXTS, (n, 1), generator=generator)
    action = torch.tensor(logged)[torch.randint(len(logged), (n,), generator=generator)]
    reward = (torch.rand(n, generator=generator) < torch.tensor(click_rate)[action]).float()
    items = torch.arange(m).repeat(n, 1)
    mask = torch.ones(n, m, dtype=torch.bool)
    return TransitionTensors(codes=codes, numeric=torch.zeros(n, 0), items=items, mask=mask, action=action,
                             reward=reward, done=torch.ones(n, dtype=torch.bool), next_codes=codes,
                             next_numeric=torch.zeros(n, 0), next_items=items, next_mask=mask)


def every_context(m: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    codes = torch.arange(N_CONTEXTS).unsqueeze(1)
    return codes, torch.zeros(N_CONTEXTS, 0), torch.arange(m).repeat(N_CONTEXTS, 1)


def fit(data: TransitionTensors, config: SacConfig, n_items: int, seed: int = 0):
    nets = build_networks(config, [N_CONTEXTS], 0, n_items, None, seed)
    return nets, train_sac(nets, data, config, seed, progress=False)


def test_actor_puts_most_probability_on_the_clearly_best_item():
    nets, result = fit(bandit(3000, [0.1, 0.1, 0.8, 0.1, 0.1]), FAST, 5)
    with torch.no_grad():
        probs = torch.softmax(nets.actor(*every_context(5)), dim=-1)
    assert (probs.argmax(dim=1) == 2).all()
    # Uniform would give 0.2; the default entropy target (0.5 · log 5) still allows ≈ 0.79.
    assert probs[:, 2].min() > 0.6
    assert all(math.isfinite(v) for record in result.history for v in record.values())


def test_cql_keeps_a_never_logged_item_below_every_logged_item():
    # Item 3 is never logged; the logged items' true click rates are 0.2, 0.5, 0.3.
    data = bandit(3000, [0.2, 0.5, 0.3, 0.9], logged=[0, 1, 2])
    nets, _ = fit(data, replace(FAST, cql_weight=1.0), 4)
    with torch.no_grad():
        for critic in (nets.critic1, nets.critic2):
            q = critic(*every_context(4))
            assert (q[:, 3] < q[:, :3].min(dim=1).values).all()
        probs = torch.softmax(nets.actor(*every_context(4)), dim=-1)
    assert (probs.argmax(dim=1) == 1).all()  # the best *logged* item, not the unsupported one
    assert probs[:, 3].max() < 0.05


# Temperature runs: a slower actor than FAST (no saturated softmax) and a fast temperature step.
TEMPERATURE = replace(FAST, steps=300, actor_lr=3e-3, alpha_lr=2e-2, log_alpha_min=-6.0, log_alpha_max=0.0,
                      eval_every=50)


@pytest.mark.parametrize("m", [2, 3])
@pytest.mark.parametrize("ratio", [0.98, 1.0])
def test_temperature_stays_finite_and_clamped_for_high_entropy_targets(m, ratio):
    config = replace(TEMPERATURE, target_entropy_ratio=ratio)
    data = bandit(2000, [0.9] + [0.05] * (m - 1))
    if ratio >= 1.0:
        with pytest.warns(EntropyTargetWarning, match="target_entropy_ratio"):
            nets, result = fit(data, config, m)
    else:
        nets, result = fit(data, config, m)
    log_alpha = nets.log_alpha.item()
    assert math.isfinite(log_alpha)
    assert config.log_alpha_min <= log_alpha <= config.log_alpha_max
    assert all(config.log_alpha_min - 1e-6 <= math.log(r["alpha"]) <= config.log_alpha_max + 1e-6
               for r in result.history)
    if ratio >= 1.0:
        # log |candidates| is the most entropy any policy has: the target is unreachable,
        # so the gradient pushes log α up on every step and only the clamp holds it there.
        assert log_alpha == pytest.approx(config.log_alpha_max, abs=1e-6)


def test_default_entropy_ratio_settles_on_its_target_inside_the_clamp():
    """Two items, Q gap ≈ 0.85: target 0.5 · log 2 = 0.347 nats is met with α ≈ gap / logit(0.89) ≈ 0.4."""
    config = replace(TEMPERATURE, log_alpha_max=1.0)
    assert config.target_entropy_ratio == 0.5  # the shipped default
    nets, result = fit(bandit(2000, [0.9, 0.05]), config, 2)
    last = result.history[-1]
    assert last["entropy"] == pytest.approx(0.5 * math.log(2), abs=0.1)
    assert config.log_alpha_min + 1 < nets.log_alpha.item() < config.log_alpha_max - 0.5
    # The 0.98 target asks for p(best) ≈ 0.585 instead of 0.89: α must be ~6× larger for the same Q gap.
    nets_98, _ = fit(bandit(2000, [0.9, 0.05]), replace(config, target_entropy_ratio=0.98), 2)
    assert nets_98.log_alpha.item() > nets.log_alpha.item() + 0.5


def test_fixed_alpha_zero_trains_to_a_greedy_actor():
    config = replace(FAST, alpha_mode="fixed", alpha_init=0.0)
    nets, result = fit(bandit(3000, [0.1, 0.1, 0.8, 0.1, 0.1]), config, 5)
    assert not hasattr(nets, "log_alpha")
    assert all(record["alpha"] == 0.0 for record in result.history)
    assert all(math.isfinite(v) for record in result.history for v in record.values())
    with torch.no_grad():
        probs = torch.softmax(nets.actor(*every_context(5)), dim=-1)
    # No entropy bonus: the actor collapses onto the best item.
    assert probs[:, 2].min() > 0.95


def test_behaviour_cloning_alone_recovers_the_logging_distribution():
    """Zero rewards, no CQL, α = 0: the critics hold Q = 0, so only the BC term moves the actor,
    and its optimum is the maximum-likelihood fit of the logger's choices, (0.6, 0.3, 0.1)."""
    n = 3000
    generator = torch.Generator().manual_seed(5)
    draws = torch.multinomial(torch.tensor([0.6, 0.3, 0.1]), n, replacement=True, generator=generator)
    data = replace(bandit(n, [0.0, 0.0, 0.0]), action=draws)
    config = replace(FAST, alpha_mode="fixed", alpha_init=0.0, cql_weight=0.0, bc_weight=1.0)
    nets, _ = fit(data, config, 3)
    with torch.no_grad():
        probs = torch.softmax(nets.actor(*every_context(3)), dim=-1)
    logged = torch.bincount(draws, minlength=3).float() / n
    assert torch.allclose(probs, logged.expand_as(probs), atol=0.05)


def test_td_target_propagates_the_next_state_value():
    """Two-step chain with known values (γ = 0.9, α = 0, no CQL).

    State A (code 0): item 0 → r = 0, then state B; item 1 → r = 0.5, terminal.
    State B (code 1): item 2 → r = 1, item 3 → r = 0, both terminal.
    Q(B, 2) = 1, Q(B, 3) = 0, so V(B) = 1 under the greedy actor and Q(A, 0) = 0.9 > Q(A, 1) = 0.5.
    """
    n = 2000
    generator = torch.Generator().manual_seed(3)
    in_b = torch.rand(n, generator=generator) < 0.5
    pick = torch.randint(2, (n,), generator=generator)
    codes = in_b.long().unsqueeze(1)
    items = torch.where(in_b.unsqueeze(1), torch.tensor([2, 3]), torch.tensor([0, 1]))
    reward = torch.where(in_b, (pick == 0).float(), torch.where(pick == 1, 0.5, 0.0))
    done = in_b | (pick == 1)
    next_codes = torch.ones(n, 1, dtype=torch.long)
    data = TransitionTensors(codes=codes, numeric=torch.zeros(n, 0), items=items,
                             mask=torch.ones(n, 2, dtype=torch.bool), action=pick, reward=reward, done=done,
                             next_codes=next_codes, next_numeric=torch.zeros(n, 0),
                             next_items=torch.tensor([2, 3]).repeat(n, 1), next_mask=torch.ones(n, 2, dtype=torch.bool))
    config = replace(FAST, steps=300, tau=0.1, gamma=0.9, alpha_mode="fixed", alpha_init=0.0, cql_weight=0.0)
    nets = build_networks(config, [2], 0, 4, None, 0)
    train_sac(nets, data, config, 0, progress=False)
    with torch.no_grad():
        q_a = nets.critic1(torch.tensor([[0]]), torch.zeros(1, 0), torch.tensor([[0, 1]]))[0]
        q_b = nets.critic1(torch.tensor([[1]]), torch.zeros(1, 0), torch.tensor([[2, 3]]))[0]
    assert q_b[0].item() == pytest.approx(1.0, abs=0.1) and q_b[1].item() == pytest.approx(0.0, abs=0.1)
    assert q_a[0].item() == pytest.approx(0.9, abs=0.1) and q_a[1].item() == pytest.approx(0.5, abs=0.1)


def test_nan_reward_stops_training_naming_step_and_term():
    data = bandit(64, [0.5, 0.5])
    reward = data.reward.clone()
    reward[10] = float("nan")
    data = replace(data, reward=reward)
    config = replace(FAST, batch_size=64)
    # A batch of 64 drawn with replacement from 64 rows misses row 10 with probability (63/64)^64 ≈ 0.37,
    # so the step is not known in advance; the message must still name one and the term.
    with pytest.raises(NonFiniteLossError, match=r"step \d+: loss term 'critic_td' is nan"):
        fit(data, config, 2)


def test_nan_actor_weight_stops_training_naming_step_one_and_the_actor_term():
    config = replace(FAST, steps=5)
    data = bandit(256, [0.5, 0.5])
    nets = build_networks(config, [N_CONTEXTS], 0, 2, None, 0)
    with torch.no_grad():
        nets.actor.item_bias.weight[1].fill_(float("nan"))
    with pytest.raises(NonFiniteLossError, match=r"step 1: loss term 'actor' is nan"):
        train_sac(nets, data, config, 0, progress=False)


def test_transitions_reject_an_action_outside_the_candidates():
    data = bandit(4, [0.5, 0.5])
    mask = data.mask.clone()
    mask[2, data.action[2]] = False
    with pytest.raises(ValueError, match="row 2: action"):
        replace(data, mask=mask)


@pytest.mark.parametrize("key, value, message", [
    ("alpha_init", 0.0, "train.sac.alpha_init: expected > 0 when alpha_mode is auto"),
    ("gamma", 1.0, r"train.sac.gamma: expected a discount in \[0, 1\)"),
    ("log_alpha_min", 5.0, "train.sac.log_alpha_min: expected below log_alpha_max"),
    ("cql_weight", -1.0, "train.sac.cql_weight: expected >= 0"),
    ("alpha_mode", "sometimes", "alpha_mode: expected one of auto, fixed"),
    ("alpha_init", 100.0, r"train.sac.alpha_init: expected log\(alpha_init\) inside \[log_alpha_min, log_alpha_max\]"),
])
def test_sac_config_rejects_bad_values_naming_the_field(key, value, message):
    with pytest.raises(ConfigError, match=message):
        from_mapping(SacConfig, {key: value}, "train.sac")


def test_fixed_alpha_zero_is_a_valid_config():
    assert from_mapping(SacConfig, {"alpha_mode": "fixed", "alpha_init": 0.0}, "train.sac").alpha_init == 0.0


def test_an_interrupted_run_resumes_to_the_same_weights(tmp_path):
    """Stop after 40 of 80 updates, resume from the checkpoint: identical to one uninterrupted run."""
    from liveslate.policies.training import Checkpoint, EarlyStopping, TrainRun

    data = bandit(1000, [0.1, 0.6, 0.3])
    valid = bandit(200, [0.1, 0.6, 0.3], seed=1)
    config = replace(FAST, steps=80, eval_every=20)

    def run(directory, steps):
        nets = build_networks(config, [N_CONTEXTS], 0, 3, None, 0)
        checkpoint = Checkpoint(TrainRun(name="sac", checkpoint_dir=directory, fingerprint="f"))
        result = train_sac(nets, data, replace(config, steps=steps), 0, valid=valid, progress=False,
                           stopper=EarlyStopping(patience=100), checkpoint=checkpoint)
        return nets, result

    whole, whole_result = run(tmp_path / "whole", 80)
    run(tmp_path / "split", 40)
    resumed, resumed_result = run(tmp_path / "split", 80)
    assert [r["step"] for r in resumed_result.history] == [20, 40, 60, 80]
    def without_timing(history):
        return [{k: v for k, v in row.items() if k != "updates_per_second"} for row in history]

    assert without_timing(resumed_result.history) == without_timing(whole_result.history)
    assert all(row["updates_per_second"] > 0 for row in resumed_result.history)
    for name, tensor in whole.state_dict().items():
        assert torch.equal(tensor, resumed.state_dict()[name]), name
