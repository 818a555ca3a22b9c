"""SlateQ on tensors: slate transitions, TD targets, the update step and the training loop.

One update = one minibatch of logged impressions:
1. choice model: conditional-logit negative log-likelihood of the logged outcome (a click
   on a slot, or no click) — ``choice_model.choice_nll``;
2. item-wise values: squared TD error of Q̄(x, i) on each clicked item i and of Q̄(x, ⊥) on
   each impression without a click, against
       y = r + γ · V(x'),  V(x') = Σ_{j ∈ A' ∪ {⊥}} P(j | x', A') Q̄_target(x', j),
   where A' is the logged next slate (``target = "sarsa"``) or the slate the configured
   optimiser picks among the next candidates (``"q_learning"``); terminal rows use y = r;
3. Polyak averaging of the target value network.
The two losses touch disjoint parameters, so one optimiser on their sum trains both; an L2
penalty (a Gaussian prior, ``l2``) keeps the item and context weights of both networks small.
A non-finite loss stops training with ``training.NonFiniteLossError`` naming the step and the term.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field, fields

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from liveslate.config import SlateQConfig
from liveslate.policies.choice_model import choice_logits, choice_nll, choice_probabilities
from liveslate.policies.slate_optim import SlateInstance, optimise_slates
from liveslate.policies.slateq_networks import ChoiceModel, ItemValue, build_modules
from liveslate.policies.training import Checkpoint, EarlyStopping, check_finite


@dataclass(frozen=True)
class SlateTransitions:
    """Logged impressions as SlateQ transitions; N impressions, K slots, K' next slots, M' next candidates.

    codes [N, F] int64, numeric [N, G] float32: the encoded context x.
    slate_items [N, K] int64 stable item indices; slate_positions [N, K] int64 the position
        each slot was shown at; slate_mask [N, K] bool, True = a shown item.
    clicks [N, K] float32 0/1; rewards [N, K] float32, the reward of each clicked slot
        (read only where clicked: a no-click earns 0).
    done [N] bool: no next impression (one-step logs: all True).
    next_*: x' and the logged next slate A' (SARSA), and next_items / next_mask [N, M'] the
        candidates of x' (Q-learning); read only where done is False.
    """

    codes: torch.Tensor
    numeric: torch.Tensor
    slate_items: torch.Tensor
    slate_positions: torch.Tensor
    slate_mask: torch.Tensor
    clicks: torch.Tensor
    rewards: torch.Tensor
    done: torch.Tensor
    next_codes: torch.Tensor
    next_numeric: torch.Tensor
    next_slate_items: torch.Tensor
    next_slate_positions: torch.Tensor
    next_slate_mask: torch.Tensor
    next_items: torch.Tensor
    next_mask: torch.Tensor

    def __post_init__(self) -> None:
        n = self.codes.shape[0]
        for f in fields(self):
            tensor = getattr(self, f.name)
            if tensor.shape[0] != n:
                raise ValueError(f"transitions.{f.name}: {tensor.shape[0]} rows, expected {n} like codes")
        for group in (("slate_items", "slate_positions", "slate_mask", "clicks", "rewards"),
                      ("next_slate_items", "next_slate_positions", "next_slate_mask"),
                      ("next_items", "next_mask")):
            shapes = {tuple(getattr(self, name).shape) for name in group}
            if len(shapes) != 1:
                raise ValueError(f"transitions: {', '.join(group)} must share one shape, got {sorted(shapes)}")
        if n == 0:
            return
        empty = ~self.slate_mask.any(dim=1)
        if bool(empty.any()):
            raise ValueError(f"transitions row {int(empty.nonzero()[0])}: the slate shows no item")
        live = ~self.done
        for name in ("next_slate_mask", "next_mask"):
            bad = live & ~getattr(self, name).any(dim=1)
            if bool(bad.any()):
                raise ValueError(f"transitions row {int(bad.nonzero()[0])}: not terminal but {name} is empty")
        short = live & (self.next_mask.sum(dim=1) < self.next_slate_mask.sum(dim=1))
        if bool(short.any()):
            raise ValueError(f"transitions row {int(short.nonzero()[0])}: fewer next candidates than "
                             "items in the logged next slate")

    def __len__(self) -> int:
        return int(self.codes.shape[0])

    def take(self, rows: torch.Tensor) -> "SlateTransitions":
        """The transitions at ``rows`` (int64 index tensor)."""
        return SlateTransitions(**{f.name: getattr(self, f.name)[rows] for f in fields(self)})


@dataclass
class SlateQNetworks:
    """The online choice model and value network, and the value network's target copy."""

    choice: ChoiceModel
    value: ItemValue
    target: ItemValue

    def modules(self) -> nn.ModuleDict:
        return nn.ModuleDict({"choice": self.choice, "value": self.value, "target": self.target})


def build_networks(config: SlateQConfig, cardinalities: list[int], numeric_dim: int, n_items: int,
                   n_positions: int, kg_vectors: torch.Tensor | None = None) -> SlateQNetworks:
    """Fresh networks (the caller seeds torch); the target starts as a frozen copy of the value network."""
    choice, value = build_modules(cardinalities, numeric_dim, n_items, config.embedding_dim, config.hidden,
                                  n_positions, kg_vectors)
    target = copy.deepcopy(value)
    target.requires_grad_(False)
    return SlateQNetworks(choice=choice, value=value, target=target)


def slate_instance(utility: torch.Tensor, value: torch.Tensor, null_value: torch.Tensor, bias: torch.Tensor,
                   mask: torch.Tensor, k: int) -> SlateInstance:
    """The slate problem of the choice model + values over candidates [n, m] for slates of size k.

    Attractions are exp(utility − s) and the no-click attraction exp(−s) with the row shift
    s = max(0, max utility): the ratio F is unchanged and exp never overflows.
    Positions 0..k−1 weigh exp(b_p); positions beyond the learned ones share the last bias.
    """
    masked = utility.masked_fill(~mask, float("-inf"))
    shift = masked.max(dim=1).values.clamp(min=0.0)
    attraction = torch.exp(masked - shift[:, None])
    positions = torch.arange(k, device=utility.device).clamp(max=len(bias) - 1)
    return SlateInstance(attraction=attraction, value=value, null_attraction=torch.exp(-shift),
                         null_value=null_value, position_weight=torch.exp(bias[positions]), mask=mask)


@torch.no_grad()
def next_state_value(nets: SlateQNetworks, batch: SlateTransitions, gamma: float, target: str,
                     slate_method: str) -> torch.Tensor:
    """V(x') [B] under the choice model and the TARGET values; 0 on terminal rows (and when γ = 0).

    SARSA averages over the logged next slate, Q-learning over the slate the optimiser picks
    among the next candidates (slate size = the logged next slate's size, grouped by size).
    """
    value = torch.zeros(len(batch), dtype=torch.float32)
    live = (~batch.done).nonzero().squeeze(1)
    if gamma == 0.0 or live.numel() == 0:
        return value
    codes, numeric = batch.next_codes[live], batch.next_numeric[live]
    bias = nets.choice.bias()
    if target == "sarsa":
        items, slot_mask = batch.next_slate_items[live], batch.next_slate_mask[live]
        logits = choice_logits(nets.choice.utility(codes, numeric, items), batch.next_slate_positions[live],
                               slot_mask, bias)
        item_values, null_value = nets.target(codes, numeric, items)
        outcome_values = torch.cat([null_value[:, None], item_values.masked_fill(~slot_mask, 0.0)], dim=1)
        value[live] = (choice_probabilities(logits) * outcome_values).sum(dim=1)
        return value
    if target != "q_learning":
        raise ValueError(f"target must be sarsa or q_learning, got {target!r}")
    items, mask = batch.next_items[live], batch.next_mask[live]
    utility = nets.choice.utility(codes, numeric, items)
    item_values, null_value = nets.target(codes, numeric, items)
    sizes = batch.next_slate_mask[live].sum(dim=1)
    for k in sizes.unique().tolist():
        rows = (sizes == k).nonzero().squeeze(1)
        instance = slate_instance(utility[rows], item_values[rows], null_value[rows], bias, mask[rows], int(k))
        value[live[rows]] = optimise_slates(instance, slate_method).value.to(torch.float32)
    return value


def losses(nets: SlateQNetworks, batch: SlateTransitions, config: SlateQConfig) -> dict[str, torch.Tensor]:
    """Mean choice NLL and mean squared TD error per choice event, their sum ``loss`` (the fit to
    the data, which early stopping watches) and ``objective`` = ``loss`` + the L2 penalty (what
    the gradient step minimises)."""
    choice = nets.choice
    logits = choice_logits(choice.utility(batch.codes, batch.numeric, batch.slate_items), batch.slate_positions,
                           batch.slate_mask, choice.bias())
    nll, events = choice_nll(logits, batch.clicks, batch.slate_mask)
    events = events.clamp(min=1)

    continuation = config.gamma * next_state_value(nets, batch, config.gamma, config.target, config.slate_method)
    item_values, null_value = nets.value(batch.codes, batch.numeric, batch.slate_items)
    clicked = (batch.clicks > 0) & batch.slate_mask
    no_click = ~clicked.any(dim=1)
    click_error = torch.where(clicked, item_values - (batch.rewards + continuation[:, None]),
                              torch.zeros_like(item_values))
    no_click_error = torch.where(no_click, null_value - continuation, torch.zeros_like(null_value))
    td = (click_error.pow(2).sum() + no_click_error.pow(2).sum()) / events
    choice_loss = nll / events
    penalty = config.l2 * (l2_norm(nets.choice) + l2_norm(nets.value)) if config.l2 > 0 else td.new_zeros(())
    return {"objective": choice_loss + td + penalty, "loss": choice_loss + td, "choice_nll": choice_loss,
            "td_error": td, "l2_penalty": penalty}


def l2_norm(module: nn.Module) -> torch.Tensor:
    """Σ θ² over the weights of ``module`` except the global levels and the position bias.

    Those few parameters are pinned well by every impression; the item and context weights
    are the ones a few hundred clicks cannot pin, so the prior pulls them towards 0
    (towards "every item clicks at the base rate").
    """
    squares = [p.pow(2).sum() for name, p in module.named_parameters()
               if not (name.endswith("offset") or name.endswith("free_bias"))]
    return torch.stack(squares).sum()


@torch.no_grad()
def polyak_update(online: nn.Module, target: nn.Module, tau: float) -> None:
    for target_param, param in zip(target.parameters(), online.parameters()):
        target_param.mul_(1.0 - tau).add_(param, alpha=tau)


def make_optimizer(nets: SlateQNetworks, config: SlateQConfig) -> torch.optim.Optimizer:
    params = list(nets.choice.parameters()) + list(nets.value.parameters())
    return torch.optim.Adam(params, lr=config.lr)


def slateq_update(nets: SlateQNetworks, optimizer: torch.optim.Optimizer, batch: SlateTransitions,
                  config: SlateQConfig, step: int) -> dict[str, float]:
    """One gradient step on ``batch`` and a Polyak step of the target; returns the loss terms."""
    terms = losses(nets, batch, config)
    numbers = {name: check_finite(value, step, name) for name, value in terms.items()}
    optimizer.zero_grad(set_to_none=True)
    terms["objective"].backward()
    optimizer.step()
    polyak_update(nets.value, nets.target, config.tau)
    return numbers


@torch.no_grad()
def evaluate(nets: SlateQNetworks, data: SlateTransitions, config: SlateQConfig,
             chunk: int = 8192) -> dict[str, float]:
    """Loss terms over a whole data set (chunked), weighted per choice event."""
    totals: dict[str, float] = {}
    events_total = 0
    for start in range(0, len(data), chunk):
        part = data.take(torch.arange(start, min(start + chunk, len(data))))
        clicked = (part.clicks > 0) & part.slate_mask
        events = int(clicked.sum() + (~clicked.any(dim=1)).sum())
        for name, value in losses(nets, part, config).items():
            totals[name] = totals.get(name, 0.0) + float(value) * events
        events_total += events
    return {name: value / max(events_total, 1) for name, value in totals.items()}


def initialise_levels(nets: SlateQNetworks, train: SlateTransitions) -> None:
    """Start the global levels at the data's: log-odds of a click per shown item, mean clicked reward.

    With ~0.4 % clicks (OBD) a utility starting at 0 (50 % click odds) would spend most of
    a short budget learning the base rate.
    """
    clicked = (train.clicks > 0) & train.slate_mask
    shown = float(train.slate_mask.sum())
    rate = min(max(float(clicked.sum()) / max(shown, 1.0), 1e-6), 1 - 1e-6)
    with torch.no_grad():
        nets.choice.scorer.offset.fill_(float(np.log(rate / (1 - rate))))
        if bool(clicked.any()):
            mean_reward = float(train.rewards[clicked].mean())
            nets.value.scorer.offset.fill_(mean_reward)
            nets.target.scorer.offset.fill_(mean_reward)


@dataclass
class SlateQTrainResult:
    """Learning curves (one record per evaluation), the kept evaluation and the run's outcome."""

    history: list[dict[str, float]] = field(default_factory=list)
    best_step: int = -1
    best_valid_loss: float = float("nan")
    steps_run: int = 0
    stopped_early: bool = False
    updates_per_second: float = 0.0


def train_slateq(nets: SlateQNetworks, train: SlateTransitions, config: SlateQConfig, seed: int,
                 valid: SlateTransitions | None = None, progress: bool = True,
                 stopper: EarlyStopping | None = None, checkpoint: Checkpoint | None = None) -> SlateQTrainResult:
    """Run up to ``config.steps`` updates on minibatches drawn uniformly (with replacement, seeded).

    Every ``eval_every`` updates (and at the last) a record is appended to the history: the
    step, the mean of each loss term since the previous record, the update throughput and,
    with ``valid``, the validation loss terms. The weights of the record with the lowest
    validation loss (the training means without ``valid``) are restored at the end, target
    network included. With ``stopper`` training stops after ``patience`` records without
    improvement; with ``checkpoint`` the state after each record is saved and an interrupted
    run resumes from it, drawing the minibatches it would have drawn.
    """
    if len(train) == 0:
        raise ValueError("train transitions: empty (expected at least one impression)")
    generator = torch.Generator().manual_seed(seed)
    initialise_levels(nets, train)
    optimizer = make_optimizer(nets, config)
    modules = nets.modules()
    batch_size = min(config.batch_size, len(train))
    result = SlateQTrainResult()
    best_loss, best_state = float("inf"), copy.deepcopy(modules.state_dict())
    first_step, update_seconds = 1, 0.0
    saved = checkpoint.load() if checkpoint is not None else None
    if saved is not None:
        modules.load_state_dict(saved["modules"])
        optimizer.load_state_dict(saved["optimizer"])
        generator.set_state(saved["generator"])
        best_state, best_loss = saved["best_modules"], float(saved["best_loss"])
        result.history = [dict(row) for row in saved["history"]]
        result.best_step = int(saved["best_step"])
        update_seconds = float(saved["update_seconds"])
        if stopper is not None:
            stopper.restore(saved["stopper"])
        first_step = int(saved["step"]) + 1

    sums: dict[str, float] = {}
    count, window_seconds, last_step = 0, 0.0, first_step - 1
    bar = tqdm(total=config.steps, initial=first_step - 1, desc="train slateq", disable=not progress,
               unit="update", mininterval=2.0)
    try:
        for step in range(first_step, config.steps + 1):
            if stopper is not None and stopper.should_stop:
                break
            tick = time.perf_counter()
            rows = torch.randint(len(train), (batch_size,), generator=generator)
            stats = slateq_update(nets, optimizer, train.take(rows), config, step)
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
            record = {"step": float(step), **{f"train_{k}": v / count for k, v in sums.items()},
                      "updates_per_second": count / max(window_seconds, 1e-9)}
            sums, count, window_seconds = {}, 0, 0.0
            if valid is not None and len(valid):
                for key, value in evaluate(nets, valid, config).items():
                    record[f"valid_{key}"] = check_finite(value, step, f"valid_{key}")
            result.history.append(record)
            monitored = record.get("valid_loss", record["train_loss"])
            if monitored < best_loss:
                best_loss, result.best_step = monitored, step
                best_state = copy.deepcopy(modules.state_dict())
            if stopper is not None:
                stopper.update(monitored, step)
                bar.set_postfix(loss=f"{monitored:.5f}", best_step=result.best_step)
            if checkpoint is not None:
                checkpoint.save({"step": step, "modules": modules.state_dict(), "optimizer": optimizer.state_dict(),
                                 "generator": generator.get_state(), "best_modules": best_state,
                                 "best_loss": best_loss, "best_step": result.best_step, "history": result.history,
                                 "update_seconds": update_seconds,
                                 "stopper": stopper.state() if stopper is not None else {}})
    finally:
        bar.close()
    modules.load_state_dict(best_state)
    result.best_valid_loss = best_loss
    result.steps_run = last_step
    result.stopped_early = last_step < config.steps
    result.updates_per_second = last_step / max(update_seconds, 1e-9) if last_step else 0.0
    return result
