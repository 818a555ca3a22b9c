"""Exploration maths shared by all policies: pure numpy, no policy state.

Shapes: ``n`` request rows, ``m`` padded candidate columns, ``k`` slate positions.
``mask`` [n, m] bool marks real candidates; ``m_row`` = number of True in a row.

- greedy top-k of scores with a stable tie-break (lower column first);
- ε-greedy: with probability 1-ε the greedy slate, with probability ε a uniformly random
  ordered slate of k distinct unmasked candidates. Marginal, exact and cheap:
  P(j at p) = (1-ε)·1[j greedy at p] + ε/m_row;
- Plackett–Luce: sampling without replacement from softmax(logits) over unmasked items
  (Gumbel top-k, which has exactly the PL law); exact whole-slate probability; exact
  per-position marginals by enumerating ordered prefixes while their number
  m!/(m-k+1)! stays within ``PL_EXACT_MAX_PREFIXES``, else a seeded Rao–Blackwellised
  Monte-Carlo estimate over ``PL_MC_SAMPLES`` sampled prefixes.
"""

from __future__ import annotations

import math

import numpy as np

# Exact PL marginals enumerate the ordered prefixes of length k-1 of the padded row:
# 10,000 covers every OBD room with k = 3 (80·79 = 6,320) at ~10^5 operations per row.
PL_EXACT_MAX_PREFIXES = 10_000
# Monte-Carlo fallback: sampled prefixes per row. Each sample contributes the exact
# conditional softmax of the remaining items, so each position's column sums to 1
# exactly and an item's marginal is 0 only if it sat in every sampled prefix (then its
# true marginal at that position is negligible); the standard error of an entry is
# below 0.5/sqrt(PL_MC_SAMPLES) ≈ 0.011.
PL_MC_SAMPLES = 2_000
# Rows processed together by the exact enumeration (bounds memory to ~rows·prefixes·8 B).
_CHUNK_ROWS = 128
# Monte-Carlo samples drawn together (bounds memory to block·rows·m·8 B).
_MC_BLOCK = 32


# --------------------------------------------------------------------------- checks


def check_k(mask: np.ndarray, k: int) -> None:
    """Raise ValueError naming the first row with fewer than k unmasked candidates."""
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k: expected a positive integer slate size, got {k!r}")
    counts = mask.sum(axis=1)
    short = np.flatnonzero(counts < k)
    if short.size:
        row = int(short[0])
        raise ValueError(f"k={k} exceeds the {int(counts[row])} unmasked candidate(s) of row {row} "
                         f"({short.size} row(s) too short)")


def check_scores(scores: np.ndarray, mask: np.ndarray, where: str = "scores") -> None:
    """Unmasked scores must be finite, masked ones -inf; raise ValueError naming the row."""
    bad = np.argwhere(mask & ~np.isfinite(scores))
    if bad.size:
        row, col = bad[0]
        raise ValueError(f"{where}: row {row}, column {col} is {scores[row, col]} (expected a finite score)")
    bad = np.argwhere(~mask & (scores != -np.inf))
    if bad.size:
        row, col = bad[0]
        raise ValueError(f"{where}: row {row}, column {col} is masked but scored {scores[row, col]} (expected -inf)")


def check_positions(positions: np.ndarray, mask: np.ndarray, k: int, where: str = "slate") -> None:
    """A slate [n, k] must hold k distinct unmasked columns per row."""
    positions = np.asarray(positions)
    if positions.shape != (mask.shape[0], k):
        raise ValueError(f"{where}: expected shape {(mask.shape[0], k)}, got {positions.shape}")
    if positions.size == 0:
        return
    if positions.min() < 0 or positions.max() >= mask.shape[1]:
        raise ValueError(f"{where}: column index outside 0..{mask.shape[1] - 1}")
    unmasked = np.take_along_axis(mask, positions, axis=1)
    if not unmasked.all():
        raise ValueError(f"{where}: row {int(np.flatnonzero(~unmasked.all(axis=1))[0])} shows a masked candidate")
    ordered = np.sort(positions, axis=1)
    duplicated = (ordered[:, 1:] == ordered[:, :-1]).any(axis=1)
    if duplicated.any():
        raise ValueError(f"{where}: row {int(np.flatnonzero(duplicated)[0])} shows a candidate twice")


# --------------------------------------------------------------------------- greedy / ε-greedy


def greedy_positions(scores: np.ndarray, mask: np.ndarray, k: int) -> np.ndarray:
    """[n, k] columns of the k highest unmasked scores; equal scores → lower column first."""
    keyed = np.where(mask, -scores, np.inf)
    return np.argsort(keyed, axis=1, kind="stable")[:, :k].astype(np.int64)


def one_hot_dist(positions: np.ndarray, m: int) -> np.ndarray:
    """[n, m, k] with 1 at (row, positions[row, p], p): a deterministic slate."""
    n, k = positions.shape
    dist = np.zeros((n, m, k))
    dist[np.arange(n)[:, None], positions, np.arange(k)[None, :]] = 1.0
    return dist


def epsilon_greedy_dist(greedy: np.ndarray, mask: np.ndarray, epsilon: float) -> np.ndarray:
    """[n, m, k] marginals (1-ε)·1[j greedy at p] + ε/m_row on unmasked j, 0 on masked."""
    uniform = mask / mask.sum(axis=1, keepdims=True)
    dist = (1.0 - epsilon) * one_hot_dist(greedy, mask.shape[1])
    return dist + epsilon * uniform[:, :, None]


def uniform_slate_probability(mask: np.ndarray, k: int) -> np.ndarray:
    """[n] probability of any one ordered slate under uniform sampling: ∏_{i<k} 1/(m_row - i)."""
    counts = mask.sum(axis=1).astype(np.float64)
    return np.prod(1.0 / (counts[:, None] - np.arange(k)[None, :]), axis=1)


def sample_uniform_slate(mask: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """[n, k] uniformly random ordered slates of distinct unmasked columns."""
    keys = np.where(mask, rng.random(mask.shape), np.inf)
    return np.argsort(keys, axis=1, kind="stable")[:, :k].astype(np.int64)


def sample_epsilon_greedy(greedy: np.ndarray, mask: np.ndarray, epsilon: float,
                          seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Draw ε-greedy slates → (positions [n, k], whole-slate probability [n]).

    P(slate) = (1-ε)·1[slate = greedy] + ε·∏_{i<k} 1/(m_row - i).
    """
    rng = np.random.default_rng(seed)
    n, k = greedy.shape
    explore = rng.random(n) < epsilon
    random_slates = sample_uniform_slate(mask, k, rng)
    positions = np.where(explore[:, None], random_slates, greedy)
    is_greedy = (positions == greedy).all(axis=1)
    probability = (1.0 - epsilon) * is_greedy + epsilon * uniform_slate_probability(mask, k)
    return positions.astype(np.int64), probability


# --------------------------------------------------------------------------- Plackett–Luce


def _masked_logits(logits: np.ndarray, mask: np.ndarray) -> np.ndarray:
    return np.where(mask, logits, -np.inf)


def sample_plackett_luce(logits: np.ndarray, mask: np.ndarray, k: int, seed: int) -> np.ndarray:
    """[n, k] slates drawn without replacement from softmax(logits) over unmasked columns.

    Gumbel top-k: adding i.i.d. Gumbel noise and taking the k largest has exactly the
    Plackett–Luce law (Yellott 1977), and needs one pass.
    """
    rng = np.random.default_rng(seed)
    perturbed = _masked_logits(logits, mask) + rng.gumbel(size=logits.shape)
    return greedy_positions(perturbed, mask, k)


def _logsumexp(values: np.ndarray, axis: int = -1) -> np.ndarray:
    top = np.max(values, axis=axis, keepdims=True)
    top = np.where(np.isfinite(top), top, 0.0)
    with np.errstate(divide="ignore"):
        return np.squeeze(top, axis=axis) + np.log(np.sum(np.exp(values - top), axis=axis))


def plackett_luce_log_probability(logits: np.ndarray, mask: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """[n] exact log P(ordered slate) = Σ_p (l_{s_p} − logsumexp of the items still available)."""
    available = mask.copy()
    values = _masked_logits(logits, mask)
    rows = np.arange(logits.shape[0])
    total = np.zeros(logits.shape[0])
    for p in range(positions.shape[1]):
        chosen = positions[:, p]
        total += values[rows, chosen] - _logsumexp(np.where(available, values, -np.inf), axis=1)
        available[rows, chosen] = False
    return total


def n_ordered_prefixes(m: int, length: int) -> int:
    """m!/(m-length)!: ordered prefixes of ``length`` distinct columns out of m."""
    return math.perm(m, length) if length <= m else 0


def plackett_luce_marginals(logits: np.ndarray, mask: np.ndarray, k: int, *, seed: int = 0,
                            max_prefixes: int = PL_EXACT_MAX_PREFIXES,
                            mc_samples: int = PL_MC_SAMPLES) -> np.ndarray:
    """[n, m, k] P(column j at position p) under Plackett–Luce sampling from softmax(logits).

    Exact when the ordered prefixes of length k-1 number at most ``max_prefixes``;
    otherwise a seeded Rao–Blackwellised Monte-Carlo estimate (see module docstring).
    Every position's column sums to 1 over unmasked columns; masked entries are 0.
    """
    check_k(mask, k)
    values = _masked_logits(np.asarray(logits, dtype=np.float64), mask)
    if n_ordered_prefixes(mask.shape[1], k - 1) <= max_prefixes:
        parts = [_exact_marginals(values[s:s + _CHUNK_ROWS], k) for s in range(0, values.shape[0], _CHUNK_ROWS)]
    else:
        rng = np.random.default_rng(seed)
        parts = [_sampled_marginals(values[s:s + _CHUNK_ROWS], mask[s:s + _CHUNK_ROWS], k, mc_samples, rng)
                 for s in range(0, values.shape[0], _CHUNK_ROWS)]
    dist = np.concatenate(parts, axis=0) if parts else np.zeros((0, mask.shape[1], k))
    return np.where(mask[:, :, None], dist, 0.0)


def _exact_marginals(values: np.ndarray, k: int) -> np.ndarray:
    """Exact PL marginals of a chunk of rows by enumerating ordered prefixes.

    values: [n, m] logits with -inf on masked columns. For a prefix P (ordered, distinct
    columns) the next item is j ∉ P with probability exp(l_j) / Σ_{i∉P} exp(l_i).
    To stay finite at any temperature, that ratio is computed with the shift
    t_P = max_{i∉P} l_i, which is always one of the row's k largest logits (|P| < k):
    w_r = exp(min(l − t_r, 0)) for the r-th largest t_r, and each prefix uses the r of
    its first top column not in P (entries clamped by the min belong to P and cancel).
    Σ_{i∉P} w_i = Σ_i w_i − Σ_{i∈P} w_i lies in [1, m], so the subtraction loses at most
    m ulps. Work per position: O(n · prefixes · k), no [n, prefixes, m] array.
    """
    n, m = values.shape
    order = np.argsort(-values, axis=1, kind="stable")[:, :k]  # [n, k] top columns
    top_values = np.take_along_axis(values, order, axis=1)  # [n, k], finite by check_k
    with np.errstate(invalid="ignore"):
        shifted = np.exp(np.minimum(values[:, None, :] - top_values[:, :, None], 0.0))  # [n, k, m]
    shifted = np.nan_to_num(shifted, nan=0.0)
    totals = shifted.sum(axis=2)  # [n, k]
    rows = np.arange(n)[:, None]
    dist = np.zeros((n, m, k))
    prefixes = np.zeros((1, 0), dtype=np.int64)  # [P, p] columns of each ordered prefix
    probability = np.ones((n, 1))  # [n, P] probability of each prefix
    for p in range(k):
        shift = _first_top_outside(order, prefixes)  # [n, P]
        member = shifted[rows[:, :, None], shift[:, :, None], prefixes[None, :, :]]  # [n, P, p]
        ratio = probability / (totals[rows, shift] - member.sum(axis=2))
        # Σ_P ratio_P · w^{r(P)}_j · 1[j ∉ P]: every column under each shift, minus the prefix members.
        for r in range(k):
            dist[:, :, p] += shifted[:, r, :] * np.where(shift == r, ratio, 0.0).sum(axis=1)[:, None]
        for q in range(p):
            dist[:, :, p] -= _column_sums(ratio * member[:, :, q], prefixes[:, q], m)
        if p == k - 1:
            break
        # Extend every prefix by every column not in it; drop prefixes of zero probability.
        not_in = np.ones((prefixes.shape[0], m), dtype=bool)
        not_in[np.arange(prefixes.shape[0])[:, None], prefixes] = False
        prefix_id, column = np.nonzero(not_in)
        probability = ratio[:, prefix_id] * shifted[rows, shift[:, prefix_id], column[None, :]]
        keep = probability.max(axis=0) > 0.0
        prefixes = np.concatenate([prefixes[prefix_id], column[:, None]], axis=1)[keep]
        probability = probability[:, keep]
    return np.maximum(dist, 0.0)


def _first_top_outside(order: np.ndarray, prefixes: np.ndarray) -> np.ndarray:
    """[n, P] rank r of the first of the row's top columns ``order[:, r]`` that prefix P does not hold."""
    n, k = order.shape
    shift = np.zeros((n, prefixes.shape[0]), dtype=np.int64)
    found = np.zeros_like(shift, dtype=bool)
    for r in range(k):
        held = np.zeros_like(found)
        for q in range(prefixes.shape[1]):
            held |= prefixes[None, :, q] == order[:, r, None]
        outside = ~held & ~found
        shift[outside] = r
        found |= outside
    return shift


def _column_sums(values: np.ndarray, columns: np.ndarray, m: int) -> np.ndarray:
    """[n, m]: out[:, c] = Σ over entries e with columns[e] = c of values[:, e] (values [n, E])."""
    out = np.zeros((values.shape[0], m))
    if columns.size == 0:
        return out
    order = np.argsort(columns, kind="stable")
    ordered = columns[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    out[:, ordered[starts]] = np.add.reduceat(values[:, order], starts, axis=1)
    return out


def _sampled_marginals(values: np.ndarray, mask: np.ndarray, k: int, samples: int,
                       rng: np.random.Generator) -> np.ndarray:
    """Rao–Blackwellised MC PL marginals: E over sampled prefixes of the exact next-item softmax.

    Samples are drawn in blocks of ``_MC_BLOCK`` (one [block, n, m] array at a time).
    """
    n, m = values.shape
    dist = np.zeros((n, m, k))
    rows = np.arange(n)[None, :]
    for start in range(0, samples, _MC_BLOCK):
        block = min(_MC_BLOCK, samples - start)
        perturbed = values[None] + rng.gumbel(size=(block, n, m))  # [B, n, m]
        prefix = np.argsort(np.where(mask[None], -perturbed, np.inf), axis=2, kind="stable")[:, :, :max(k - 1, 1)]
        available = np.repeat(values[None], block, axis=0)
        for p in range(k):
            dist[:, :, p] += np.exp(available - _logsumexp(available, axis=2)[:, :, None]).sum(axis=0)
            if p < k - 1:
                available[np.arange(block)[:, None], rows, prefix[:, :, p]] = -np.inf
    return dist / samples
