"""Off-policy estimators of a policy's value on item-position logs.

The value of a policy is the expected reward per shown slot (per logged row): for
logged row i with context x_i, position p_i, logged item a_i, reward r_i and logging
propensity π_b(a_i | x_i, p_i), the importance weight is w_i = π_e(a_i | x_i, p_i) /
π_b(a_i | x_i, p_i), and a reward model q̂(x, a, p) predicts the reward of any
candidate at the logged position.

Every estimator here has the form (means over the n logged rows)

    V̂ = mean(direct) + mean(weighted) / mean(normaliser)

— ``direct`` the model-based part (0 for pure importance sampling), ``weighted`` the
importance-weighted part, ``normaliser`` 1 except for the self-normalised estimators
(where it is the weight). That one form gives per-row contributions whose mean is the
estimate (direct + weighted / mean(normaliser)) and a bootstrap that re-normalises
inside every resample, as a self-normalised estimator must.

References: IPS (Horvitz & Thompson 1952); SNIPS (Swaminathan & Joachims 2015);
DM / DR (Dudík et al. 2011); SNDR (self-normalised DR); Switch-DR (Wang et al. 2017, in
the form that uses DR below the weight threshold and DM above it); DRos, DR with
optimistic shrinkage ŵ = λw / (w² + λ) (Su et al. 2020).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from liveslate.ope.bootstrap import BootstrapConfig, percentile_interval, resampled_means
from liveslate.ope.inputs import OPEInputs


@dataclass(frozen=True)
class Terms:
    """Per-row parts of an estimate, all [n]: see the module docstring.

    weights: the effective weights applied to the logged reward (or residual), from
    which the effective sample size is computed.
    """

    direct: np.ndarray
    weighted: np.ndarray
    normaliser: np.ndarray | None
    weights: np.ndarray


@dataclass(frozen=True)
class EstimateResult:
    """One estimator's answer on one set of inputs.

    value: the estimate (reward per shown slot); contributions: [n] per-row terms whose
    mean is ``value``; (ci_low, ci_high): percentile bootstrap interval at
    ``confidence``; ess: effective sample size (Σw)² / Σw² of the estimator's effective
    weights (n for DM, which weights every row equally); outside_reward_range: the
    value lies outside the reward range, so it must not be used as a policy value.

    The bootstrap resamples impressions with the reward model held fixed. For the DR
    family that is the usual practice (cross-fitting keeps the correction honest); DM's
    interval, however, then shows only the sampling noise of the contexts, not the
    model's own error, and is far too narrow — read DM's point estimate, not its interval
    (the cross-policy benchmark refits the model per resample and shows DM's real spread).
    """

    estimator: str
    value: float
    contributions: np.ndarray
    ci_low: float
    ci_high: float
    confidence: float
    ess: float
    n: int
    outside_reward_range: bool
    n_resamples: int

    def summary(self) -> dict[str, float | int | bool]:
        """The JSON-ready part (DESIGN.md: value, ci_low, ci_high, ess), plus n and the range flag."""
        return {"value": self.value, "ci_low": self.ci_low, "ci_high": self.ci_high, "ess": self.ess,
                "n": self.n, "outside_reward_range": self.outside_reward_range}


def effective_sample_size(weights: np.ndarray) -> float:
    """(Σw)² / Σw²: n for equal weights, 1 when one row carries all the weight, 0 if all are 0."""
    square_sum = float(np.dot(weights, weights))
    return 0.0 if square_sum == 0.0 else float(weights.sum()) ** 2 / square_sum


class Estimator(ABC):
    """Base of every estimator: subclasses define the per-row :class:`Terms`."""

    name: ClassVar[str]
    needs_reward_model: ClassVar[bool] = False

    @abstractmethod
    def terms(self, inputs: OPEInputs) -> Terms:
        """The per-row parts of the estimate on ``inputs``."""

    def estimate(self, inputs: OPEInputs, bootstrap: BootstrapConfig = BootstrapConfig()) -> EstimateResult:
        """Point estimate, contributions, seeded bootstrap CI, ESS and range flag."""
        return estimate_all([self], inputs, bootstrap)[self.name]


def _stack(terms: Terms) -> list[np.ndarray]:
    normaliser = np.ones_like(terms.weighted) if terms.normaliser is None else terms.normaliser
    return [terms.direct, terms.weighted, normaliser]


def estimate_all(estimators: list[Estimator], inputs: OPEInputs,
                 bootstrap: BootstrapConfig = BootstrapConfig()) -> dict[str, EstimateResult]:
    """Run several estimators on the same inputs and the same bootstrap resamples.

    Returns {estimator name: result}. Resampling once for all of them is both faster
    and fairer: their intervals come from identical resamples of the impressions.
    """
    names = [e.name for e in estimators]
    if len(set(names)) != len(names):
        raise ValueError(f"estimators: each may appear once, got {names}")
    all_terms = {e.name: e.terms(inputs) for e in estimators}
    # Estimators share many columns (zeros, ones, w·r, the DM term): resample each distinct one once.
    distinct: list[np.ndarray] = []
    slot = []
    for column in (c for t in all_terms.values() for c in _stack(t)):
        match = next((i for i, seen in enumerate(distinct) if np.array_equal(seen, column)), None)
        if match is None:
            distinct.append(column)
            match = len(distinct) - 1
        slot.append(match)
    columns = np.stack(distinct, axis=1)
    means = columns.mean(axis=0)[slot]
    samples = resampled_means(columns, inputs.impression_codes(), bootstrap.n_resamples, bootstrap.seed)[:, slot]
    low, high = inputs.reward_range
    results = {}
    for j, (name, terms) in enumerate(all_terms.items()):
        direct_mean, weighted_mean, normaliser_mean = means[3 * j: 3 * j + 3]
        if normaliser_mean <= 0.0:
            raise ValueError(f"{name}: undefined — every importance weight is 0 (the evaluation policy gives "
                             "probability 0 to every logged item)")
        value = float(direct_mean + weighted_mean / normaliser_mean)
        contributions = terms.direct + terms.weighted / normaliser_mean
        with np.errstate(divide="ignore", invalid="ignore"):
            resampled = samples[:, 3 * j] + samples[:, 3 * j + 1] / samples[:, 3 * j + 2]
        ci_low, ci_high = percentile_interval(resampled, bootstrap.confidence)
        if not math.isfinite(value):
            raise ValueError(f"{name}: the estimate is not finite ({value}); check the weights and predictions")
        results[name] = EstimateResult(
            estimator=name, value=value, contributions=contributions, ci_low=ci_low, ci_high=ci_high,
            confidence=bootstrap.confidence, ess=effective_sample_size(terms.weights), n=len(inputs),
            outside_reward_range=not (low <= value <= high), n_resamples=int(np.isfinite(resampled).sum()))
    return results


def _zeros(inputs: OPEInputs) -> np.ndarray:
    return np.zeros(len(inputs))


def _check_positive(value: float, name: str, allow_inf: bool = False) -> None:
    ok = value > 0.0 and (allow_inf or math.isfinite(value)) and not math.isnan(value)
    if not ok:
        expected = "a positive number (inf allowed)" if allow_inf else "a positive finite number"
        raise ValueError(f"{name}: expected {expected}, got {value!r}")


@dataclass(frozen=True)
class IPS(Estimator):
    """Inverse propensity scoring: mean(w · r). Unbiased given full support; high variance."""

    name: ClassVar[str] = "ips"

    def terms(self, inputs: OPEInputs) -> Terms:
        weight = inputs.importance_weight
        return Terms(direct=_zeros(inputs), weighted=weight * inputs.reward, normaliser=None, weights=weight)


@dataclass(frozen=True)
class ClippedIPS(Estimator):
    """IPS with weights clipped at ``max_weight``: mean(min(w, M) · r). Biased down, lower variance."""

    name: ClassVar[str] = "clipped_ips"
    max_weight: float = 100.0

    def __post_init__(self) -> None:
        _check_positive(self.max_weight, "clipped_ips.max_weight")

    def terms(self, inputs: OPEInputs) -> Terms:
        weight = np.minimum(inputs.importance_weight, self.max_weight)
        return Terms(direct=_zeros(inputs), weighted=weight * inputs.reward, normaliser=None, weights=weight)


@dataclass(frozen=True)
class SNIPS(Estimator):
    """Self-normalised IPS: Σ w r / Σ w. Invariant to scaling all weights; consistent, slightly biased."""

    name: ClassVar[str] = "snips"

    def terms(self, inputs: OPEInputs) -> Terms:
        weight = inputs.importance_weight
        return Terms(direct=_zeros(inputs), weighted=weight * inputs.reward, normaliser=weight, weights=weight)


@dataclass(frozen=True)
class DM(Estimator):
    """Direct method: mean over rows of Σ_j π_e(j | x, p) q̂(x, j, p). Low variance, biased by the model."""

    name: ClassVar[str] = "dm"
    needs_reward_model: ClassVar[bool] = True

    def terms(self, inputs: OPEInputs) -> Terms:
        _, model_value = inputs.require_reward_model(self.name)
        return Terms(direct=model_value, weighted=_zeros(inputs), normaliser=None, weights=np.ones(len(inputs)))


@dataclass(frozen=True)
class DR(Estimator):
    """Doubly robust: DM + w · (r − q̂(x, a, p)). Unbiased if either the weights or the model are right."""

    name: ClassVar[str] = "dr"
    needs_reward_model: ClassVar[bool] = True

    def terms(self, inputs: OPEInputs) -> Terms:
        logged_hat, model_value = inputs.require_reward_model(self.name)
        weight = inputs.importance_weight
        return Terms(direct=model_value, weighted=weight * (inputs.reward - logged_hat), normaliser=None,
                     weights=weight)


@dataclass(frozen=True)
class SNDR(Estimator):
    """Self-normalised DR: DM + Σ w (r − q̂) / Σ w."""

    name: ClassVar[str] = "sndr"
    needs_reward_model: ClassVar[bool] = True

    def terms(self, inputs: OPEInputs) -> Terms:
        logged_hat, model_value = inputs.require_reward_model(self.name)
        weight = inputs.importance_weight
        return Terms(direct=model_value, weighted=weight * (inputs.reward - logged_hat), normaliser=weight,
                     weights=weight)


@dataclass(frozen=True)
class SwitchDR(Estimator):
    """Switch-DR: the DR correction only on rows whose weight is ≤ ``threshold``, DM alone above it.

    threshold = inf is DR; a small threshold approaches DM.
    """

    name: ClassVar[str] = "switch_dr"
    needs_reward_model: ClassVar[bool] = True
    threshold: float = 100.0

    def __post_init__(self) -> None:
        _check_positive(self.threshold, "switch_dr.threshold", allow_inf=True)

    def terms(self, inputs: OPEInputs) -> Terms:
        logged_hat, model_value = inputs.require_reward_model(self.name)
        weight = inputs.importance_weight * (inputs.importance_weight <= self.threshold)
        return Terms(direct=model_value, weighted=weight * (inputs.reward - logged_hat), normaliser=None,
                     weights=weight)


@dataclass(frozen=True)
class DRos(Estimator):
    """DR with optimistic shrinkage: weights ŵ = λ w / (w² + λ) on the residual.

    ŵ ≈ w for w² ≪ λ and ≈ λ / w for large w, so huge weights cannot dominate;
    λ → ∞ is DR, λ → 0 is DM.
    """

    name: ClassVar[str] = "dros"
    needs_reward_model: ClassVar[bool] = True
    shrinkage: float = 100.0

    def __post_init__(self) -> None:
        _check_positive(self.shrinkage, "dros.shrinkage")

    def terms(self, inputs: OPEInputs) -> Terms:
        logged_hat, model_value = inputs.require_reward_model(self.name)
        weight = inputs.importance_weight
        shrunk = self.shrinkage * weight / (weight**2 + self.shrinkage)
        return Terms(direct=model_value, weighted=shrunk * (inputs.reward - logged_hat), normaliser=None,
                     weights=shrunk)


ESTIMATOR_NAMES = ("ips", "clipped_ips", "snips", "dm", "dr", "sndr", "switch_dr", "dros")


def build_estimators(names: tuple[str, ...], clip_max_weight: float = 100.0, switch_threshold: float = 100.0,
                     dros_shrinkage: float = 100.0) -> list[Estimator]:
    """Estimators by name with their hyper-parameters (unknown names are an error)."""
    factories = {
        "ips": IPS, "snips": SNIPS, "dm": DM, "dr": DR, "sndr": SNDR,
        "clipped_ips": lambda: ClippedIPS(max_weight=clip_max_weight),
        "switch_dr": lambda: SwitchDR(threshold=switch_threshold),
        "dros": lambda: DRos(shrinkage=dros_shrinkage),
    }
    unknown = [n for n in names if n not in factories]
    if unknown:
        raise ValueError(f"estimators: unknown name(s) {unknown}; expected some of {list(ESTIMATOR_NAMES)}")
    return [factories[n]() for n in names]
