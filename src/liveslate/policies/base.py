"""The one interface every slate policy implements (DESIGN.md, "Policies").

Numpy at the interface, torch (if any) inside the models. A request batch is ``n``
rows; each row has its raw ``ctx_*`` context and a padded candidate row of width
``m``; a slate fills ``k`` positions. Shapes:

- ``Candidates.items`` / ``.mask``: ``[n, m]`` stable item indices / True = real candidate
- ``Policy.scores``: ``[n, m]`` float64, masked entries ``-inf``
- ``Policy.greedy_slate``: ``[n, k]`` column indices into the candidate row
- ``Policy.action_dist``: ``[n, m, k]`` = P(candidate column j at position p); every
  position's column sums to 1 over the row's unmasked candidates and is 0 on masked ones
- ``Slate``: positions/items/propensities ``[n, k]``, slate_probability ``[n]``

Exploration modes: ``none`` (deterministic greedy slate), ``epsilon`` (greedy with
probability 1-ε, else a uniformly random slate), ``plackett_luce`` (sampling without
replacement from softmax(pl_logits(scores) / τ)). The maths lives in ``exploration.py``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Literal

import numpy as np
import pandas as pd

from liveslate.policies import exploration

ExplorationMode = Literal["none", "epsilon", "plackett_luce"]
EXPLORATION_MODES: tuple[str, ...] = ("none", "epsilon", "plackett_luce")


@dataclass(frozen=True, eq=False)
class Candidates:
    """Padded candidate item indices of a request batch.

    items: [n, m] int64 stable item indices (``schema.item_index`` order); padded entries
        are arbitrary (0) and never read.
    mask: [n, m] bool, True = real candidate; every row holds at least one True.
    """

    items: np.ndarray
    mask: np.ndarray

    def __post_init__(self) -> None:
        items = np.asarray(self.items)
        mask = np.asarray(self.mask)
        if items.ndim != 2:
            raise ValueError(f"Candidates.items: expected a 2-d array [n, m], got shape {items.shape}")
        if mask.shape != items.shape:
            raise ValueError(f"Candidates.mask: shape {mask.shape} differs from items shape {items.shape}")
        if mask.dtype != np.bool_:
            raise ValueError(f"Candidates.mask: expected dtype bool, got {mask.dtype}")
        if not np.issubdtype(items.dtype, np.integer):
            raise ValueError(f"Candidates.items: expected integer item indices, got dtype {items.dtype}")
        empty = np.flatnonzero(~mask.any(axis=1)) if items.shape[1] else np.arange(items.shape[0])
        if empty.size:
            raise ValueError(f"Candidates: row {int(empty[0])} has no unmasked candidate "
                             f"({empty.size} such row(s)); every row needs at least one")
        negative = np.argwhere(mask & (items < 0))
        if negative.size:
            row, col = negative[0]
            raise ValueError(f"Candidates.items: row {row}, column {col} holds negative item index {items[row, col]}")
        object.__setattr__(self, "items", items.astype(np.int64, copy=False))
        object.__setattr__(self, "mask", mask)

    @property
    def n(self) -> int:
        return int(self.items.shape[0])

    @property
    def m(self) -> int:
        return int(self.items.shape[1])

    @property
    def counts(self) -> np.ndarray:
        """[n] int64: number of unmasked candidates per row."""
        return self.mask.sum(axis=1).astype(np.int64)

    def take(self, rows: np.ndarray | Sequence[int]) -> "Candidates":
        """The candidate rows ``rows`` (same padding width)."""
        rows = np.asarray(rows, dtype=np.int64)
        return Candidates(items=self.items[rows], mask=self.mask[rows])

    @classmethod
    def from_lists(cls, lists: Sequence[Sequence[int]]) -> "Candidates":
        """Ragged lists of item indices → padded [n, max len] with a mask (pad value 0)."""
        width = max((len(row) for row in lists), default=0)
        items = np.zeros((len(lists), width), dtype=np.int64)
        mask = np.zeros((len(lists), width), dtype=bool)
        for i, row in enumerate(lists):
            items[i, : len(row)] = np.asarray(row, dtype=np.int64)
            mask[i, : len(row)] = True
        return cls(items=items, mask=mask)

    @classmethod
    def whole_rooms(cls, room_ids: Sequence[str], catalog: pd.DataFrame, index: pd.Index) -> "Candidates":
        """Each row: every catalogue item of its room, in stable item index order.

        room_ids: [n] room of each request; catalog: canonical catalogue (item_id, room_id);
        index: the stable item index (``schema.item_index``). Raises ValueError naming a
        room with no catalogue item or a catalogue item missing from the index.
        """
        positions = index.get_indexer(catalog["item_id"].astype(str))
        if (positions < 0).any():
            missing = catalog["item_id"].astype(str).to_numpy()[positions < 0][:5].tolist()
            raise ValueError(f"catalog item(s) {missing} are not in the item index")
        by_room: dict[str, list[int]] = {}
        for room, position in zip(catalog["room_id"].astype(str).to_numpy(), positions):
            by_room.setdefault(room, []).append(int(position))
        rooms = [str(r) for r in room_ids]
        unknown = sorted(set(rooms) - set(by_room))
        if unknown:
            raise ValueError(f"room(s) {unknown[:5]} have no item in the catalogue")
        sorted_rooms = {room: sorted(items) for room, items in by_room.items()}
        return cls.from_lists([sorted_rooms[room] for room in rooms])


@dataclass(frozen=True)
class Exploration:
    """How a slate is drawn around the policy's greedy choice."""

    mode: ExplorationMode = "none"
    epsilon: float = 0.1  # used by "epsilon", in [0, 1]
    temperature: float = 1.0  # used by "plackett_luce", > 0
    seed: int = 0  # sampling seed for slate()

    def __post_init__(self) -> None:
        if self.mode not in EXPLORATION_MODES:
            raise ValueError(f"Exploration.mode: expected one of {', '.join(EXPLORATION_MODES)}, got {self.mode!r}")
        if not 0.0 <= self.epsilon <= 1.0:
            raise ValueError(f"Exploration.epsilon: expected a probability in [0, 1], got {self.epsilon}")
        if not (np.isfinite(self.temperature) and self.temperature > 0.0):
            raise ValueError(f"Exploration.temperature: expected a finite number > 0, got {self.temperature}")
        if not 0 <= self.seed < 2**63:
            raise ValueError(f"Exploration.seed: expected a non-negative integer, got {self.seed}")


@dataclass(frozen=True, eq=False)
class Slate:
    """A drawn slate per request row.

    positions: [n, k] int64 column index into the candidate row (0..m-1)
    items: [n, k] int64 stable item indices = candidates.items[row, positions]
    propensities: [n, k] float64 P(that item at that position) = action_dist[row, positions[row, p], p]
    slate_probability: [n] float64 probability of the whole ordered slate
    """

    positions: np.ndarray
    items: np.ndarray
    propensities: np.ndarray
    slate_probability: np.ndarray


class Policy(ABC):
    """Base class of every slate policy.

    Subclasses implement ``scores``, ``save`` and ``load``; ``greedy_slate``,
    ``action_dist`` and ``slate`` follow from the scores through ``exploration.py``.
    Stochastic logging-policy replicas (uniform, Bernoulli TS) set
    ``explores_itself = True`` and override ``action_dist`` and ``slate`` with their own
    distribution, which then ignores ``explore.mode`` (only ``explore.seed`` is used).
    """

    name: str = "policy"
    kind: ClassVar[str] = "policy"
    explores_itself: ClassVar[bool] = False

    # ------------------------------------------------------------------ to implement
    @abstractmethod
    def scores(self, contexts: pd.DataFrame, candidates: Candidates) -> np.ndarray:
        """[n, m] float64 scores, masked entries -inf; contexts: n rows of raw ctx_* columns."""

    @abstractmethod
    def save(self, directory: Path) -> None:
        """Write config.json (with "kind"), weights.pt (a state_dict) and encoders.json."""

    @classmethod
    @abstractmethod
    def load(cls, directory: Path) -> "Policy":
        """Inverse of ``save``; no pickled objects are read."""

    # ------------------------------------------------------------------ derived
    def pl_logits(self, scores: np.ndarray) -> np.ndarray:
        """Softmax inputs for Plackett–Luce from unmasked scores (default: the scores).

        Policies whose scores are probabilities (predicted CTR) return their logit.
        Only unmasked entries are read by the caller.
        """
        return scores

    def check_batch(self, contexts: pd.DataFrame, candidates: Candidates) -> None:
        """Contexts and candidates must describe the same n requests (row i of each)."""
        if len(contexts) != candidates.n:
            raise ValueError(f"{self.name}: {len(contexts)} context rows but {candidates.n} candidate rows")

    def checked_scores(self, contexts: pd.DataFrame, candidates: Candidates) -> np.ndarray:
        """``scores`` with its contract checked: shape [n, m], -inf where masked, finite elsewhere."""
        self.check_batch(contexts, candidates)
        scores = np.asarray(self.scores(contexts, candidates), dtype=np.float64)
        if scores.shape != candidates.items.shape:
            raise ValueError(f"{self.name}.scores: expected shape {candidates.items.shape}, got {scores.shape}")
        exploration.check_scores(scores, candidates.mask, where=f"{self.name}.scores")
        return scores

    def greedy_slate(self, contexts: pd.DataFrame, candidates: Candidates, k: int) -> np.ndarray:
        """[n, k] column indices of the top-k scores (ties broken by the lower column)."""
        exploration.check_k(candidates.mask, k)
        return exploration.greedy_positions(self.checked_scores(contexts, candidates), candidates.mask, k)

    def _logits(self, contexts: pd.DataFrame, candidates: Candidates, temperature: float) -> np.ndarray:
        scores = self.checked_scores(contexts, candidates)
        logits = np.asarray(self.pl_logits(np.where(candidates.mask, scores, 0.0)), dtype=np.float64)
        exploration.check_scores(np.where(candidates.mask, logits, -np.inf), candidates.mask,
                                 where=f"{self.name}.pl_logits")
        return np.where(candidates.mask, logits / temperature, -np.inf)

    def action_dist(self, contexts: pd.DataFrame, candidates: Candidates, k: int,
                    explore: Exploration) -> np.ndarray:
        """[n, m, k] float64: P(candidate column j at position p) under ``explore``."""
        exploration.check_k(candidates.mask, k)
        if explore.mode == "plackett_luce":
            logits = self._logits(contexts, candidates, explore.temperature)
            return exploration.plackett_luce_marginals(logits, candidates.mask, k, seed=explore.seed)
        greedy = self.greedy_slate(contexts, candidates, k)
        exploration.check_positions(greedy, candidates.mask, k, where=f"{self.name}.greedy_slate")
        if explore.mode == "none":
            return exploration.one_hot_dist(greedy, candidates.m)
        return exploration.epsilon_greedy_dist(greedy, candidates.mask, explore.epsilon)

    def slate(self, contexts: pd.DataFrame, candidates: Candidates, k: int, explore: Exploration) -> Slate:
        """Draw one slate per row under ``explore`` (seeded by ``explore.seed``)."""
        exploration.check_k(candidates.mask, k)
        if explore.mode == "plackett_luce":
            logits = self._logits(contexts, candidates, explore.temperature)
            positions = exploration.sample_plackett_luce(logits, candidates.mask, k, explore.seed)
            dist = exploration.plackett_luce_marginals(logits, candidates.mask, k, seed=explore.seed)
            slate_probability = np.exp(exploration.plackett_luce_log_probability(logits, candidates.mask, positions))
        else:
            greedy = self.greedy_slate(contexts, candidates, k)
            exploration.check_positions(greedy, candidates.mask, k, where=f"{self.name}.greedy_slate")
            if explore.mode == "none":
                positions = greedy
                dist = exploration.one_hot_dist(greedy, candidates.m)
                slate_probability = np.ones(candidates.n)
            else:
                positions, slate_probability = exploration.sample_epsilon_greedy(
                    greedy, candidates.mask, explore.epsilon, explore.seed)
                dist = exploration.epsilon_greedy_dist(greedy, candidates.mask, explore.epsilon)
        return make_slate(candidates, positions, dist, slate_probability)


def make_slate(candidates: Candidates, positions: np.ndarray, dist: np.ndarray,
               slate_probability: np.ndarray) -> Slate:
    """Assemble a Slate: items and propensities read off ``positions`` [n, k] and ``dist`` [n, m, k]."""
    positions = np.asarray(positions, dtype=np.int64)
    rows = np.arange(candidates.n)[:, None]
    slots = np.arange(positions.shape[1])[None, :]
    return Slate(
        positions=positions,
        items=candidates.items[rows, positions],
        propensities=dist[rows, positions, slots].astype(np.float64),
        slate_probability=np.asarray(slate_probability, dtype=np.float64),
    )
