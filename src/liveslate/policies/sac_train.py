"""The `train@sac` trainer: canonical logs → item-level transitions → offline discrete SAC.

Each logged (impression, position) row becomes one transition: the state is the
impression's context and candidate set, the action the logged item, the reward its
reward; the next state is the session's next impression (its context and candidates),
and the last impression of a session — every impression of one-step logs such as OBD —
is terminal, so its target is the reward alone.

With ``normalize_rewards`` the networks learn on rewards divided by their training
standard deviation (``reward_scale``, saved with the policy), so the temperature and the
CQL weight mean the same for sparse clicks and for purchase values; validation TD errors
are in those units too.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import torch

from liveslate.config import Params, SacConfig
from liveslate.policies.dataset import Transitions, build_transitions
from liveslate.policies.encoders import fit_context_encoder
from liveslate.policies.sac import SacPolicy, build_sac_networks
from liveslate.policies.sac_training import TransitionTensors, train_sac
from liveslate.policies.training import (
    Checkpoint,
    EarlyStopping,
    TrainingData,
    TrainResult,
    TrainRun,
    start_training,
)


def item_transitions(transitions: Transitions, where: str = "logs") -> TransitionTensors:
    """Impression transitions ``[T, k]`` → one item-level transition per logged slot.

    Raises ValueError naming the impression when its transitions carry no candidate sets
    or when a logged item is not among its impression's candidates.
    """
    candidates = transitions.candidates
    if candidates is None:
        raise ValueError(f"{where}: transitions were built without a catalogue, so they have no candidate sets")
    impression, slot = np.nonzero(transitions.slate_mask)  # row-major: impressions in time order
    logged = transitions.slate_items[impression, slot]
    rows_items = candidates.items[impression]
    rows_mask = candidates.mask[impression]
    match = (rows_items == logged[:, None]) & rows_mask
    missing = np.flatnonzero(~match.any(axis=1))
    if missing.size:
        t = impression[missing[0]]
        raise ValueError(f"{where}: impression {transitions.impression_ids[t]!r} logs item index "
                         f"{logged[missing[0]]} at position {slot[missing[0]]}, which is not one of its candidates")
    action = match.argmax(axis=1)
    done = transitions.done[impression]
    successor = np.where(done, impression, transitions.next_index[impression])
    items = np.where(candidates.mask, candidates.items, 0)  # padding → a valid index, never read
    return TransitionTensors(
        codes=torch.from_numpy(transitions.context_codes[impression]),
        numeric=torch.from_numpy(transitions.context_values[impression]),
        items=torch.from_numpy(items[impression]),
        mask=torch.from_numpy(candidates.mask[impression]),
        action=torch.from_numpy(action.astype(np.int64)),
        reward=torch.from_numpy(transitions.rewards[impression, slot].astype(np.float32)),
        done=torch.from_numpy(done.astype(bool)),
        next_codes=torch.from_numpy(transitions.context_codes[successor]),
        next_numeric=torch.from_numpy(transitions.context_values[successor]),
        next_items=torch.from_numpy(items[successor]),
        next_mask=torch.from_numpy(candidates.mask[successor]),
    )


def train_sac_policy(data: TrainingData, params: Params, run: TrainRun) -> TrainResult:
    """Fit offline discrete SAC with ``params.train.<run.name>`` (a SacConfig); see ``sac_training``."""
    config: SacConfig = getattr(params.train, run.name)
    start_training(data, run, config.use_kg)

    encoder = fit_context_encoder(data.train)
    train = item_transitions(build_transitions(data.train, encoder, data.index, data.slate_size, data.catalog,
                                               where="train split"), "train split")
    valid = item_transitions(build_transitions(data.valid, encoder, data.index, data.slate_size, data.catalog,
                                               where="valid split"), "valid split")
    reward_scale = 1.0
    if config.normalize_rewards:
        spread = float(train.reward.double().std(unbiased=False))
        reward_scale = spread if np.isfinite(spread) and spread > 0 else 1.0
        train = dataclasses.replace(train, reward=train.reward / reward_scale)
        valid = dataclasses.replace(valid, reward=valid.reward / reward_scale)
    vectors = torch.from_numpy(np.asarray(data.item_vectors, dtype=np.float32)) if config.use_kg else None
    architecture: dict[str, Any] = {
        "cardinalities": encoder.cardinalities,
        "numeric_dim": len(encoder.numeric),
        "n_items": len(data.index),
        "embedding_dim": config.embedding_dim,
        "hidden": config.hidden,
        "kg_dim": int(vectors.shape[1]) if vectors is not None else 0,
        "alpha_mode": config.alpha_mode,
        "alpha_init": config.alpha_init,
        "reward_scale": reward_scale,
    }
    torch.manual_seed(data.seed)
    nets = build_sac_networks(architecture, vectors)
    result = train_sac(nets, train, config, data.seed, valid=valid, progress=run.progress,
                       stopper=EarlyStopping(run.patience, run.min_delta), checkpoint=Checkpoint(run))
    policy = SacPolicy(run.name, [str(i) for i in data.index], result.nets, encoder, architecture)
    best = next((row for row in result.history if int(row["step"]) == result.best_step), result.history[-1])
    metrics = {
        "updates_per_second": result.updates_per_second,
        "steps_run": result.steps_run,
        "best_step": result.best_step,
        "stopped_early": result.stopped_early,
        "valid_critic_loss": result.best_valid_loss,
        "valid_td_mse": best.get("valid_td_mse", float("nan")),
        "valid_cql": best.get("valid_cql", float("nan")),
        "valid_entropy": best.get("valid_entropy", float("nan")),
        "valid_policy_q": best.get("valid_policy_q", float("nan")),
        "alpha": policy.alpha,
        "train_transitions": len(train),
        "valid_transitions": len(valid),
        "terminal_share": float(train.done.float().mean()),
        "reward_scale": reward_scale,
        "use_kg": config.use_kg,
    }
    return TrainResult(policy=policy, history=result.history, metrics=metrics)
