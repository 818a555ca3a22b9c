"""Which policies an evaluation compares, and where each one is loaded from.

- trained policies: ``artifacts/models/<name>/`` (written by ``train@<name>``), matched to
  the registry version that holds the same files (so selection promotes exactly what was
  evaluated);
- reference policies: built here — uniform random, the Bernoulli-TS replica of the OBD
  prior, popularity fitted on the training split;
- the champion: the version holding the alias, downloaded from its registry source.
"""

from __future__ import annotations

import hashlib
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from liveslate.evaluation.registry_ops import RegisteredVersion, Registry, RegistryError
from liveslate.ope.bootstrap import derive_seed
from liveslate.policies.base import Policy
from liveslate.policies.registry import CONFIG_FILE, ENCODERS_FILE, WEIGHTS_FILE, load_policy

POLICY_FILES = (CONFIG_FILE, WEIGHTS_FILE, ENCODERS_FILE)
# Registry versions compared with a local policy directory: train registers right after saving,
# so the match is the newest version; older ones are only read if that one was lost.
MATCH_DEPTH = 10


def reference_policy(name: str, index: pd.Index, train_logs: pd.DataFrame, prior_path: Path, params: Any,
                     label: str = "evaluate") -> Policy:
    """``uniform``, ``bts_replica`` (policies.bts_prior) or ``popularity`` (fitted on ``train_logs``)."""
    from liveslate.policies.reference import BTSReplicaPolicy, PopularityPolicy, UniformPolicy

    items = list(index)
    if name == "uniform":
        return UniformPolicy(items)
    if name == "bts_replica":
        return BTSReplicaPolicy.from_prior_file(prior_path, items, mc_samples=params.policies.bts_mc_samples,
                                                mc_seed=derive_seed(params.seed, label, "bts_replica"))
    if name == "popularity":
        return PopularityPolicy.from_logs(train_logs, items, params.policies.popularity_prior_impressions)
    raise ValueError(f"unknown reference policy {name!r} (expected uniform, bts_replica or popularity)")


def policy_fingerprint(directory: Path) -> str:
    """md5 over the three policy files: equal fingerprints = the same saved policy."""
    digest = hashlib.md5()
    for name in POLICY_FILES:
        path = Path(directory) / name
        if not path.exists():
            raise FileNotFoundError(f"{path}: not found (a policy directory holds {', '.join(POLICY_FILES)})")
        digest.update(name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


@dataclass(frozen=True)
class TrainedPolicies:
    """Loaded trained policies, their directories, and the ones skipped with the reason."""

    policies: dict[str, Policy]
    directories: dict[str, Path]
    skipped: dict[str, str]


def load_trained(models_dir: Path, names: tuple[str, ...]) -> TrainedPolicies:
    """Load ``models_dir/<name>`` for each name; a missing directory is skipped (and said), a broken one fails."""
    policies, directories, skipped = {}, {}, {}
    for name in names:
        directory = Path(models_dir) / name
        if not (directory / CONFIG_FILE).exists():
            skipped[name] = f"{directory}: no trained policy (run `dvc repro train@{name}`)"
            continue
        try:
            policy = load_policy(directory)
        except (ValueError, FileNotFoundError, KeyError) as error:
            raise ValueError(f"{directory}: cannot load the trained policy: {error}") from error
        policy.name = name
        policies[name] = policy
        directories[name] = directory
    return TrainedPolicies(policies, directories, skipped)


def matching_version(registry: Registry, policy: str, directory: Path) -> RegisteredVersion | None:
    """The newest registry version of ``policy`` whose artefacts equal the files in ``directory``.

    Versions are tried newest first (the train stage registers the one it just wrote), at
    most ``MATCH_DEPTH`` of them; None when none of them holds these exact files.
    """
    from mlflow.exceptions import MlflowException

    local = policy_fingerprint(directory)
    for version in registry.versions_of(policy)[:MATCH_DEPTH]:
        with tempfile.TemporaryDirectory(prefix="liveslate-version-") as tmp:
            try:
                remote = policy_fingerprint(registry.download(version, Path(tmp)))
            except (MlflowException, RegistryError, FileNotFoundError, OSError):
                continue  # an unreadable version cannot be the one whose files we hold
        if remote == local:
            return version
    return None


def load_version(registry: Registry, version: RegisteredVersion, destination: Path) -> Policy:
    """Download a registered version's artefacts into ``destination`` and load the policy."""
    return load_policy(registry.download(version, destination))
