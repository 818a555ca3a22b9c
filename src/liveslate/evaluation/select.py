"""The champion rule of DESIGN.md as a pure function: evaluation + registry state → decision.

Rule, on the primary estimator (``ope.primary``, DR by default):

1. Every candidate (a trained policy of ``select.candidates``) must pass the guards: it
   was evaluated and is registered (and not rolled back), its estimate exists and is
   finite, lies inside the reward range, and has an effective sample size of at least
   ``select.min_ess``. A refused candidate keeps its reason.
2. The best candidate is the one with the highest lower confidence bound (ties: higher
   value, then name).
3. No version holds the alias → the best becomes the first champion (reason "initial").
4. The best *is* the champion's version → nothing moves.
5. Otherwise it is promoted only if its lower bound exceeds both the best logging
   policy's on-policy value and the champion's estimate by ``select.margin``.
   A champion that was not evaluated cannot be compared, so it stays.

Nothing here touches the registry; the ``select`` stage applies the decision.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from liveslate.config import SelectConfig

INITIAL = "initial"


@dataclass(frozen=True)
class Candidate:
    """A trained policy that may hold the alias: the registry version of its evaluated artefacts."""

    policy: str
    version: str | None
    rolled_back: bool = False


@dataclass(frozen=True)
class Incumbent:
    """The version holding the alias when selection starts."""

    policy: str | None
    version: str


@dataclass(frozen=True)
class Verdict:
    """One candidate under the guards: its primary estimate and whether it may be promoted."""

    policy: str
    version: str | None
    value: float | None
    lower_bound: float | None
    ess: float | None
    eligible: bool
    reason: str


@dataclass(frozen=True)
class Decision:
    """What selection decided: who holds the alias after this run and why.

    champion / registered_version: policy and version holding the alias afterwards (None
    when no candidate ever qualified); previous: the version that held it before this run;
    promoted: the alias moved in this run.
    """

    champion: str | None
    registered_version: str | None
    previous: str | None
    promoted: bool
    reason: str
    primary: str
    verdicts: tuple[Verdict, ...]

    def to_json(self) -> dict[str, Any]:
        """metrics/selection.json: the DESIGN.md keys first, then each candidate's verdict."""
        return {
            "champion": self.champion,
            "registered_version": self.registered_version,
            "previous": self.previous,
            "promoted": self.promoted,
            "reason": self.reason,
            "primary": self.primary,
            "candidates": {v.policy: {k: val for k, val in asdict(v).items() if k != "policy"} for v in self.verdicts},
        }


def _finite(*values: Any) -> bool:
    return all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in values)


def _fmt(value: float) -> str:
    return f"{value:.5f}"


def judge(policy: str, row: dict[str, Any] | None, candidate: Candidate | None, primary: str, config: SelectConfig,
          reward_range: tuple[float, float]) -> Verdict:
    """Apply the guards to one candidate's evaluation row (``evaluation["policies"][policy]``)."""
    version = candidate.version if candidate is not None else None

    def refuse(reason: str, estimate: dict[str, Any] | None = None) -> Verdict:
        # Non-finite numbers are named in the reason and dropped here: selection.json holds no NaN.
        numbers = [(estimate or {}).get(key) for key in ("value", "ci_low", "ess")]
        value, low, ess = (float(v) if _finite(v) else None for v in numbers)
        return Verdict(policy, version, value, low, ess, False, reason)

    if row is None:
        return refuse(f"not evaluated (no artifacts/models/{policy}/ in this run)")
    if candidate is None or version is None:
        return refuse("not a registered model version (train registers every trained policy)")
    if candidate.rolled_back:
        return refuse(f"v{version} was rolled back; a retrain registers a new version")
    estimate = (row.get("ope") or {}).get(primary)
    if estimate is None:
        return refuse(f"no {primary} estimate (undefined on these logs)")
    value, low, high, ess = (estimate.get(k) for k in ("value", "ci_low", "ci_high", "ess"))
    if not _finite(value, low, high, ess):
        return refuse(f"non-finite {primary} estimate (value {value}, interval [{low}, {high}], ESS {ess})", estimate)
    lowest, highest = reward_range
    if not lowest <= value <= highest:
        return refuse(f"{primary} estimate {_fmt(value)} outside the reward range [{lowest}, {highest}]", estimate)
    if ess < config.min_ess:
        return refuse(f"effective sample size {ess:.1f} below select.min_ess {config.min_ess:g}", estimate)
    return Verdict(policy, version, float(value), float(low), float(ess), True, "passes the guards")


def _incumbent_value(evaluation: dict[str, Any], incumbent: Incumbent, evaluated_champion: str | None,
                     verdicts: list[Verdict], primary: str,
                     reward_range: tuple[float, float]) -> tuple[float | None, str]:
    """The champion's primary estimate in this evaluation, or (None, why it has none usable)."""
    policies = evaluation.get("policies", {})
    row = None
    if evaluated_champion == incumbent.version and "champion" in policies:
        row = policies["champion"]
    else:
        same = [v.policy for v in verdicts if v.version == incumbent.version]
        if same:
            row = policies.get(same[0])
    if row is None:
        return None, (f"the champion v{incumbent.version} was not evaluated in this run, so no challenger can be "
                      "compared with it; rerun evaluate")
    estimate = (row.get("ope") or {}).get(primary) or {}
    value = estimate.get("value")
    if not _finite(value) or not reward_range[0] <= value <= reward_range[1]:
        return math.nan, f"the champion's {primary} estimate is unusable ({value}); only the logging bar applies"
    return float(value), ""


def decide(evaluation: dict[str, Any], candidates: list[Candidate], incumbent: Incumbent | None,
           evaluated_champion: str | None, primary: str, config: SelectConfig,
           reward_range: tuple[float, float]) -> Decision:
    """The selection decision (see the module docstring).

    evaluation: metrics/evaluation.json; candidates: the registry versions of the
    evaluated trained policies; incumbent: the alias holder now (None = no champion);
    evaluated_champion: the version evaluated as the ``champion`` row (None = none).
    """
    by_policy = {c.policy: c for c in candidates}
    policies = evaluation.get("policies", {})
    verdicts = [judge(name, policies.get(name), by_policy.get(name), primary, config, reward_range)
                for name in config.candidates]
    previous = incumbent.version if incumbent is not None else None

    def stay(reason: str) -> Decision:
        return Decision(champion=incumbent.policy if incumbent else None, registered_version=previous,
                        previous=previous, promoted=False, reason=reason, primary=primary, verdicts=tuple(verdicts))

    eligible = [v for v in verdicts if v.eligible]
    if not eligible:
        refused = "; ".join(f"{v.policy}: {v.reason}" for v in verdicts)
        keeps = f"the champion v{previous} stays" if incumbent else "no champion is named"
        return stay(f"no candidate passed the guards, {keeps} ({refused})")
    best = sorted(eligible, key=lambda v: (-v.lower_bound, -v.value, v.policy))[0]
    bound = f"lower confidence bound of {primary} {_fmt(best.lower_bound)}"
    if incumbent is None:
        return Decision(champion=best.policy, registered_version=best.version, previous=None, promoted=True,
                        reason=f"{INITIAL}: no version held the alias; {best.policy} v{best.version} has the highest "
                               f"{bound} among the candidates that pass the guards",
                        primary=primary, verdicts=tuple(verdicts))
    if best.version == incumbent.version:
        return stay(f"the champion {best.policy} v{best.version} is still the best candidate ({bound}); nothing moves")
    champion_value, note = _incumbent_value(evaluation, incumbent, evaluated_champion, verdicts, primary, reward_range)
    if champion_value is None:
        return stay(note)
    logging = {name: row["value"] for name, row in (evaluation.get("logging") or {}).items() if _finite(row.get("value"))}
    bars = dict(logging)
    if math.isfinite(champion_value):
        bars[f"champion v{incumbent.version}"] = champion_value
    if not bars:
        return stay("no logging-policy value and no usable champion estimate to compare with; the champion stays")
    bar_name, bar_value = max(bars.items(), key=lambda item: item[1])
    required = bar_value + config.margin
    challenger = f"{best.policy} v{best.version}"
    detail = f"{bar_name} {_fmt(bar_value)} + margin {config.margin:g} = {_fmt(required)}"
    if best.lower_bound > required:
        return Decision(champion=best.policy, registered_version=best.version, previous=previous, promoted=True,
                        reason=f"promoted: {challenger} has {bound}, above the highest bar ({detail})"
                               + (f"; {note}" if note else ""),
                        primary=primary, verdicts=tuple(verdicts))
    return stay(f"not promoted: the best challenger {challenger} has {bound}, not above {detail}; "
                f"the champion v{previous} stays" + (f" ({note})" if note else ""))

