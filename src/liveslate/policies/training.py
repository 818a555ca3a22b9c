"""What every trainer shares: its inputs, its result, and the training-loop safeguards.

A trainer (registered in ``trainers.TRAINERS``) is a function
``train(data: TrainingData, params: Params, run: TrainRun) -> TrainResult``. It reads its
own hyper-parameters from ``params.train.<run.name>``, seeds with ``seed_everything``,
early-stops on the validation split with ``EarlyStopping``, stops on a non-finite loss
with ``check_finite`` (NonFiniteLossError naming the step and the loss term), and saves
``Checkpoint`` files under ``run.checkpoint_dir`` after each epoch / evaluation so an
interrupted run resumes where it stopped (the checkpoint directory is not a DVC output,
so ``dvc repro`` does not delete it).
"""

from __future__ import annotations

import math
import random
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from liveslate.io import atomic_path
from liveslate.policies.base import Policy


class NonFiniteLossError(RuntimeError):
    """A loss term became NaN or infinite; the message names the step and the term."""


@dataclass(frozen=True, eq=False)
class TrainingData:
    """Inputs of a trainer.

    train, valid: canonical logs (schema.LOG_DTYPES + ctx_*) of the time split;
    catalog: the validated catalogue; index: the stable item index (schema.item_index);
    item_vectors: [n_items, d] float32 KG vectors aligned to ``index`` (None = train
    without them); slate_size: positions per slate (k); seed: params.seed.
    """

    train: pd.DataFrame
    valid: pd.DataFrame
    catalog: pd.DataFrame
    index: pd.Index
    item_vectors: np.ndarray | None
    slate_size: int
    seed: int


@dataclass(frozen=True)
class TrainRun:
    """How this run trains: policy name, checkpointing, progress bar, determinism."""

    name: str
    checkpoint_dir: Path
    # Fingerprint of the inputs and hyper-parameters; a checkpoint of another fingerprint is ignored.
    fingerprint: str = ""
    resume: bool = True
    progress: bool = True
    threads: int = 1
    deterministic: bool = True
    patience: int = 3
    min_delta: float = 0.0


@dataclass(eq=False)
class TrainResult:
    """policy: the trained Policy; history: learning-curve rows, one dict of numbers per
    epoch or evaluation, each with "step" (gradient updates so far: the x axis of the DVC
    plot plots/train_<name>.csv) and the same keys in every row; metrics: JSON-ready
    numbers of the trainer (best epoch, validation loss, ...)."""

    policy: Policy
    history: list[dict[str, float]]
    metrics: dict[str, Any] = field(default_factory=dict)


def seed_everything(seed: int, threads: int = 1, deterministic: bool = True) -> None:
    """Seed python, numpy and torch; pin the thread count; ask torch for deterministic kernels."""
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(deterministic)


def start_training(data: TrainingData, run: TrainRun, use_kg: bool) -> None:
    """What every trainer does first: refuse ``use_kg`` without vectors, then seed everything."""
    if use_kg and data.item_vectors is None:
        raise ValueError(f"train.{run.name}.use_kg is true but no KG item vectors were given "
                         f"(run the kg stage, or set train.{run.name}.use_kg: false)")
    seed_everything(data.seed, run.threads, run.deterministic)


def check_finite(value: Any, step: int, term: str) -> float:
    """``float(value)``, or NonFiniteLossError("step N: loss term T is nan")."""
    number = float(value.detach()) if hasattr(value, "detach") else float(value)
    if not math.isfinite(number):
        raise NonFiniteLossError(f"step {step}: loss term {term!r} is {number}; training stopped "
                                 "(lower the learning rate or check the inputs)")
    return number


@dataclass
class EarlyStopping:
    """Stop after ``patience`` evaluations without lowering the best loss by more than ``min_delta``."""

    patience: int
    min_delta: float = 0.0
    best: float = math.inf
    best_step: int = -1
    waited: int = 0

    def update(self, loss: float, step: int) -> bool:
        """Record an evaluation; True when it is the new best."""
        if loss < self.best - self.min_delta:
            self.best, self.best_step, self.waited = float(loss), int(step), 0
            return True
        self.waited += 1
        return False

    @property
    def should_stop(self) -> bool:
        return self.waited >= self.patience

    def state(self) -> dict[str, float]:
        return {"best": self.best, "best_step": self.best_step, "waited": self.waited}

    def restore(self, state: dict[str, Any]) -> None:
        self.best, self.best_step, self.waited = float(state["best"]), int(state["best_step"]), int(state["waited"])


class Checkpoint:
    """One resumable checkpoint file per run: ``<checkpoint_dir>/last.pt``.

    Holds tensors and plain numbers only (read with ``weights_only=True``) and the
    fingerprint of the run that wrote it; ``load`` returns None when absent, unreadable
    (with a warning), written by another fingerprint, or resuming is off.
    """

    def __init__(self, run: TrainRun) -> None:
        self.run = run
        self.path = Path(run.checkpoint_dir) / "last.pt"

    def save(self, state: dict[str, Any]) -> None:
        import torch

        with atomic_path(self.path) as tmp:
            torch.save({"fingerprint": self.run.fingerprint, **state}, tmp)

    def load(self) -> dict[str, Any] | None:
        import torch

        if not self.run.resume or not self.path.exists():
            return None
        try:
            state = torch.load(self.path, map_location="cpu", weights_only=True)
        except Exception as err:  # torch raises a zoo (EOFError, UnpicklingError, RuntimeError, ...)
            # A checkpoint is a cache that outlives runs (not a DVC output): a damaged one must not
            # block every later run until someone deletes it by hand.
            warnings.warn(f"{self.path}: unreadable checkpoint ignored ({type(err).__name__}); "
                          "training starts from scratch", stacklevel=2)
            return None
        if not isinstance(state, dict) or state.get("fingerprint") != self.run.fingerprint:
            return None
        return state


def bootstrap_mean_interval(columns: np.ndarray, n_resamples: int, confidence: float,
                            seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Percentile bootstrap of column means, rows resampled together.

    columns: [n, c]; returns (low [c], high [c]) at ``confidence``. Resampling rows
    jointly keeps the columns paired, so a column of differences gets a paired interval.
    """
    columns = np.asarray(columns, dtype=np.float64)
    n = columns.shape[0]
    if n == 0:
        raise ValueError("bootstrap: no rows to resample")
    rng = np.random.default_rng(seed)
    means = np.empty((n_resamples, columns.shape[1]))
    for b in range(n_resamples):
        counts = np.bincount(rng.integers(0, n, size=n), minlength=n)
        means[b] = counts @ columns / n
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(means, [tail, 1.0 - tail], axis=0)
    return low, high
