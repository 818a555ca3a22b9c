"""The champion rule (liveslate.evaluation.select.decide) as a table of situations.

Each row builds an evaluation.json payload by hand, states the registry (candidates'
versions, the alias holder) and the expected decision. The expected outcome follows from
the rule in DESIGN.md: highest lower bound of the primary estimator; guards (finite,
inside the reward range, ESS ≥ min_ess); margin over the best logging policy and the champion.
"""

from __future__ import annotations

import math

import pytest

from liveslate.config import SelectConfig
from liveslate.evaluation.select import Candidate, Incumbent, decide

PRIMARY = "dr"
RANGE = (0.0, 1.0)
CONFIG = SelectConfig(candidates=("deepfm", "deepfm_nokg", "slateq", "sac"), margin=0.001, min_ess=50.0)
LOGGING = {"random@obd": {"value": 0.005, "ci_low": 0.004, "ci_high": 0.006, "n": 6000},
           "bts@obd": {"value": 0.006, "ci_low": 0.005, "ci_high": 0.007, "n": 6000}}


def row(value: float, low: float, high: float, ess: float = 500.0) -> dict:
    return {"mrr": 0.2, "mrr_ci": [0.1, 0.3], "hit_at_1": 0.05, "hit_at_1_ci": [0.0, 0.1], "ndcg_at_3": 0.2,
            "ndcg_at_3_ci": [0.1, 0.3], "ope": {PRIMARY: {"value": value, "ci_low": low, "ci_high": high, "ess": ess}}}


def evaluation(**rows: dict) -> dict:
    return {"policies": {"uniform": row(0.005, 0.004, 0.006, 6000.0), **rows}, "logging": LOGGING,
            "counts": {"rows": 12000}}


def run(payload: dict, versions: dict[str, str | None], incumbent: Incumbent | None = None,
        evaluated_champion: str | None = None, rolled_back: tuple[str, ...] = ()):
    candidates = [Candidate(name, version, name in rolled_back) for name, version in versions.items()]
    return decide(payload, candidates, incumbent, evaluated_champion, PRIMARY, CONFIG, RANGE)


def test_first_champion_is_the_best_lower_bound_that_passes_the_guards():
    # sac has the higher point estimate but the wider interval: the rule ranks by the lower bound.
    payload = evaluation(deepfm=row(0.010, 0.008, 0.012), sac=row(0.013, 0.007, 0.020))
    decision = run(payload, {"deepfm": "1", "sac": "2"})
    assert (decision.champion, decision.registered_version, decision.previous, decision.promoted) == \
        ("deepfm", "1", None, True)
    assert decision.reason.startswith("initial:")
    # The first champion needs no margin over the logging policies: a policy below them still qualifies.
    low = run(evaluation(deepfm=row(0.004, 0.003, 0.005)), {"deepfm": "1"})
    assert low.promoted and low.champion == "deepfm" and low.reason.startswith("initial")


def test_clear_winner_is_promoted_over_the_champion():
    # Champion v1 (deepfm) is re-evaluated at 0.010; best logging 0.006; bar = 0.010 + 0.001.
    payload = evaluation(deepfm=row(0.010, 0.008, 0.012), champion=row(0.010, 0.008, 0.012),
                         sac=row(0.016, 0.0115, 0.021))
    decision = run(payload, {"deepfm": "1", "sac": "3"}, Incumbent("deepfm", "1"), evaluated_champion="1")
    assert (decision.champion, decision.registered_version, decision.previous, decision.promoted) == \
        ("sac", "3", "1", True)
    assert "champion v1 0.01000 + margin 0.001 = 0.01100" in decision.reason


@pytest.mark.parametrize("lower_bound", [0.0105, 0.011])
def test_lower_bound_inside_the_margin_is_not_promoted(lower_bound):
    # Above the champion's 0.010 but not above 0.010 + margin 0.001 (equal is not above).
    payload = evaluation(deepfm=row(0.010, 0.008, 0.012), champion=row(0.010, 0.008, 0.012),
                         sac=row(0.014, lower_bound, 0.018))
    decision = run(payload, {"deepfm": "1", "sac": "3"}, Incumbent("deepfm", "1"), evaluated_champion="1")
    assert (decision.champion, decision.registered_version, decision.previous, decision.promoted) == \
        ("deepfm", "1", "1", False)
    assert decision.reason.startswith("not promoted") and "sac v3" in decision.reason


def test_the_logging_policy_is_a_bar_too():
    # The champion's estimate (0.002) is below the best logging value (0.006): the logging bar decides.
    payload = evaluation(deepfm=row(0.002, 0.001, 0.003), champion=row(0.002, 0.001, 0.003),
                         sac=row(0.008, 0.0065, 0.010))
    decision = run(payload, {"deepfm": "1", "sac": "3"}, Incumbent("deepfm", "1"), evaluated_champion="1")
    assert not decision.promoted and "bts@obd 0.00600 + margin 0.001 = 0.00700" in decision.reason
    payload["policies"]["sac"] = row(0.009, 0.0071, 0.011)
    assert run(payload, {"deepfm": "1", "sac": "3"}, Incumbent("deepfm", "1"), evaluated_champion="1").promoted


@pytest.mark.parametrize("bad_row, reason", [
    (row(math.nan, 0.01, 0.03), "non-finite dr estimate"),
    (row(0.02, -math.inf, 0.03), "non-finite dr estimate"),
    (row(1.5, 1.2, 1.8), "outside the reward range [0.0, 1.0]"),
    (row(-0.2, -0.3, -0.1), "outside the reward range"),
    (row(0.05, 0.04, 0.06, ess=3.0), "effective sample size 3.0 below select.min_ess 50"),
    ({"mrr": 0.3, "mrr_ci": [0.2, 0.4], "ope": {}}, "no dr estimate"),
])
def test_guards_refuse_with_their_reason(bad_row, reason):
    # The refused candidate would otherwise win clearly (its lower bound is the highest).
    payload = evaluation(deepfm=row(0.010, 0.008, 0.012), champion=row(0.010, 0.008, 0.012), sac=bad_row)
    decision = run(payload, {"deepfm": "1", "sac": "3"}, Incumbent("deepfm", "1"), evaluated_champion="1")
    assert not decision.promoted and decision.registered_version == "1"
    verdict = {v.policy: v for v in decision.verdicts}["sac"]
    assert not verdict.eligible and reason in verdict.reason
    # With no champion yet, the refused candidate cannot become the first one either.
    first = run(evaluation(sac=bad_row), {"sac": "3"})
    assert first.champion is None and not first.promoted and reason in first.reason


def test_unregistered_unevaluated_and_rolled_back_candidates_are_refused():
    payload = evaluation(deepfm=row(0.010, 0.008, 0.012), slateq=row(0.03, 0.025, 0.035),
                         sac=row(0.04, 0.035, 0.045))
    decision = run(payload, {"deepfm": "1", "slateq": None, "sac": "4"}, rolled_back=("sac",))
    verdicts = {v.policy: v for v in decision.verdicts}
    assert "not a registered model version" in verdicts["slateq"].reason
    assert "v4 was rolled back" in verdicts["sac"].reason
    assert "not evaluated" in verdicts["deepfm_nokg"].reason
    assert (decision.champion, decision.registered_version, decision.promoted) == ("deepfm", "1", True)


def test_a_second_run_changes_nothing():
    # After the initial promotion of deepfm v1 the same evaluation (no champion row yet) is read again.
    payload = evaluation(deepfm=row(0.010, 0.008, 0.012), sac=row(0.013, 0.007, 0.020))
    first = run(payload, {"deepfm": "1", "sac": "2"})
    second = run(payload, {"deepfm": "1", "sac": "2"}, Incumbent(first.champion, first.registered_version))
    assert (second.champion, second.registered_version, second.previous, second.promoted) == \
        ("deepfm", "1", "1", False)
    assert "still the best candidate" in second.reason


def test_champion_not_evaluated_keeps_the_alias():
    # The alias holder v7 appears neither as the champion row nor as a candidate's version.
    payload = evaluation(deepfm=row(0.030, 0.025, 0.035))
    decision = run(payload, {"deepfm": "8"}, Incumbent("deepfm", "7"), evaluated_champion=None)
    assert not decision.promoted and decision.registered_version == "7"
    assert "champion v7 was not evaluated" in decision.reason


def test_champion_value_comes_from_the_candidate_with_its_version():
    # No champion row (evaluate ran before the last promotion), but deepfm_nokg *is* version 2 = the champion.
    payload = evaluation(deepfm_nokg=row(0.012, 0.010, 0.014), sac=row(0.0135, 0.0128, 0.016))
    decision = run(payload, {"deepfm_nokg": "2", "sac": "3"}, Incumbent("deepfm_nokg", "2"))
    # Bar: max(0.006 logging, 0.012 champion) + 0.001 = 0.013; sac's lower bound 0.0128 is below it.
    assert not decision.promoted and "champion v2 0.01200" in decision.reason


def test_ties_break_by_value_then_name():
    payload = evaluation(sac=row(0.011, 0.008, 0.014), deepfm=row(0.010, 0.008, 0.012),
                         slateq=row(0.011, 0.008, 0.014))
    decision = run(payload, {"deepfm": "1", "slateq": "2", "sac": "3"})
    assert decision.champion == "sac"  # equal bound 0.008; higher value 0.011 (sac, slateq); then name order


def test_selection_json_holds_the_design_keys():
    decision = run(evaluation(deepfm=row(0.010, 0.008, 0.012)), {"deepfm": "1"})
    payload = decision.to_json()
    assert list(payload)[:5] == ["champion", "registered_version", "previous", "promoted", "reason"]
    assert payload["candidates"]["deepfm"] == {"version": "1", "value": 0.010, "lower_bound": 0.008, "ess": 500.0,
                                               "eligible": True, "reason": "passes the guards"}
