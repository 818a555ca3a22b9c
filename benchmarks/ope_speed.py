"""Speed of the OPE estimators at scale: 1M logged rows × 80 candidates × 3 positions.

Run on demand (never in the test suite):

    python benchmarks/ope_speed.py                    # 1,000,000 rows
    python benchmarks/ope_speed.py --rows 200000      # a quicker look

It times, on synthetic item-position logs held in memory:
1. ``align`` — keyed join of logs, the evaluation policy's distribution at the logged
   position ([n, m], the documented primary layout) and reward-model predictions
   ([n, m]), with every validation (propensity range, distribution per row, keys);
2. the eight estimators' point estimates (vectorised numpy);
3. ``estimate_all`` — the same plus a seeded bootstrap CI shared by all of them;
4. the cross-fitted reward model (K = 2) on the same rows;
and, as the reference measured in the same run, a plain per-row Python loop computing
the same eight estimates on a sub-sample, scaled linearly to the full size (for the
intervals, that loop re-run once per resample). It prints each time and the speed-ups. (The later benchmark issue
compares with the Open Bandit Pipeline.)
"""

from __future__ import annotations

import argparse
import math
import resource
import time

import numpy as np
import pandas as pd

from liveslate.config import OpeRewardModelConfig
from liveslate.ope.bootstrap import BootstrapConfig
from liveslate.ope.estimators import build_estimators, estimate_all
from liveslate.ope.inputs import ActionDist, LoggedRows, RewardPredictions, align
from liveslate.ope.reward_model import cross_fit_reward_model

NAMES = ("ips", "clipped_ips", "snips", "dm", "dr", "sndr", "switch_dr", "dros")
CLIP, SWITCH, SHRINK = 50.0, 50.0, 1000.0


def synthetic(n: int, m: int, k: int, seed: int):
    """Uniform-random logging, a context-dependent softmax evaluation policy, Bernoulli clicks."""
    rng = np.random.default_rng(seed)
    n_contexts = 16
    context = rng.integers(0, n_contexts, size=n)
    position = rng.integers(0, k, size=n)
    item = rng.integers(0, m, size=n)
    logits = rng.normal(size=(n_contexts, k, m)) * 1.5
    table = np.exp(logits) / np.exp(logits).sum(axis=2, keepdims=True)
    ctr = 1.0 / (1.0 + np.exp(-(rng.normal(-4.0, 0.7, size=(n_contexts, m))[:, None, :] - 0.3 * np.arange(k)[None, :, None])))
    reward = (rng.random(n) < ctr[context, position, item]).astype(np.float64)
    ids = pd.Index(np.arange(n)).astype(str).to_numpy(dtype=object)
    return ids, context, position, item, reward, table, ctr


def naive_loop(rows: range, evaluation: np.ndarray, predictions: np.ndarray, item: np.ndarray, reward: np.ndarray,
               propensity: np.ndarray) -> dict[str, float]:
    """The reference: every estimate accumulated row by row in pure Python."""
    sums = dict.fromkeys(("ips", "clip", "w", "dm", "dr", "switch", "dros"), 0.0)
    for i in rows:
        pi = evaluation[i].tolist()
        q = predictions[i].tolist()
        a = int(item[i])
        w = pi[a] / propensity[i]
        r = float(reward[i])
        dm = 0.0
        for j in range(len(pi)):
            dm += pi[j] * q[j]
        residual = r - q[a]
        sums["ips"] += w * r
        sums["clip"] += min(w, CLIP) * r
        sums["w"] += w
        sums["dm"] += dm
        sums["dr"] += dm + w * residual
        sums["switch"] += dm + (w * residual if w <= SWITCH else 0.0)
        sums["dros"] += dm + SHRINK * w / (w * w + SHRINK) * residual
    n = len(rows)
    dr_residual = sums["dr"] - sums["dm"]
    return {"ips": sums["ips"] / n, "clipped_ips": sums["clip"] / n, "snips": sums["ips"] / sums["w"],
            "dm": sums["dm"] / n, "dr": sums["dr"] / n, "sndr": sums["dm"] / n + dr_residual / sums["w"],
            "switch_dr": sums["switch"] / n, "dros": sums["dros"] / n}


def timed(label: str, fn):
    start = time.perf_counter()
    out = fn()
    seconds = time.perf_counter() - start
    print(f"{label:<58s} {seconds:8.2f} s")
    return out, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--candidates", type=int, default=80)
    parser.add_argument("--positions", type=int, default=3)
    parser.add_argument("--resamples", type=int, default=200)
    parser.add_argument("--loop-rows", type=int, default=20_000, help="rows of the per-row Python reference")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    n, m, k = args.rows, args.candidates, args.positions
    print(f"OPE speed: {n:,} rows × {m} candidates × {k} positions; bootstrap {args.resamples} resamples")

    ids, context, position, item, reward, table, ctr = synthetic(n, m, k, args.seed)
    evaluation = table[context, position]                     # [n, m] at the logged position
    predictions = ctr[context, position] * 0.9 + 0.0005       # a deliberately imperfect model
    propensity = np.full(n, 1.0 / m)

    inputs, t_align = timed("align + validate (keys, propensities, distributions)", lambda: align(
        LoggedRows(impression_id=ids, position=position, candidate=item, reward=reward, propensity=propensity),
        ActionDist.at_position(ids, position, evaluation), RewardPredictions(ids, position, predictions, folds=2)))
    estimators = build_estimators(NAMES, clip_max_weight=CLIP, switch_threshold=SWITCH, dros_shrinkage=SHRINK)

    def points():
        out = {}
        for estimator in estimators:
            terms = estimator.terms(inputs)
            normaliser = 1.0 if terms.normaliser is None else terms.normaliser.mean()
            out[estimator.name] = float(terms.direct.mean() + terms.weighted.mean() / normaliser)
        return out

    vectorised, t_points = timed("8 estimators, point estimates", points)
    results, t_all = timed(f"8 estimators + shared bootstrap CI ({args.resamples} resamples)",
                           lambda: estimate_all(estimators, inputs, BootstrapConfig(args.resamples, 0.95, args.seed)))

    loop_rows = min(args.loop_rows, n)
    looped, t_loop_part = timed(f"reference: per-row Python loop on {loop_rows:,} rows", lambda: naive_loop(
        range(loop_rows), evaluation, predictions, item, reward, propensity))
    t_loop = t_loop_part * n / loop_rows
    print(f"{'reference scaled to ' + format(n, ',') + ' rows':<58s} {t_loop:8.2f} s")
    sub = {name: v for name, v in points_on(estimators, inputs, loop_rows).items()}
    agree = all(math.isclose(sub[name], looped[name], rel_tol=1e-9, abs_tol=1e-12) for name in NAMES)
    print(f"vectorised and loop estimates agree on the sub-sample: {agree}")

    frame = pd.DataFrame({"impression_id": ids, "position": position, "reward": reward,
                          "ctx_segment": pd.array(context.astype(str), dtype="string")})
    candidates = np.broadcast_to(np.arange(m), (n, m))
    _, t_model = timed("cross-fitted reward model (K = 2), fit + predict [n, m]", lambda: cross_fit_reward_model(
        frame, item, candidates, m, OpeRewardModelConfig(folds=2), args.seed))

    # A per-row loop gets an interval only by re-running itself on every resample.
    t_loop_ci = t_loop * (args.resamples + 1)
    print(f"speed-up over the per-row loop: point estimates ×{t_loop / t_points:,.0f}; "
          f"estimates + bootstrap CIs ×{t_loop_ci / t_all:,.0f} against the loop re-run per resample "
          f"({t_loop_ci:,.0f} s, extrapolated); bootstrap {1000 * (t_all - t_points) / args.resamples:.1f} ms "
          f"per resample")
    print(f"peak resident memory: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB")
    print("estimates: " + ", ".join(f"{name} {results[name].value:.5f}" for name in NAMES))


def points_on(estimators, inputs, rows: int) -> dict[str, float]:
    """Vectorised estimates restricted to the first ``rows`` rows (to check agreement with the loop)."""
    out = {}
    for estimator in estimators:
        terms = estimator.terms(inputs)
        normaliser = 1.0 if terms.normaliser is None else terms.normaliser[:rows].mean()
        out[estimator.name] = float(terms.direct[:rows].mean() + terms.weighted[:rows].mean() / normaliser)
    return out


if __name__ == "__main__":
    main()
