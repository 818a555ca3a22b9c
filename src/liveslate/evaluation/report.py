"""The evaluation report: one self-contained HTML page (inline CSS, figures as base64 PNG).

Inputs are the JSON payloads — ``metrics/evaluation.json``, the stage's details
(per-position estimates, paired lifts, registry versions), ``metrics/backtest.json`` when
the backtest ran, and the selection preview — so the page can be rebuilt from files.
"""

from __future__ import annotations

import base64
import html
from typing import Any

from liveslate.evaluation import plots

# The origin poster's results (a different, private live-stream dataset): the bar this
# project sets itself, shown for orientation only — the numbers are not comparable.
POSTER_REFERENCE = {
    "deepfm": {"mrr": 0.255, "hit_at_1": 0.039},
    "sac": {"mrr": 0.308, "hit_at_1": 0.042},
}

_CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;max-width:72em;margin:2em auto;padding:0 1em;
color:#222;line-height:1.45}
h1{margin-bottom:.2em}h2{margin-top:2em;border-bottom:1px solid #ddd;padding-bottom:.2em}
table{border-collapse:collapse;margin:.8em 0;font-size:.92em}
td,th{border:1px solid #d0d0d0;padding:.3em .6em;text-align:right;white-space:nowrap}
th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}
tr.reference td{color:#555}tr.champion td{background:#fff4f4}tr.poster td{background:#f6f8ff;font-style:italic}
.ci{color:#777;font-size:.85em}.pos{color:#1a7f37}.neg{color:#b42318}
.note{color:#555;font-size:.9em}.box{border:1px solid #ccd;background:#f8f9ff;padding:.6em 1em;margin:1em 0}
.decision{border-left:4px solid #1f77b4;padding:.4em 1em;background:#f4f8fc}
img{max-width:100%;margin:.5em 0}figcaption{color:#555;font-size:.9em;margin-bottom:1.2em}
"""


def _e(text: Any) -> str:
    return html.escape(str(text))


def _figure(png: bytes, caption: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return f"<figure><img alt='{_e(caption)}' src='data:image/png;base64,{data}'><figcaption>{caption}</figcaption></figure>"


def _num(value: float | None, digits: int = 3, scale: float = 1.0, suffix: str = "") -> str:
    return "–" if value is None else f"{scale * value:.{digits}f}{suffix}"


def _with_ci(value: float | None, ci: list[float] | tuple[float, float] | None, digits: int = 3, scale: float = 1.0,
             suffix: str = "") -> str:
    if value is None:
        return "–"
    interval = "" if ci is None else (f" <span class='ci'>[{scale * ci[0]:.{digits}f}, "
                                      f"{scale * ci[1]:.{digits}f}]</span>")
    return f"{scale * value:.{digits}f}{suffix}{interval}"


def _lift(entry: dict[str, float] | None) -> str:
    if entry is None:
        return "–"
    cls = "pos" if entry["ci_low"] > 0 else "neg" if entry["ci_high"] < 0 else ""
    return (f"<span class='{cls}'>{100 * entry['value']:+.1f} %</span> "
            f"<span class='ci'>[{100 * entry['ci_low']:+.1f}, {100 * entry['ci_high']:+.1f}]</span>")


def _row_class(name: str) -> str:
    if name == "champion":
        return "champion"
    return "reference" if name in plots.REFERENCE_POLICIES else ""


def _label(name: str, details: dict[str, Any]) -> str:
    versions = details.get("versions", {})
    if name == "champion" and details.get("champion"):
        champion = details["champion"]
        return f"champion (v{_e(champion['version'])}, {_e(champion.get('policy') or '?')})"
    version = versions.get(name)
    suffix = f" <span class='ci'>v{_e(version)}</span>" if version else ""
    kind = " <span class='ci'>reference</span>" if name in plots.REFERENCE_POLICIES else ""
    return f"{_e(name)}{suffix}{kind}"


def poster_table(evaluation: dict[str, Any], details: dict[str, Any]) -> str:
    """Each policy's MRR and Hit@1 with CIs and its lift over the baseline, next to the poster's numbers."""
    baseline = details.get("baseline", "deepfm")
    primary = details["primary"]
    lifts = details.get("lifts", {})
    rows = []
    for name, row in evaluation["policies"].items():
        ope = row.get("ope", {}).get(primary)
        lift = lifts.get(name, {})
        lift_cell = "<span class='ci'>baseline</span>" if name == baseline else None
        rows.append(
            f"<tr class='{_row_class(name)}'><td>{_label(name, details)}</td>"
            f"<td>{_with_ci(row.get('mrr'), row.get('mrr_ci'))}</td><td>{lift_cell or _lift(lift.get('mrr'))}</td>"
            f"<td>{_with_ci(row.get('hit_at_1'), row.get('hit_at_1_ci'), 1, 100, ' %')}</td>"
            f"<td>{lift_cell or _lift(lift.get('hit_at_1'))}</td>"
            f"<td>{_with_ci(row.get('ndcg_at_3'), row.get('ndcg_at_3_ci'))}</td>"
            f"<td>{_with_ci(None if ope is None else ope['value'], None if ope is None else (ope['ci_low'], ope['ci_high']), 3, 100)}</td>"
            f"<td>{_num(None if ope is None else ope['ess'], 0)}</td></tr>")
    poster = []
    for name, ref in POSTER_REFERENCE.items():
        base = POSTER_REFERENCE["deepfm"]
        mrr_lift = ref["mrr"] / base["mrr"] - 1
        hit_lift = ref["hit_at_1"] / base["hit_at_1"] - 1
        poster.append(f"<tr class='poster'><td>origin poster: {name}</td><td>{ref['mrr']:.3f}</td>"
                      f"<td>{100 * mrr_lift:+.1f} %</td><td>{100 * ref['hit_at_1']:.1f} %</td>"
                      f"<td>{100 * hit_lift:+.1f} %</td><td>–</td><td>–</td><td>–</td></tr>")
    return (
        "<table><tr><th>policy</th><th>MRR</th><th>lift vs " + _e(baseline) + "</th><th>Hit@1</th><th>lift vs "
        + _e(baseline) + "</th><th>NDCG@3</th><th>" + _e(primary) + " (clicks / 100 slots)</th><th>ESS</th></tr>"
        + "".join(rows) + "".join(poster) + "</table>"
        "<p class='note'>Brackets: " + _e(details.get("confidence_label", "95 %")) + " bootstrap intervals (ranking: "
        "over clicked impressions; lifts: paired, both policies on the same resampled impressions; "
        + _e(primary) + ": over impressions). The italic rows are the <b>origin poster's numbers on its own, "
        "different data</b> — the result this project aims to beat, not a like-for-like comparison; relative lifts "
        "over DeepFM travel between datasets better than absolute values. The <code>bts_replica</code> row ranks by "
        "the Bernoulli-TS parameters shipped with the logs, learnt by the platform from its own click history "
        "(possibly overlapping these days): a strong baseline, but not a held-out one.</p>")


def estimator_table(evaluation: dict[str, Any], details: dict[str, Any]) -> str:
    estimators = details["estimators"]
    header = "".join(f"<th>{_e(e)}</th>" for e in estimators)
    rows = []
    for name, row in evaluation["policies"].items():
        cells = []
        for estimator in estimators:
            entry = row.get("ope", {}).get(estimator)
            cells.append("<td>undefined</td>" if entry is None else
                         f"<td>{_with_ci(entry['value'], (entry['ci_low'], entry['ci_high']), 3, 100)}"
                         f"<br><span class='ci'>ESS {entry['ess']:.0f}</span></td>")
        rows.append(f"<tr class='{_row_class(name)}'><td>{_label(name, details)}</td>{''.join(cells)}</tr>")
    return f"<table><tr><th>policy</th>{header}</tr>{''.join(rows)}</table>"


def logging_table(evaluation: dict[str, Any]) -> str:
    rows = "".join(f"<tr><td>{_e(name)}</td><td>{_with_ci(r['value'], (r['ci_low'], r['ci_high']), 3, 100)}</td>"
                   f"<td>{r['n']}</td></tr>" for name, r in evaluation.get("logging", {}).items())
    return ("<table><tr><th>logging policy</th><th>on-policy value (clicks / 100 slots)</th><th>rows</th></tr>"
            + rows + "</table>")


def backtest_section(backtest: dict[str, Any] | None, primary: str) -> str:
    if not backtest:
        return "<p class='note'>No backtest results (run <code>liveslate backtest</code>).</p>"
    folds = "".join(f"<tr><td>{_e(f['test_day'])}</td><td>{f['train_rows']:,}</td><td>{f['test_rows']:,}</td>"
                    f"<td>{f['test_clicks']}</td></tr>" for f in backtest.get("folds", []))
    rows = []
    for name, row in backtest.get("policies", {}).items():
        ope = row.get("ope", {}).get(primary)
        rows.append(f"<tr class='{_row_class(name)}'><td>{_e(name)}</td>"
                    f"<td>{_with_ci(row.get('mrr'), row.get('mrr_ci'))}</td>"
                    f"<td>{_with_ci(row.get('hit_at_1'), row.get('hit_at_1_ci'), 1, 100, ' %')}</td>"
                    f"<td>{_with_ci(row.get('ndcg_at_3'), row.get('ndcg_at_3_ci'))}</td>"
                    f"<td>{_with_ci(None if ope is None else ope['value'], None if ope is None else (ope['ci_low'], ope['ci_high']), 3, 100)}</td>"
                    f"<td>{_num(None if ope is None else ope['ess'], 0)}</td></tr>")
    counts = backtest.get("counts", {})
    return (
        f"<p>Rolling origin by UTC day: each fold trains on every day before its test day and is evaluated on that "
        f"day; the test rows of all folds are pooled, so each of the {counts.get('clicks', '?')} clicks after the first "
        f"training days is used once ({counts.get('ranking_queries', '?')} ranking queries, "
        f"{counts.get('rows', 0):,} rows). Policies retrain on a small budget (params <code>backtest</code>).</p>"
        "<table><tr><th>test day</th><th>train rows</th><th>test rows</th><th>test clicks</th></tr>" + folds + "</table>"
        "<table><tr><th>policy</th><th>MRR</th><th>Hit@1</th><th>NDCG@3</th><th>" + _e(primary)
        + " (clicks / 100 slots)</th><th>ESS</th></tr>" + "".join(rows) + "</table>"
        + "".join(f"<p class='note'>{_e(note)}</p>" for note in backtest.get("notes", [])))


def _period(details: dict[str, Any]) -> str:
    period = details.get("period")
    return "" if not period else f" ({_e(period[0][:16])} to {_e(period[1][:16])} UTC)"


def _ope_rows(counts: dict[str, Any], details: dict[str, Any]) -> str:
    chosen = details.get("ope_logging_policies") or []
    rows = f"{counts.get('ope_rows', counts['rows']):,} rows ({counts.get('ope_clicks', counts['clicks'])} clicks)"
    if not chosen:
        return f"every row: {rows}"
    return f"the rows logged by {_e(', '.join(chosen))} only: {rows} (params <code>evaluate.ope_logging_policies</code>)"


def figures(evaluation: dict[str, Any], details: dict[str, Any],
            backtest: dict[str, Any] | None = None) -> dict[str, bytes]:
    """Every figure of the report as PNG bytes, keyed by file name (also written to plots/ for DVC)."""
    primary, estimators = details["primary"], details["estimators"]
    policies = evaluation["policies"]
    sources = {"test split": policies}
    if backtest and backtest.get("policies"):
        sources["backtest (pooled days)"] = backtest["policies"]
    out = {
        "ranking.png": plots.ranking_figure(sources),
        "policy_values.png": plots.policy_values_figure(policies, evaluation.get("logging", {}), estimators, primary),
        "per_position.png": plots.per_position_figure(details.get("per_position_primary", {}), primary,
                                                      details.get("logging_by_position")),
        "estimator_agreement.png": plots.estimator_agreement_figure(policies, estimators, primary),
    }
    kg = details.get("kg_effect")
    if kg and kg.get("with") in policies and kg.get("without") in policies:
        out["kg_effect.png"] = plots.kg_effect_figure(policies[kg["with"]], policies[kg["without"]],
                                                      kg["differences"], primary, (kg["with"], kg["without"]))
    return out


def render(evaluation: dict[str, Any], details: dict[str, Any], backtest: dict[str, Any] | None = None,
           selection: dict[str, Any] | None = None, rendered: dict[str, bytes] | None = None) -> str:
    """The whole HTML page; ``rendered`` = :func:`figures` output when already computed."""
    rendered = rendered if rendered is not None else figures(evaluation, details, backtest)
    primary = details["primary"]
    counts = evaluation["counts"]
    sections = [
        "<h1>liveslate — policy evaluation</h1>",
        f"<p>Test split{_period(details)}: <b>{counts['rows']:,}</b> logged rows, {counts['impressions']:,} impressions, "
        f"<b>{counts['clicks']}</b> clicks ({counts['ranking_queries']} ranking queries; "
        f"{counts['excluded_impressions_without_click']:,} impressions without a click are excluded from the ranking "
        f"metrics). Off-policy estimates use {_ope_rows(counts, details)}. Learned policies act with exploration "
        f"<code>{_e(details['exploration'])}</code>; the selection estimator is <b>{_e(primary)}</b>. With so few "
        "clicks every number carries its interval: read the brackets before the points.</p>",
    ]
    if selection:
        sections.append(f"<div class='decision'><b>Selection preview</b> (the <code>select</code> rule applied to this "
                        f"evaluation and the registry as it stood): {_e(selection['reason'])}</div>")
    if details.get("skipped"):
        sections.append("<p class='note'>Not evaluated: " + "; ".join(
            f"{_e(k)} — {_e(v)}" for k, v in details["skipped"].items()) + "</p>")
    sections += ["<h2>Ranking metrics and lift over DeepFM</h2>", poster_table(evaluation, details)]
    with_backtest = bool(backtest and backtest.get("policies"))
    sections.append(_figure(rendered["ranking.png"],
                            "MRR and Hit@1 with their intervals; blue: learned, grey: reference, red: the champion "
                            "re-evaluated." + (" Circles: test split; squares: rolling-origin backtest."
                                               if with_backtest else "")))
    sections += [
        "<h2>Policy value by estimator</h2>",
        _figure(rendered["policy_values.png"],
                "Expected clicks per 100 shown slots, each off-policy estimator with its bootstrap interval; dashed "
                "and dotted lines: the logging policies' on-policy values in the test split (the bar a challenger must "
                "clear)."),
        logging_table(evaluation),
        "<details><summary>All estimates with intervals and effective sample sizes</summary>"
        + estimator_table(evaluation, details) + "</details>",
        "<h2>Per-position breakdown</h2>",
        _figure(rendered["per_position.png"],
                f"{_e(primary)} restricted to the rows logged at each slate position; a position effect shows as a "
                "common slope."),
        "<h2>Estimator agreement</h2>",
        _figure(rendered["estimator_agreement.png"],
                "Where the estimators disagree, the importance weights or the reward model are doing the talking: "
                "IPS-type estimators swing with rare large weights, DM inherits the reward model's bias, DR and its "
                "variants sit between."),
    ]
    kg = details.get("kg_effect")
    if "kg_effect.png" in rendered:
        sections += ["<h2>Effect of the KG item vectors</h2>",
                     _figure(rendered["kg_effect.png"],
                             f"{_e(kg['with'])} and {_e(kg['without'])} differ only in the KG item vector field. "
                             "Δ = paired difference (with − without) and its interval; an interval across 0 means the "
                             "test split cannot tell them apart.")]
    sections += ["<h2>Rolling-origin backtest</h2>", backtest_section(backtest, primary)]
    failures = details.get("failures") or {}
    if failures:
        sections.append("<h2>Undefined estimates</h2><ul>" + "".join(
            f"<li>{_e(p)} / {_e(est)}: {_e(why)}</li>" for p, fails in failures.items() for est, why in fails.items())
            + "</ul>")
    sections.append(
        "<h2>How these numbers are made</h2><p class='note'>Ranking: every candidate of the clicked impression's room "
        "is ranked by the policy's score; ties count as the expectation over a random order. Off-policy value: the "
        "policy's per-position action distribution against the logged propensities, reward model cross-fitted "
        f"(K={_e(details.get('reward_model_folds', '?'))}); intervals are seeded percentile bootstraps over impressions "
        f"({_e(details.get('bootstrap_resamples', '?'))} resamples). The champion row is the registry version that held "
        "the alias before this run, downloaded from its registry source and re-evaluated on today's test split.</p>")
    return ("<!doctype html><html lang='en'><head><meta charset='utf-8'><title>liveslate evaluation</title>"
            f"<style>{_CSS}</style></head><body>" + "\n".join(sections) + "</body></html>\n")
