"""The `train@slateq` trainer: canonical logs → slate transitions → SlateQ → SlateQPolicy.

Each impression is one transition: its context, its shown slate (slot = logged position),
the clicks and rewards on the slate, and — within a session — the next impression's
context, its logged slate (SARSA targets) and its candidate set (Q-learning targets).
One-step logs such as OBD make every impression a terminal one-item slate, so SlateQ
there is the choice model's click probability against no-click and Q̄ = the reward of a
click.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from liveslate.config import Params, SlateQConfig
from liveslate.policies.dataset import Transitions, build_transitions
from liveslate.policies.encoders import fit_context_encoder
from liveslate.policies.slateq import SlateQPolicy
from liveslate.policies.slateq_training import SlateTransitions, build_networks, train_slateq
from liveslate.policies.training import Checkpoint, EarlyStopping, TrainingData, TrainResult, TrainRun, start_training


def slate_transitions(transitions: Transitions, where: str = "logs") -> SlateTransitions:
    """Impression transitions [T, k] (``dataset.build_transitions``, built with a catalogue) → SlateTransitions.

    Raises ValueError naming the impression when the transitions carry no candidate sets,
    or when a non-terminal impression's logged next slate is not among the next candidates.
    """
    candidates = transitions.candidates
    if candidates is None:
        raise ValueError(f"{where}: transitions were built without a catalogue, so they have no candidate sets")
    n, k = transitions.slate_items.shape
    successor = np.where(transitions.done, np.arange(n), transitions.next_index)
    next_slate_items = np.where(transitions.next_slate_mask, transitions.next_slate_items, 0)
    next_slate_mask = transitions.next_slate_mask
    next_items = np.where(candidates.mask, candidates.items, 0)[successor]
    next_mask = candidates.mask[successor]
    offered = ((next_items[:, None, :] == next_slate_items[:, :, None]) & next_mask[:, None, :]).any(axis=2)
    missing = np.argwhere(next_slate_mask & ~offered)
    if missing.size:
        row, slot = missing[0]
        raise ValueError(f"{where}: the impression after {transitions.impression_ids[row]!r} shows item index "
                         f"{next_slate_items[row, slot]} at position {slot}, which is not one of its candidates")
    positions = np.broadcast_to(np.arange(k, dtype=np.int64), (n, k)).copy()
    return SlateTransitions(
        codes=torch.from_numpy(transitions.context_codes),
        numeric=torch.from_numpy(transitions.context_values),
        slate_items=torch.from_numpy(np.where(transitions.slate_mask, transitions.slate_items, 0)),
        slate_positions=torch.from_numpy(positions),
        slate_mask=torch.from_numpy(transitions.slate_mask),
        clicks=torch.from_numpy(transitions.clicks.astype(np.float32)),
        rewards=torch.from_numpy(transitions.rewards.astype(np.float32)),
        done=torch.from_numpy(transitions.done.astype(bool)),
        next_codes=torch.from_numpy(transitions.context_codes[successor]),
        next_numeric=torch.from_numpy(transitions.context_values[successor]),
        next_slate_items=torch.from_numpy(next_slate_items),
        next_slate_positions=torch.from_numpy(positions.copy()),
        next_slate_mask=torch.from_numpy(next_slate_mask),
        next_items=torch.from_numpy(next_items),
        next_mask=torch.from_numpy(next_mask),
    )


def train_slateq_policy(data: TrainingData, params: Params, run: TrainRun) -> TrainResult:
    """Fit SlateQ with ``params.train.<run.name>`` (a SlateQConfig); see ``slateq_training``."""
    config: SlateQConfig = getattr(params.train, run.name)
    start_training(data, run, config.use_kg)

    encoder = fit_context_encoder(data.train)
    train, valid = (slate_transitions(build_transitions(frame, encoder, data.index, data.slate_size, data.catalog,
                                                        where=where), where)
                    for frame, where in ((data.train, "train split"), (data.valid, "valid split")))
    vectors = torch.from_numpy(np.asarray(data.item_vectors, dtype=np.float32)) if config.use_kg else None
    architecture: dict[str, Any] = {
        "cardinalities": encoder.cardinalities,
        "numeric_dim": len(encoder.numeric),
        "n_items": len(data.index),
        "embedding_dim": config.embedding_dim,
        "hidden": config.hidden,
        "kg_dim": int(vectors.shape[1]) if vectors is not None else 0,
        "n_positions": int(data.slate_size),
        "slate_method": config.slate_method,
        "gamma": config.gamma,
        "target": config.target,
    }
    torch.manual_seed(data.seed)
    nets = build_networks(config, encoder.cardinalities, len(encoder.numeric), len(data.index), data.slate_size,
                          vectors)
    result = train_slateq(nets, train, config, data.seed, valid=valid, progress=run.progress,
                          stopper=EarlyStopping(run.patience, run.min_delta), checkpoint=Checkpoint(run))
    policy = SlateQPolicy(run.name, [str(i) for i in data.index], nets.choice, nets.value, encoder, architecture)
    best = next((row for row in result.history if int(row["step"]) == result.best_step), result.history[-1])
    metrics = {
        "updates_per_second": result.updates_per_second,
        "steps_run": result.steps_run,
        "best_step": result.best_step,
        "stopped_early": result.stopped_early,
        "valid_loss": result.best_valid_loss,
        "valid_choice_nll": best.get("valid_choice_nll", float("nan")),
        "valid_td_error": best.get("valid_td_error", float("nan")),
        "position_bias": [float(b) for b in policy.position_bias],
        "train_impressions": len(train),
        "valid_impressions": len(valid),
        "terminal_share": float(train.done.float().mean()),
        "gamma": config.gamma,
        "target": config.target,
        "slate_method": config.slate_method,
        "use_kg": config.use_kg,
    }
    return TrainResult(policy=policy, history=result.history, metrics=metrics)
