"""Ranking metrics of a policy's scores on logged clicks: MRR, Hit@1, NDCG@k.

A query is one logged impression with at least one click: all candidates of the
impression (its room's items) are ranked by the policy's score, and the relevant items
are the impression's clicked items. Impressions without a click are excluded and counted.

Ties are scored exactly as the expectation over a uniformly random order of the tied
items (DESIGN.md), so a metric never depends on the input order:
- a candidate with g higher-scored and t tied candidates (itself included) occupies one
  of the ranks g+1 .. g+t, each with probability 1/t;
- MRR: the first relevant item lies in the best tie group holding relevant items; with s
  relevant among its t members at ranks a .. a+t−1, the first relevant one is the X-th
  of the group with P(X = x) = C(t−x, s−1) / C(t, s); RR = E[1 / (a − 1 + X)];
- Hit@1 = s / t when that group starts at rank 1, else 0;
- NDCG@k: by linearity E[DCG] = Σ_relevant (1/t) Σ_{r=g+1}^{g+t} disc(r), disc(r) =
  1/log2(r+1) for r ≤ k; IDCG = Σ_{r=1}^{min(R, k)} disc(r) for R relevant items.
Five candidates tied at the top with one clicked give RR = (1 + 1/2 + … + 1/5) / 5 =
0.457 and Hit@1 = 0.2.

Duplicates are credited once: a candidate list that repeats an item keeps its first
occurrence (and that occurrence's score), and an item clicked at two positions of one
slate is one relevant item — so no metric can exceed 1.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.special import gammaln

from liveslate.ope.bootstrap import BootstrapConfig, percentile_interval, resampled_means
from liveslate.ope.inputs import describe_rows

# Bound on the [queries, m, m] comparison block held in memory at once.
_BLOCK_ELEMENTS = 2**24


class NoClickedRows(ValueError):
    """Ranking metrics asked of a batch in which no row has a click."""


@dataclass(frozen=True)
class RankingQueries:
    """Clicked impressions to rank, q of them, m candidate columns.

    impression_id [q]; candidate_items [q, m] int item indices; mask [q, m] bool (real and
    first occurrence of its item); relevant [q, m] bool (a clicked item of the impression);
    excluded_rows / excluded_impressions: rows and impressions left out for having no click.
    """

    impression_id: np.ndarray
    candidate_items: np.ndarray
    mask: np.ndarray
    relevant: np.ndarray
    excluded_rows: int
    excluded_impressions: int


def first_occurrences(items: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """[q, m] bool: real candidates that are the first occurrence of their item in the row."""
    q, m = items.shape
    columns = np.broadcast_to(np.arange(m), (q, m))
    # Padding gets distinct negative keys so it never counts as a duplicate.
    keys = np.where(mask, items, -1 - columns)
    order = np.argsort(keys, axis=1, kind="stable")
    sorted_keys = np.take_along_axis(keys, order, axis=1)
    repeated_sorted = np.zeros((q, m), dtype=bool)
    repeated_sorted[:, 1:] = sorted_keys[:, 1:] == sorted_keys[:, :-1]
    repeated = np.zeros((q, m), dtype=bool)
    np.put_along_axis(repeated, order, repeated_sorted, axis=1)
    return mask & ~repeated


def build_queries(logs: pd.DataFrame, item_index: pd.Index, candidate_ids: np.ndarray, candidate_items: np.ndarray,
                  candidate_mask: np.ndarray) -> RankingQueries:
    """Clicked impressions of ``logs`` with their candidates, keyed by impression id.

    logs: canonical rows (impression_id, item_id, click); item_index: the stable item
    index (schema.item_index); candidate_ids [c] impression ids of the candidate rows,
    candidate_items [c, m] / candidate_mask [c, m] as in ``Candidates``. Every logged
    impression needs a candidate row, and every clicked item must be one of its candidates.
    """
    for column in ("impression_id", "item_id", "click"):
        if column not in logs.columns:
            raise ValueError(f"ranking: logs lack column {column!r}")
    candidate_ids = np.asarray(candidate_ids, dtype=object).astype(str).astype(object)
    candidate_items = np.asarray(candidate_items, dtype=np.int64)
    candidate_mask = np.asarray(candidate_mask, dtype=bool)
    if candidate_items.shape != candidate_mask.shape or candidate_items.shape[0] != len(candidate_ids):
        raise ValueError(f"ranking: candidate ids {len(candidate_ids)}, items {candidate_items.shape} and mask "
                         f"{candidate_mask.shape} do not describe the same rows")
    if pd.Index(candidate_ids).has_duplicates:
        raise ValueError("ranking: candidate rows must have unique impression ids")
    click = logs["click"].to_numpy()
    clicked = logs.loc[click > 0, ["impression_id", "item_id"]]
    impressions = logs["impression_id"].astype(str)
    clicked_impressions = pd.unique(clicked["impression_id"].astype(str).to_numpy(dtype=object))
    excluded_rows = int((~impressions.isin(clicked_impressions)).sum())
    excluded_impressions = int(impressions.nunique() - len(clicked_impressions))
    if len(clicked_impressions) == 0:
        raise NoClickedRows(f"ranking metrics need at least one row with a click; none of the {len(logs)} row(s) "
                            f"({excluded_impressions} impression(s)) has one")
    row_of = pd.Index(candidate_ids).get_indexer(clicked_impressions)
    if (row_of < 0).any():
        raise ValueError(f"ranking: no candidate row for clicked {describe_rows(clicked_impressions, None, row_of < 0)}")
    item_pos = item_index.get_indexer(clicked["item_id"].astype(str).to_numpy(dtype=object))
    clicked_ids = clicked["impression_id"].astype(str).to_numpy(dtype=object)
    if (item_pos < 0).any():
        raise ValueError(f"ranking: clicked item not in the item index at {describe_rows(clicked_ids, None, item_pos < 0)}")
    items = candidate_items[row_of]
    mask = first_occurrences(items, candidate_mask[row_of])
    query_of_click = pd.Index(clicked_impressions).get_indexer(clicked_ids)
    hit = (items[query_of_click] == item_pos[:, None]) & mask[query_of_click]
    missing = ~hit.any(axis=1)
    if missing.any():
        raise ValueError(f"ranking: clicked item is not among the impression's candidates at "
                         f"{describe_rows(clicked_ids, None, missing)}")
    relevant = np.zeros(items.shape, dtype=bool)
    click_rows, click_cols = np.nonzero(hit)
    relevant[query_of_click[click_rows], click_cols] = True  # a repeated click sets the same cell: credited once
    return RankingQueries(impression_id=clicked_impressions, candidate_items=items, mask=mask, relevant=relevant,
                          excluded_rows=excluded_rows, excluded_impressions=excluded_impressions)


def _log_comb(n: np.ndarray, k: np.ndarray) -> np.ndarray:
    return gammaln(n + 1.0) - gammaln(k + 1.0) - gammaln(n - k + 1.0)


def per_query_metrics(scores: np.ndarray, mask: np.ndarray, relevant: np.ndarray,
                      k: int = 3) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Exact tie-expected (reciprocal rank, hit@1, NDCG@k) per query, each [q] in [0, 1].

    scores [q, m] (any values on masked entries), mask [q, m] real candidates (one per
    item), relevant [q, m]; every query needs ≥ 1 relevant real candidate.
    """
    if k < 1:
        raise ValueError(f"ranking: NDCG cut-off must be >= 1, got {k}")
    scores = np.asarray(scores, dtype=np.float64)
    relevant = relevant & mask
    q, m = scores.shape
    if not relevant.any(axis=1).all():
        raise ValueError("ranking: every query needs at least one relevant real candidate")
    # cumulative discount D(r) = Σ_{u ≤ min(r, k)} 1/log2(u + 1), for r = 0..m
    ranks = np.arange(1, m + 1)
    discount = np.where(ranks <= k, 1.0 / np.log2(ranks + 1.0), 0.0)
    cumulative = np.concatenate([[0.0], np.cumsum(discount)])
    rr, hit, ndcg = np.empty(q), np.empty(q), np.empty(q)
    block = max(1, _BLOCK_ELEMENTS // (m * m))
    for start in range(0, q, block):
        rows = slice(start, min(q, start + block))
        s, real, rel = scores[rows], mask[rows], relevant[rows]
        greater = ((s[:, None, :] > s[:, :, None]) & real[:, None, :]).sum(axis=2)  # [b, m]
        tied = ((s[:, None, :] == s[:, :, None]) & real[:, None, :]).sum(axis=2)    # includes itself
        # MRR: the best tie group that holds a relevant item.
        best = np.where(rel, greater, m).min(axis=1)                     # g* [b]
        in_group = rel & (greater == best[:, None])
        n_rel = in_group.sum(axis=1).astype(np.float64)                  # s
        size = np.where(in_group, tied, 0).max(axis=1).astype(np.float64)  # t
        x = np.arange(1, m + 1, dtype=np.float64)[None, :]               # X = 1..m
        valid = x <= (size - n_rel + 1.0)[:, None]
        log_p = _log_comb(np.maximum(size[:, None] - x, 0.0), (n_rel - 1.0)[:, None]) - _log_comb(size, n_rel)[:, None]
        prob = np.where(valid, np.exp(log_p), 0.0)
        rr[rows] = (prob / (best[:, None] + x)).sum(axis=1)
        hit[rows] = np.where(best == 0, n_rel / size, 0.0)
        # NDCG@k: expected gain of each relevant item over its tie group's ranks.
        gain = (cumulative[np.minimum(greater + tied, m)] - cumulative[greater]) / np.maximum(tied, 1)
        dcg = np.where(rel, gain, 0.0).sum(axis=1)
        ideal = cumulative[np.minimum(rel.sum(axis=1), k)]
        ndcg[rows] = dcg / ideal
    return rr, hit, ndcg


@dataclass(frozen=True)
class RankingResult:
    """Metric values with bootstrap intervals over queries, and the counts behind them."""

    mrr: float
    mrr_ci: tuple[float, float]
    hit_at_1: float
    hit_at_1_ci: tuple[float, float]
    ndcg: float
    ndcg_ci: tuple[float, float]
    k: int
    n_queries: int
    excluded_rows: int
    excluded_impressions: int

    def summary(self) -> dict:
        """DESIGN.md keys (mrr, mrr_ci, hit_at_1, hit_at_1_ci, ndcg_at_K, ndcg_at_K_ci) plus counts."""
        return {"mrr": self.mrr, "mrr_ci": list(self.mrr_ci), "hit_at_1": self.hit_at_1,
                "hit_at_1_ci": list(self.hit_at_1_ci), f"ndcg_at_{self.k}": self.ndcg,
                f"ndcg_at_{self.k}_ci": list(self.ndcg_ci), "n_queries": self.n_queries,
                "excluded_rows_without_click": self.excluded_rows,
                "excluded_impressions_without_click": self.excluded_impressions}


def ranking_metrics(queries: RankingQueries, score_ids: np.ndarray, scores: np.ndarray, k: int = 3,
                    bootstrap: BootstrapConfig = BootstrapConfig()) -> RankingResult:
    """MRR, Hit@1 and NDCG@k of ``scores`` on the clicked queries, with seeded bootstrap CIs.

    score_ids [r] impression ids of the score rows and scores [r, m] (``Policy.scores``
    over the same candidate columns); joined to the queries by impression id. NaN scores
    on real candidates are an error naming the impressions.
    """
    score_ids = np.asarray(score_ids, dtype=object).astype(str).astype(object)
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 2 or scores.shape[0] != len(score_ids):
        raise ValueError(f"ranking: scores must be [rows, candidates] for {len(score_ids)} ids, got {scores.shape}")
    if scores.shape[1] != queries.candidate_items.shape[1]:
        raise ValueError(f"ranking: scores have {scores.shape[1]} candidate columns, the queries "
                         f"{queries.candidate_items.shape[1]}")
    row_of = pd.Index(score_ids).get_indexer(queries.impression_id)
    if (row_of < 0).any():
        raise ValueError(f"ranking: no scores for clicked {describe_rows(queries.impression_id, None, row_of < 0)}")
    aligned = scores[row_of]
    undefined = (np.isnan(aligned) & queries.mask).any(axis=1)
    if undefined.any():
        raise ValueError(f"ranking: NaN score on a real candidate at {describe_rows(queries.impression_id, None, undefined)}")
    rr, hit, ndcg = per_query_metrics(aligned, queries.mask, queries.relevant, k)
    values = np.stack([rr, hit, ndcg], axis=1)
    samples = resampled_means(values, None, bootstrap.n_resamples, bootstrap.seed)
    intervals = [percentile_interval(samples[:, c], bootstrap.confidence) for c in range(3)]
    return RankingResult(mrr=float(rr.mean()), mrr_ci=intervals[0], hit_at_1=float(hit.mean()),
                         hit_at_1_ci=intervals[1], ndcg=float(ndcg.mean()), ndcg_ci=intervals[2], k=k,
                         n_queries=len(rr), excluded_rows=queries.excluded_rows,
                         excluded_impressions=queries.excluded_impressions)
