"""Ranking metrics: exact tie handling, excluded rows, duplicates, alignment, bad input."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from liveslate.ope.bootstrap import BootstrapConfig
from liveslate.ope.ranking import NoClickedRows, build_queries, first_occurrences, per_query_metrics, ranking_metrics

FAST = BootstrapConfig(n_resamples=200, confidence=0.95, seed=0)
INDEX = pd.Index([f"all/{i}" for i in range(6)], name="item_id")


def brute_force(scores: np.ndarray, relevant: np.ndarray, k: int = 3) -> tuple[float, float, float]:
    """Average over every order of the candidates consistent with the scores (ties permuted)."""
    m = len(scores)
    rr, hit, ndcg, orders = 0.0, 0.0, 0.0, 0
    n_rel = int(relevant.sum())
    ideal = sum(1.0 / np.log2(r + 1) for r in range(1, min(n_rel, k) + 1))
    for perm in itertools.permutations(range(m)):
        ranked = list(perm)
        if any(scores[ranked[i]] < scores[ranked[i + 1]] for i in range(m - 1)):
            continue  # not a valid ordering: a lower score placed above a higher one
        orders += 1
        ranks = [r + 1 for r, j in enumerate(ranked) if relevant[j]]
        rr += 1.0 / min(ranks)
        hit += float(ranks[0] == 1) if min(ranks) == 1 else 0.0
        ndcg += sum(1.0 / np.log2(r + 1) for r in ranks if r <= k) / ideal
    return rr / orders, hit / orders, ndcg / orders


def test_five_tied_candidates_under_every_input_order():
    expected_rr = (1 + 1 / 2 + 1 / 3 + 1 / 4 + 1 / 5) / 5
    expected_ndcg = (1 + 1 / np.log2(3) + 1 / np.log2(4)) / 5
    assert round(expected_rr, 3) == 0.457
    for order in itertools.permutations(range(5)):
        relevant = np.array(order) == 2  # the clicked item wherever the shuffle put it
        rr, hit, ndcg = per_query_metrics(np.full((1, 5), 0.7), np.ones((1, 5), bool), relevant[None, :])
        assert rr[0] == pytest.approx(expected_rr)
        assert hit[0] == pytest.approx(0.2)
        assert ndcg[0] == pytest.approx(expected_ndcg)


def test_matches_brute_force_enumeration_of_tie_orders():
    rng = np.random.default_rng(5)
    for _ in range(60):
        m = int(rng.integers(2, 7))
        scores = rng.integers(0, 3, size=m).astype(float)  # plenty of ties
        relevant = rng.random(m) < 0.4
        if not relevant.any():
            relevant[rng.integers(m)] = True
        got = per_query_metrics(scores[None, :], np.ones((1, m), bool), relevant[None, :])
        want = brute_force(scores, relevant)
        np.testing.assert_allclose([g[0] for g in got], want, rtol=1e-9)


def test_masked_candidates_do_not_take_ranks():
    scores = np.array([[0.1, 9.0, 0.5, 0.2]])
    mask = np.array([[True, False, True, True]])  # the 9.0 is padding
    relevant = np.array([[False, False, True, False]])
    rr, hit, _ = per_query_metrics(scores, mask, relevant)
    assert rr[0] == 1.0 and hit[0] == 1.0


def logs_frame(rows):
    return pd.DataFrame(rows, columns=["impression_id", "item_id", "click"]).astype(
        {"impression_id": "string", "item_id": "string", "click": "int8"})


def whole_room(ids, m=6):
    return (np.array(ids, dtype=object), np.tile(np.arange(m), (len(ids), 1)), np.ones((len(ids), m), bool))


def test_rows_without_a_click_are_excluded_and_counted():
    logs = logs_frame([("x", "all/1", 1), ("x", "all/2", 0), ("y", "all/3", 0), ("y", "all/4", 0), ("z", "all/0", 0)])
    queries = build_queries(logs, INDEX, *whole_room(["x", "y", "z"]))
    assert list(queries.impression_id) == ["x"]
    assert queries.excluded_rows == 3 and queries.excluded_impressions == 2
    scores = np.array([[0.0, 5.0, 1.0, 1.0, 1.0, 1.0]] * 3)
    result = ranking_metrics(queries, np.array(["x", "y", "z"], dtype=object), scores, bootstrap=FAST)
    assert (result.mrr, result.hit_at_1, result.ndcg) == (1.0, 1.0, 1.0)
    summary = result.summary()
    assert summary["excluded_rows_without_click"] == 3 and summary["n_queries"] == 1
    assert set(summary) >= {"mrr", "mrr_ci", "hit_at_1", "hit_at_1_ci", "ndcg_at_3", "ndcg_at_3_ci"}


def test_a_batch_without_any_click_is_a_clear_error_not_nan():
    logs = logs_frame([("x", "all/1", 0), ("y", "all/3", 0)])
    with pytest.raises(NoClickedRows, match=r"at least one row with a click; none of the 2 row\(s\) \(2 impression\(s\)\)"):
        build_queries(logs, INDEX, *whole_room(["x", "y"]))


def test_repeated_items_are_credited_once_and_never_exceed_one():
    # Candidate list repeats the clicked item (columns 0 and 2), and the slate showed it at
    # two positions, both clicked.
    logs = logs_frame([("x", "all/1", 1), ("x", "all/1", 1), ("x", "all/2", 0)])
    ids = np.array(["x"], dtype=object)
    items = np.array([[1, 2, 1, 3]])
    queries = build_queries(logs, INDEX, ids, items, np.ones((1, 4), bool))
    np.testing.assert_array_equal(queries.mask, [[True, True, False, True]])
    assert queries.relevant.sum() == 1
    result = ranking_metrics(queries, ids, np.array([[2.0, 1.0, 2.0, 0.0]]), bootstrap=FAST)
    # Without de-duplication the two copies would tie at the top and the NDCG gain would count twice.
    assert (result.mrr, result.hit_at_1, result.ndcg) == (1.0, 1.0, 1.0)
    # A worse score for the copy changes nothing: the first occurrence's score is the item's.
    low_copy = ranking_metrics(queries, ids, np.array([[2.0, 1.0, -5.0, 0.0]]), bootstrap=FAST)
    assert low_copy.mrr == 1.0


def test_first_occurrences_ignores_padding():
    items = np.array([[4, 0, 4, 0], [1, 2, 3, 0]])
    mask = np.array([[True, False, True, False], [True, True, True, False]])
    np.testing.assert_array_equal(first_occurrences(items, mask), [[True, False, False, False], [True, True, True, False]])


def test_scores_are_joined_by_impression_id():
    logs = logs_frame([("a", "all/0", 1), ("b", "all/5", 1), ("c", "all/2", 1)])
    queries = build_queries(logs, INDEX, *whole_room(["a", "b", "c"]))
    scores = np.random.default_rng(1).random((3, 6))
    ids = np.array(["a", "b", "c"], dtype=object)
    reference = ranking_metrics(queries, ids, scores, bootstrap=FAST)
    order = [2, 0, 1]
    shuffled = ranking_metrics(queries, ids[order], scores[order], bootstrap=FAST)
    assert (shuffled.mrr, shuffled.hit_at_1, shuffled.ndcg) == (reference.mrr, reference.hit_at_1, reference.ndcg)
    assert reference.mrr_ci[0] <= reference.mrr <= reference.mrr_ci[1]
    with pytest.raises(ValueError, match=r"no scores for clicked 1 row\(s\): \(impression 'c'\)"):
        ranking_metrics(queries, ids[:2], scores[:2], bootstrap=FAST)


@pytest.mark.parametrize("rows, message", [
    ([("a", "all/9", 1)], "clicked item not in the item index"),
    ([("q", "all/1", 1)], r"no candidate row for clicked 1 row\(s\): \(impression 'q'\)"),
])
def test_bad_ranking_input_is_rejected(rows, message):
    with pytest.raises(ValueError, match=message):
        build_queries(logs_frame(rows), INDEX, *whole_room(["a"]))


def test_clicked_item_outside_the_candidates_is_rejected():
    logs = logs_frame([("a", "all/5", 1)])
    with pytest.raises(ValueError, match=r"not among the impression's candidates at 1 row\(s\): \(impression 'a'\)"):
        build_queries(logs, INDEX, np.array(["a"], dtype=object), np.array([[0, 1, 2]]), np.ones((1, 3), bool))


def test_nan_scores_are_rejected():
    logs = logs_frame([("a", "all/0", 1)])
    queries = build_queries(logs, INDEX, *whole_room(["a"]))
    scores = np.zeros((1, 6))
    scores[0, 3] = np.nan
    with pytest.raises(ValueError, match=r"NaN score on a real candidate at 1 row\(s\): \(impression 'a'\)"):
        ranking_metrics(queries, np.array(["a"], dtype=object), scores, bootstrap=FAST)
