"""Training DeepFM on logged clicks: minibatch Adam on binary cross-entropy, early stopping.

One epoch = one pass over the training rows in a seeded order (the order and the
dropout masks of epoch e are seeded by (seed, e), so a resumed run repeats exactly the
epochs an uninterrupted one would have). After each epoch the mean validation BCE is
measured; the weights of the best epoch are kept; a checkpoint is written.
"""

from __future__ import annotations

import copy
import math
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F
from tqdm.auto import tqdm

from liveslate.config import DeepFMConfig, Params
from liveslate.policies.dataset import LoggedRows, encode_rows
from liveslate.policies.deepfm import DeepFMPolicy, build_net
from liveslate.policies.encoders import ItemFeatures, fit_context_encoder
from liveslate.policies.training import (
    Checkpoint,
    EarlyStopping,
    TrainingData,
    TrainResult,
    TrainRun,
    check_finite,
    start_training,
)

_EVAL_BATCH = 65_536


def _tensors(rows: LoggedRows) -> tuple[torch.Tensor, ...]:
    return (torch.from_numpy(rows.context_codes), torch.from_numpy(rows.context_values),
            torch.from_numpy(rows.items), torch.from_numpy(rows.positions), torch.from_numpy(rows.clicks))


def mean_bce(net: torch.nn.Module, tensors: tuple[torch.Tensor, ...]) -> float:
    """Mean binary cross-entropy (nats per row) of ``net`` on encoded rows, in eval mode."""
    codes, values, items, positions, clicks = tensors
    net.eval()
    total = 0.0
    with torch.no_grad():
        for start in range(0, len(items), _EVAL_BATCH):
            rows = slice(start, start + _EVAL_BATCH)
            logits = net(codes[rows], values[rows], items[rows], positions[rows])
            total += float(F.binary_cross_entropy_with_logits(logits, clicks[rows], reduction="sum"))
    return total / max(len(items), 1)


def train_deepfm(data: TrainingData, params: Params, run: TrainRun) -> TrainResult:
    """Fit DeepFM with the hyper-parameters of ``params.train.<run.name>`` (a DeepFMConfig)."""
    config: DeepFMConfig = getattr(params.train, run.name)
    start_training(data, run, config.use_kg)

    context_encoder = fit_context_encoder(data.train)
    items = ItemFeatures.fit(data.catalog, data.index)
    train_rows = encode_rows(data.train, context_encoder, data.index, where="train split")
    valid_rows = encode_rows(data.valid, context_encoder, data.index, where="valid split")
    for where, rows in (("train split", train_rows), ("valid split", valid_rows)):
        outside = np.flatnonzero(rows.positions >= data.slate_size)
        if outside.size:
            raise ValueError(f"{where} row {int(outside[0])}: position {rows.positions[outside[0]]} is outside "
                             f"0..{data.slate_size - 1}")
    if len(train_rows) == 0 or len(valid_rows) == 0:
        raise ValueError("DeepFM needs non-empty train and valid splits")

    architecture: dict[str, Any] = {
        "context_cardinalities": context_encoder.cardinalities,
        "n_context_numeric": len(context_encoder.numeric),
        "item_cardinalities": items.encoder.cardinalities,
        "n_positions": int(data.slate_size),
        "embedding_dim": config.embedding_dim,
        "hidden": list(config.hidden),
        "dropout": config.dropout,
        "item_id_field": config.item_id_field,
        "kg_dim": int(data.item_vectors.shape[1]) if config.use_kg else 0,
    }
    vectors = torch.from_numpy(np.asarray(data.item_vectors, dtype=np.float32)) if config.use_kg else None
    net = build_net(architecture, torch.from_numpy(items.codes), torch.from_numpy(items.values), vectors)
    # Start from the base rate: with ~0.4 % clicks a zero bias wastes the first epochs.
    base_rate = float(np.clip(train_rows.clicks.mean(), 1e-6, 1 - 1e-6))
    with torch.no_grad():
        net.bias.fill_(math.log(base_rate / (1 - base_rate)))
    optimizer = torch.optim.Adam(net.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    stopper = EarlyStopping(run.patience, run.min_delta)
    history: list[dict[str, float]] = []
    best_state = copy.deepcopy(net.state_dict())
    start_epoch = 0

    checkpoint = Checkpoint(run)
    saved = checkpoint.load()
    if saved is not None:
        net.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        best_state = saved["best_model"]
        stopper.restore(saved["stopper"])
        history = [dict(row) for row in saved["history"]]
        start_epoch = int(saved["epoch"])

    train_tensors, valid_tensors = _tensors(train_rows), _tensors(valid_rows)
    n_rows = len(train_rows)
    batches = math.ceil(n_rows / config.batch_size)
    bar = tqdm(total=config.max_epochs * batches, initial=start_epoch * batches, desc=f"train {run.name}",
               disable=not run.progress, unit="batch")
    try:
        for epoch in range(start_epoch, config.max_epochs):
            if stopper.should_stop:
                break
            order = torch.randperm(n_rows, generator=torch.Generator().manual_seed(data.seed + epoch))
            torch.manual_seed(data.seed * 1009 + epoch)  # dropout masks of this epoch
            net.train()
            total = 0.0
            for b in range(batches):
                step = epoch * batches + b
                rows = order[b * config.batch_size:(b + 1) * config.batch_size]
                codes, values, item_ids, positions, clicks = (t[rows] for t in train_tensors)
                logits = net(codes, values, item_ids, positions)
                loss = F.binary_cross_entropy_with_logits(logits, clicks)
                total += check_finite(loss, step, "bce") * len(rows)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                bar.update(1)
            valid_loss = check_finite(mean_bce(net, valid_tensors), (epoch + 1) * batches, "valid_bce")
            history.append({"step": (epoch + 1) * batches, "epoch": epoch + 1, "train_loss": total / n_rows,
                            "valid_loss": valid_loss})
            if stopper.update(valid_loss, epoch + 1):
                best_state = copy.deepcopy(net.state_dict())
            bar.set_postfix(valid_bce=f"{valid_loss:.5f}", best_epoch=stopper.best_step)
            checkpoint.save({"epoch": epoch + 1, "model": net.state_dict(), "optimizer": optimizer.state_dict(),
                             "best_model": best_state, "stopper": stopper.state(), "history": history})
    finally:
        bar.close()

    net.load_state_dict(best_state)
    net.eval()
    policy = DeepFMPolicy(run.name, [str(i) for i in data.index], net, context_encoder, items.encoder, architecture)
    metrics = {
        "best_epoch": stopper.best_step,
        "epochs_run": len(history),
        "stopped_early": stopper.should_stop,
        "valid_bce": stopper.best,
        "train_bce_at_best": next(row["train_loss"] for row in history if row["epoch"] == stopper.best_step),
        "base_rate_bce": _constant_bce(base_rate, valid_rows.clicks),
        "use_kg": config.use_kg,
    }
    return TrainResult(policy=policy, history=history, metrics=metrics)


def _constant_bce(rate: float, clicks: np.ndarray) -> float:
    """Validation BCE of predicting the training base rate for every row (the no-feature baseline)."""
    clicks = clicks.astype(np.float64)
    return float(-(clicks * math.log(rate) + (1 - clicks) * math.log(1 - rate)).mean())
