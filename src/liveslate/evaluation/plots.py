"""Figures of the evaluation report, as PNG bytes (matplotlib, Agg backend).

Policy values are expected clicks per shown slot; the figures print them in percent
(clicks per 100 slots), which is how a click-through rate is read. Every figure takes
plain dictionaries (the JSON payloads), so the report can be rebuilt from the files.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np

PERCENT = 100.0
# Colour per kind of row: learned policies, reference policies, the re-evaluated champion.
LEARNED, REFERENCE, CHAMPION = "#1f77b4", "#7f7f7f", "#d62728"
REFERENCE_POLICIES = ("uniform", "bts_replica", "popularity")


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png(figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    _pyplot().close(figure)
    return buffer.getvalue()


def colour(name: str) -> str:
    if name == "champion" or name.startswith("champion"):
        return CHAMPION
    return REFERENCE if name in REFERENCE_POLICIES else LEARNED


def _errorbar_rows(axis, names: list[str], values: list[float], lows: list[float], highs: list[float]) -> None:
    """Horizontal point + CI bar per name, top to bottom in the given order."""
    y = np.arange(len(names))[::-1]
    for row, name, value, low, high in zip(y, names, values, lows, highs):
        axis.errorbar([value], [row], xerr=[[value - low], [high - value]], fmt="o", color=colour(name),
                      capsize=3, markersize=4)
    axis.set_yticks(y)
    axis.set_yticklabels(names)


def policy_values_figure(policies: dict[str, Any], logging: dict[str, Any], estimators: list[str],
                         primary: str) -> bytes:
    """One panel per estimator: each policy's estimate (%) with its CI; dashed lines = logging policies."""
    plt = _pyplot()
    names = [n for n in policies if policies[n].get("ope")]
    columns = min(4, len(estimators))
    rows = int(np.ceil(len(estimators) / columns))
    figure, axes = plt.subplots(rows, columns, figsize=(3.3 * columns, 0.32 * len(names) * rows + 1.6 * rows),
                                sharey=True, squeeze=False)
    for axis, estimator in zip(axes.ravel(), estimators):
        shown = [n for n in names if estimator in policies[n]["ope"]]
        entries = [policies[n]["ope"][estimator] for n in shown]
        _errorbar_rows(axis, shown, [PERCENT * e["value"] for e in entries], [PERCENT * e["ci_low"] for e in entries],
                       [PERCENT * e["ci_high"] for e in entries])
        for index, (name, row) in enumerate(sorted(logging.items())):
            axis.axvline(PERCENT * row["value"], color="black", linestyle=("--", ":", "-.")[index % 3], linewidth=0.8,
                         label=f"{name} (on-policy)")
        axis.set_title(estimator + ("  (primary)" if estimator == primary else ""), fontsize=10,
                       fontweight="bold" if estimator == primary else "normal")
        axis.set_xlabel("clicks per 100 slots")
        axis.grid(axis="x", alpha=0.3)
    for axis in axes.ravel()[len(estimators):]:
        axis.set_visible(False)
    handles, labels = axes.ravel()[0].get_legend_handles_labels()
    if handles:
        figure.legend(handles, labels, loc="lower center", ncol=len(handles), frameon=False,
                      bbox_to_anchor=(0.5, -0.02))
    figure.tight_layout(rect=(0, 0.04, 1, 1))
    return _png(figure)


def per_position_figure(per_position: dict[str, dict[str, Any]], primary: str,
                        logging_by_position: dict[str, dict[str, Any]] | None = None) -> bytes:
    """Primary estimate per logged position, one offset series per policy, with CIs."""
    plt = _pyplot()
    names = list(per_position)
    positions = sorted({int(p) for n in names for p in per_position[n]})
    figure, axis = plt.subplots(figsize=(max(6.0, 1.2 * len(names)), 3.8))
    width = 0.8 / max(len(names), 1)
    cmap = plt.get_cmap("tab10")
    for i, name in enumerate(names):
        xs, values, lows, highs = [], [], [], []
        for position in positions:
            entry = per_position[name].get(str(position))
            if entry is None:
                continue
            xs.append(position - 0.4 + width * (i + 0.5))
            values.append(PERCENT * entry["value"])
            lows.append(PERCENT * (entry["value"] - entry["ci_low"]))
            highs.append(PERCENT * (entry["ci_high"] - entry["value"]))
        axis.errorbar(xs, values, yerr=[lows, highs], fmt="o", capsize=3, markersize=4, label=name,
                      color=CHAMPION if name == "champion" else cmap(i % 10))
    if logging_by_position:
        for name, by_position in sorted(logging_by_position.items()):
            for position in positions:
                entry = by_position.get(str(position))
                if entry is not None:
                    axis.hlines(PERCENT * entry["value"], position - 0.45, position + 0.45, colors="black",
                                linestyles="--" if name.startswith("random") else ":", linewidth=0.8)
    axis.set_xticks(positions)
    axis.set_xticklabels([f"position {p}" for p in positions])
    axis.set_ylabel(f"{primary}: clicks per 100 slots")
    axis.set_title(f"{primary} estimate by logged position (black lines: logging policies on-policy)", fontsize=10)
    axis.grid(axis="y", alpha=0.3)
    axis.legend(fontsize=8, ncol=min(7, len(names)), loc="upper center", bbox_to_anchor=(0.5, -0.1), frameon=False)
    figure.tight_layout()
    return _png(figure)


def estimator_agreement_figure(policies: dict[str, Any], estimators: list[str], primary: str) -> bytes:
    """Heatmap policies × estimators: colour = estimate / primary estimate, text = estimate in %."""
    plt = _pyplot()
    names = [n for n in policies if primary in policies[n].get("ope", {})]
    ratio = np.full((len(names), len(estimators)), np.nan)
    text = [["" for _ in estimators] for _ in names]
    for i, name in enumerate(names):
        ope = policies[name]["ope"]
        base = ope[primary]["value"]
        for j, estimator in enumerate(estimators):
            if estimator in ope:
                value = ope[estimator]["value"]
                ratio[i, j] = value / base if base > 0 else np.nan
                text[i][j] = f"{PERCENT * value:.3f}"
    figure, axis = plt.subplots(figsize=(1.0 * len(estimators) + 2.5, 0.42 * len(names) + 1.4))
    image = axis.imshow(np.log2(np.clip(ratio, 1 / 4, 4)), cmap="RdBu_r", vmin=-1, vmax=1, aspect="auto")
    shade = np.abs(np.log2(np.clip(np.nan_to_num(ratio, nan=1.0), 1 / 4, 4)))
    for i in range(len(names)):
        for j in range(len(estimators)):
            # White text on the dark ends of the colour scale, black elsewhere.
            axis.text(j, i, text[i][j], ha="center", va="center", fontsize=8,
                      color="white" if shade[i, j] > 0.6 else "black")
    axis.set_xticks(range(len(estimators)))
    axis.set_xticklabels(estimators, rotation=30, ha="right")
    axis.set_yticks(range(len(names)))
    axis.set_yticklabels(names)
    bar = figure.colorbar(image, ax=axis, ticks=[-1, 0, 1])
    bar.ax.set_yticklabels([f"½× {primary}", f"= {primary}", f"2× {primary}"])
    axis.set_title(f"Estimator agreement (clicks per 100 slots; colour: ratio to {primary})", fontsize=10)
    figure.tight_layout()
    return _png(figure)


def kg_effect_figure(with_kg: dict[str, Any], without_kg: dict[str, Any], differences: dict[str, Any],
                     primary: str, names: tuple[str, str] = ("deepfm", "deepfm_nokg")) -> bytes:
    """DeepFM with vs without KG vectors: each metric with CIs, and the paired difference in the title."""
    plt = _pyplot()
    panels = [("mrr", "MRR", 1.0), ("hit_at_1", "Hit@1 (%)", PERCENT), ("ndcg_at_3", "NDCG@3", 1.0),
              (primary, f"{primary} (clicks per 100 slots)", PERCENT)]
    figure, axes = plt.subplots(1, len(panels), figsize=(3.1 * len(panels), 2.9))
    for axis, (key, label, scale) in zip(axes, panels):
        points = []
        for row in (with_kg, without_kg):
            if key == primary:
                entry = row.get("ope", {}).get(primary)
                points.append(None if entry is None else (entry["value"], entry["ci_low"], entry["ci_high"]))
            else:
                points.append(None if key not in row else (row[key], *row[f"{key}_ci"]))
        for x, (name, point) in enumerate(zip(names, points)):
            if point is not None:
                value, low, high = (scale * v for v in point)
                axis.errorbar([x], [value], yerr=[[value - low], [high - value]], fmt="o", capsize=4,
                              color=LEARNED if x == 0 else REFERENCE)
        axis.set_xticks([0, 1])
        axis.set_xticklabels(names)
        axis.set_xlim(-0.6, 1.6)
        diff = differences.get(key)
        subtitle = "" if diff is None else (f"\nΔ {scale * diff['value']:+.3g} "
                                            f"[{scale * diff['ci_low']:+.3g}, {scale * diff['ci_high']:+.3g}]")
        axis.set_title(label + subtitle, fontsize=9)
        axis.grid(axis="y", alpha=0.3)
    figure.suptitle("Effect of the KG item vectors (paired differences, same test rows)", fontsize=10)
    figure.tight_layout()
    return _png(figure)


def ranking_figure(sources: dict[str, dict[str, Any]]) -> bytes:
    """MRR and Hit@1 with CIs per policy, one series per source (e.g. test split, backtest)."""
    plt = _pyplot()
    metrics = [("mrr", "MRR", 1.0), ("hit_at_1", "Hit@1 (%)", PERCENT)]
    names: list[str] = []
    for payload in sources.values():
        names += [n for n in payload if "mrr" in payload[n] and n not in names]
    figure, axes = plt.subplots(1, 2, figsize=(10, 0.36 * len(names) + 1.5), sharey=True)
    offsets = np.linspace(-0.15, 0.15, len(sources)) if len(sources) > 1 else [0.0]
    markers = ["o", "s", "^"]
    for axis, (key, label, scale) in zip(axes, metrics):
        y = np.arange(len(names))[::-1]
        for s, (source, payload) in enumerate(sources.items()):
            for row, name in zip(y, names):
                entry = payload.get(name)
                if entry is None or key not in entry:
                    continue
                value, (low, high) = scale * entry[key], (scale * v for v in entry[f"{key}_ci"])
                axis.errorbar([value], [row + offsets[s]], xerr=[[value - low], [high - value]], fmt=markers[s % 3],
                              color=colour(name), capsize=2, markersize=4,
                              label=source if row == y[0] or name == names[0] else None)
        axis.set_yticks(y)
        axis.set_yticklabels(names)
        axis.set_xlabel(label)
        axis.grid(axis="x", alpha=0.3)
    if len(sources) > 1:
        handles = [plt.Line2D([], [], marker=markers[s % 3], linestyle="", color="black", label=source)
                   for s, source in enumerate(sources)]
        axes[1].legend(handles=handles, fontsize=8, loc="lower right")
    figure.suptitle("Ranking of the clicked item among its room's candidates", fontsize=10)
    figure.tight_layout()
    return _png(figure)
