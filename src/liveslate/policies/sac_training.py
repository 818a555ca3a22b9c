"""The offline discrete SAC update step and training loop, on tensors.

One update = one minibatch of logged transitions:
1. critics: soft Bellman TD error on the logged item + CQL penalty;
2. actor: Σ π (α log π − min Q) (+ behaviour cloning);
3. temperature (auto mode): log α towards the per-row target entropy, then clamped;
4. Polyak averaging of the target critics.
Every loss term is checked for finiteness before it is used; a non-finite term stops
training with the shared ``NonFiniteLossError`` naming the update step and the term.
"""

from __future__ import annotations

import copy
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field, fields

import torch

from liveslate.config import SacConfig
from liveslate.policies.sac_losses import (
    actor_loss,
    behaviour_cloning_loss,
    cql_penalty,
    critic_loss,
    policy_terms,
    soft_value,
    target_entropy,
    td_target,
    temperature_loss,
)
from liveslate.policies.sac_networks import SacNetworks
from liveslate.policies.training import Checkpoint, EarlyStopping, NonFiniteLossError, check_finite

__all__ = ["EntropyTargetWarning", "NonFiniteLossError", "SacTrainResult", "TransitionTensors", "build_networks",
           "evaluate_transitions", "sac_update", "train_sac"]


class EntropyTargetWarning(UserWarning):
    """The target entropy ratio is ≥ 1: unreachable, so only the clamp bounds log α."""


@dataclass(frozen=True)
class TransitionTensors:
    """Offline transitions ``(s, a, r, s', done)`` over masked candidate sets.

    codes ``[N, F]`` int64 and numeric ``[N, G]`` float32: the encoded context s.
    items ``[N, m]`` int64 stable item indices of s's candidates, mask ``[N, m]`` bool.
    action ``[N]`` int64: column of the logged item in ``items``; reward ``[N]`` float32.
    next_*: the same for s' (``[N, m']``); ignored on rows where done ``[N]`` bool is True.
    """

    codes: torch.Tensor
    numeric: torch.Tensor
    items: torch.Tensor
    mask: torch.Tensor
    action: torch.Tensor
    reward: torch.Tensor
    done: torch.Tensor
    next_codes: torch.Tensor
    next_numeric: torch.Tensor
    next_items: torch.Tensor
    next_mask: torch.Tensor

    def __post_init__(self) -> None:
        n = self.codes.shape[0]
        for f in fields(self):
            tensor = getattr(self, f.name)
            if tensor.shape[0] != n:
                raise ValueError(f"transitions.{f.name}: {tensor.shape[0]} rows, expected {n} like codes")
        if self.items.shape != self.mask.shape or self.next_items.shape != self.next_mask.shape:
            raise ValueError("transitions: items and mask (and next_items and next_mask) must have the same shape")
        if n and not bool(self.mask.any(dim=1).all()):
            row = int((~self.mask.any(dim=1)).nonzero()[0])
            raise ValueError(f"transitions row {row}: no candidate in mask (expected >= 1)")
        if n:
            bad = (self.action < 0) | (self.action >= self.items.shape[1])
            if not bad.any():
                bad = ~self.mask.gather(1, self.action.unsqueeze(1)).squeeze(1)
            if bad.any():
                row = int(bad.nonzero()[0])
                raise ValueError(f"transitions row {row}: action {int(self.action[row])} is not a real candidate column")
            live = ~self.done.bool()
            if live.any() and not bool(self.next_mask[live].any(dim=1).all()):
                row = int(live.nonzero()[(~self.next_mask[live].any(dim=1)).nonzero()[0]])
                raise ValueError(f"transitions row {row}: not terminal but its next state has no candidate")

    def __len__(self) -> int:
        return int(self.codes.shape[0])

    def take(self, rows: torch.Tensor) -> "TransitionTensors":
        """The transitions at ``rows`` (an int64 index tensor)."""
        return TransitionTensors(**{f.name: getattr(self, f.name)[rows] for f in fields(self)})


@dataclass
class SacOptimizers:
    """Adam for the actor, for both critics together, and for log α (None when α is fixed)."""

    actor: torch.optim.Optimizer
    critic: torch.optim.Optimizer
    alpha: torch.optim.Optimizer | None

    def state_dict(self) -> dict[str, dict]:
        out = {"actor": self.actor.state_dict(), "critic": self.critic.state_dict()}
        if self.alpha is not None:
            out["alpha"] = self.alpha.state_dict()
        return out

    def load_state_dict(self, state: dict[str, dict]) -> None:
        self.actor.load_state_dict(state["actor"])
        self.critic.load_state_dict(state["critic"])
        if self.alpha is not None:
            self.alpha.load_state_dict(state["alpha"])


def make_optimizers(nets: SacNetworks, config: SacConfig) -> SacOptimizers:
    critic_params = list(nets.critic1.parameters()) + list(nets.critic2.parameters())
    return SacOptimizers(
        actor=torch.optim.Adam(nets.actor.parameters(), lr=config.actor_lr),
        critic=torch.optim.Adam(critic_params, lr=config.critic_lr),
        alpha=torch.optim.Adam([nets.log_alpha], lr=config.alpha_lr) if nets.alpha_mode == "auto" else None,
    )


def _finite(value: torch.Tensor, step: int, term: str) -> torch.Tensor:
    """``value`` itself, after NonFiniteLossError("step N: loss term 'T' is nan") when it is not finite."""
    check_finite(value, step, term)
    return value


def _next_state_value(nets: SacNetworks, batch: TransitionTensors, alpha: torch.Tensor) -> torch.Tensor:
    """V(s') under the current actor and the target critics, ``[B]``; 0 on terminal rows.

    Only non-terminal rows are evaluated, so a batch of one-step logs (all terminal, like
    OBD) costs no next-state forward pass, and a terminal row's padded next state is never
    pushed through a softmax.
    """
    value = torch.zeros_like(batch.reward)
    live = (~batch.done.bool()).nonzero().squeeze(1)
    if live.numel() == 0:
        return value
    codes, numeric = batch.next_codes[live], batch.next_numeric[live]
    items, mask = batch.next_items[live], batch.next_mask[live]
    policy = policy_terms(nets.actor(codes, numeric, items), mask)
    q_min = torch.minimum(nets.target1(codes, numeric, items), nets.target2(codes, numeric, items))
    value[live] = soft_value(policy, q_min, alpha)
    return value


def sac_update(nets: SacNetworks, optimizers: SacOptimizers, batch: TransitionTensors, config: SacConfig,
               step: int) -> dict[str, float]:
    """One SAC update on ``batch``; returns each loss term and α, entropy as floats."""
    alpha = nets.alpha()
    codes, numeric, items, mask, action = batch.codes, batch.numeric, batch.items, batch.mask, batch.action

    # Critics: regress Q(s, a) on y = r + γ V(s'), plus CQL(H) to keep unlogged items low.
    with torch.no_grad():
        target = td_target(batch.reward, batch.done, config.gamma, _next_state_value(nets, batch, alpha))
    q1 = nets.critic1(codes, numeric, items)
    q2 = nets.critic2(codes, numeric, items)
    td = _finite(critic_loss(q1, action, target) + critic_loss(q2, action, target), step, "critic_td")
    cql = _finite(cql_penalty(q1, action, mask) + cql_penalty(q2, action, mask), step, "cql")
    optimizers.critic.zero_grad(set_to_none=True)
    (td + config.cql_weight * cql).backward()
    optimizers.critic.step()

    # Actor: maximise the soft value under the (fixed) twin-minimum critic.
    policy = policy_terms(nets.actor(codes, numeric, items), mask)
    q_min = torch.minimum(q1, q2).detach()
    improvement = _finite(actor_loss(policy, q_min, alpha), step, "actor")
    total = improvement
    cloning = torch.zeros(())
    if config.bc_weight > 0:
        cloning = _finite(behaviour_cloning_loss(policy, action), step, "behaviour_cloning")
        total = total + config.bc_weight * cloning
    optimizers.actor.zero_grad(set_to_none=True)
    total.backward()
    optimizers.actor.step()

    # Temperature: move log α by the entropy excess over ratio × log |candidates|, then clamp.
    temperature = torch.zeros(())
    if optimizers.alpha is not None:
        goal = target_entropy(mask, config.target_entropy_ratio)
        temperature = _finite(temperature_loss(nets.log_alpha, policy.entropy, goal), step, "temperature")
        optimizers.alpha.zero_grad(set_to_none=True)
        temperature.backward()
        optimizers.alpha.step()
        with torch.no_grad():
            nets.log_alpha.clamp_(config.log_alpha_min, config.log_alpha_max)

    nets.polyak_update(config.tau)
    return {
        "critic_td": float(td.detach()), "cql": float(cql.detach()), "actor": float(improvement.detach()),
        "behaviour_cloning": float(cloning.detach()), "temperature": float(temperature.detach()),
        "alpha": float(nets.alpha()), "entropy": float(policy.entropy.detach().mean()),
    }


@torch.no_grad()
def evaluate_transitions(nets: SacNetworks, data: TransitionTensors, config: SacConfig,
                         batch_size: int = 4096) -> dict[str, float]:
    """Held-out diagnostics: critic objective, actor entropy and the critic's value of the actor.

    td_mse: mean (Q1(s, a) − y)²; cql: mean CQL(H) penalty of Q1; critic_loss: td_mse +
    cql_weight · cql, the first critic's training objective on held-out rows (the early-
    stopping criterion); entropy: mean H(π(·|s)) in nats; policy_q: mean Σ π Q1, the
    critic's estimate of the actor's one-step value (a model-based, optimistic number).
    """
    if len(data) == 0:
        return {}
    alpha = nets.alpha()
    totals = {"td_mse": 0.0, "cql": 0.0, "entropy": 0.0, "policy_q": 0.0}
    for start in range(0, len(data), batch_size):
        batch = data.take(torch.arange(start, min(start + batch_size, len(data))))
        target = td_target(batch.reward, batch.done, config.gamma, _next_state_value(nets, batch, alpha))
        q1 = nets.critic1(batch.codes, batch.numeric, batch.items)
        policy = policy_terms(nets.actor(batch.codes, batch.numeric, batch.items), batch.mask)
        q_taken = q1.gather(1, batch.action.unsqueeze(1)).squeeze(1)
        totals["td_mse"] += float(((q_taken - target) ** 2).sum())
        totals["cql"] += float(cql_penalty(q1, batch.action, batch.mask)) * len(batch)
        totals["entropy"] += float(policy.entropy.sum())
        totals["policy_q"] += float((policy.probs * q1.masked_fill(~batch.mask, 0.0)).sum())
    out = {k: v / len(data) for k, v in totals.items()}
    out["critic_loss"] = out["td_mse"] + config.cql_weight * out["cql"]
    return out


@dataclass
class SacTrainResult:
    """Trained networks (the best evaluation's weights when validated), the learning curves,
    the measured update throughput and the early-stopping outcome."""

    nets: SacNetworks
    history: list[dict[str, float]] = field(default_factory=list)
    updates_per_second: float = 0.0
    steps_run: int = 0
    best_step: int = -1
    best_valid_loss: float = float("nan")
    stopped_early: bool = False


def build_networks(config: SacConfig, cardinalities: list[int], numeric_dim: int, n_items: int,
                   kg_vectors: torch.Tensor | None, seed: int) -> SacNetworks:
    """Networks initialised from ``seed`` (the same seed gives the same weights)."""
    torch.manual_seed(seed)
    return SacNetworks(cardinalities, numeric_dim, n_items, config.embedding_dim, config.hidden,
                       kg_vectors if config.use_kg else None, config.alpha_mode, config.alpha_init)


def warn_unreachable_entropy(config: SacConfig) -> None:
    """EntropyTargetWarning when the tuned temperature chases an entropy no policy reaches."""
    if config.alpha_mode == "auto" and config.target_entropy_ratio >= 1.0:
        warnings.warn(
            f"train.sac.target_entropy_ratio = {config.target_entropy_ratio} >= 1: the target entropy "
            "is at or above log |candidates|, the most any policy can reach, so log α rises until it "
            f"hits log_alpha_max = {config.log_alpha_max}; use a ratio well below 1 (default 0.5)",
            EntropyTargetWarning, stacklevel=3)


def train_sac(nets: SacNetworks, train: TransitionTensors, config: SacConfig, seed: int,
              valid: TransitionTensors | None = None, progress: bool = True,
              on_record: Callable[[dict[str, float]], None] | None = None,
              stopper: EarlyStopping | None = None, checkpoint: Checkpoint | None = None) -> SacTrainResult:
    """Run up to ``config.steps`` updates on minibatches drawn uniformly (with replacement) from ``train``.

    Every ``config.eval_every`` updates (and at the last) one record is appended to the
    history: the step, the mean of each loss term since the last record, the update
    throughput over those updates (``updates_per_second``, wall clock of the updates alone)
    and, with ``valid``, ``valid_*`` diagnostics; ``on_record`` receives it too. With ``valid`` and ``stopper``,
    training stops once the first critic's held-out objective (``valid_critic_loss`` = TD
    error + cql_weight · CQL penalty) has not improved for ``stopper.patience`` records, and
    the networks of the best record are returned. The actor has no held-out loss of its
    own: offline, only the critics' fit to logged rewards can be checked on held-out rows. With ``checkpoint``, the state after
    each record is saved and an interrupted run resumes from it, drawing the same
    minibatches it would have drawn. Raises NonFiniteLossError naming the step and the term.
    """
    from tqdm.auto import tqdm

    if len(train) == 0:
        raise ValueError("train_sac: no training transitions")
    warn_unreachable_entropy(config)
    optimizers = make_optimizers(nets, config)
    generator = torch.Generator().manual_seed(seed)
    batch_size = min(config.batch_size, len(train))
    result = SacTrainResult(nets=nets)
    best_state = copy.deepcopy(nets.state_dict())
    first_step = 1
    update_seconds = 0.0
    saved = checkpoint.load() if checkpoint is not None else None
    if saved is not None:
        nets.load_state_dict(saved["nets"])
        optimizers.load_state_dict(saved["optimizers"])
        generator.set_state(saved["generator"])
        best_state = saved["best_nets"]
        result.history = [dict(row) for row in saved["history"]]
        update_seconds = float(saved["update_seconds"])
        if stopper is not None:
            stopper.restore(saved["stopper"])
        first_step = int(saved["step"]) + 1

    sums: dict[str, float] = {}
    count = 0
    window_seconds = 0.0
    last_step = first_step - 1
    nets.train()
    bar = tqdm(total=config.steps, initial=first_step - 1, desc="train sac", disable=not progress,
               unit="update", mininterval=2.0)
    try:
        for step in range(first_step, config.steps + 1):
            if stopper is not None and stopper.should_stop:
                break
            tick = time.perf_counter()
            rows = torch.randint(len(train), (batch_size,), generator=generator)
            stats = sac_update(nets, optimizers, train.take(rows), config, step)
            elapsed = time.perf_counter() - tick
            update_seconds += elapsed
            window_seconds += elapsed
            last_step = step
            bar.update(1)
            for key, value in stats.items():
                sums[key] = sums.get(key, 0.0) + value
            count += 1
            if step % config.eval_every and step != config.steps:
                continue
            record = {"step": float(step), **{k: v / count for k, v in sums.items()},
                      "updates_per_second": count / max(window_seconds, 1e-9)}
            sums, count, window_seconds = {}, 0, 0.0
            if valid is not None and len(valid):
                nets.eval()
                diagnostics = evaluate_transitions(nets, valid, config)
                nets.train()
                record.update({f"valid_{k}": v for k, v in diagnostics.items()})
                check_finite(record["valid_critic_loss"], step, "valid_critic_loss")
                if stopper is not None and stopper.update(record["valid_critic_loss"], step):
                    best_state = copy.deepcopy(nets.state_dict())
                bar.set_postfix(valid=f"{record['valid_critic_loss']:.4f}", alpha=f"{record['alpha']:.3g}")
            result.history.append(record)
            if on_record is not None:
                on_record(record)
            if checkpoint is not None:
                checkpoint.save({"step": step, "nets": nets.state_dict(), "optimizers": optimizers.state_dict(),
                                 "generator": generator.get_state(), "best_nets": best_state,
                                 "history": result.history, "update_seconds": update_seconds,
                                 "stopper": stopper.state() if stopper is not None else {}})
    finally:
        bar.close()
    if stopper is not None and valid is not None and len(valid) and stopper.best_step > 0:
        nets.load_state_dict(best_state)
        result.best_step, result.best_valid_loss = stopper.best_step, stopper.best
        result.stopped_early = stopper.should_stop and last_step < config.steps
    nets.eval()
    result.steps_run = last_step
    result.updates_per_second = last_step / update_seconds if update_seconds > 0 else 0.0
    return result
