"""The MLflow model registry as the source of truth for which policy version serves.

Every trained policy is a version of one registered model (``tracking.registered_model``)
tagged with its policy name. The alias ``champion`` (``select.alias``) names the version
that serves. Two tags written here keep the history that a rollback needs:

- ``liveslate.previous_champion`` on a version = the version that held the alias just
  before it was promoted ("" for the first champion);
- ``liveslate.rolled_back`` = "true" once a rollback moved the alias away from it, so
  the next ``select`` does not promote it again (a retrain registers a new version).

mlflow is imported inside the functions, so importing this module is cheap.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Tag of a model version naming the policy it holds (written by the train stage).
POLICY_TAG = "policy"
PREVIOUS_TAG = "liveslate.previous_champion"
ROLLED_BACK_TAG = "liveslate.rolled_back"
ROLLED_BACK_FROM_TAG = "liveslate.rolled_back_to"
_PROGRESS_BAR = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"


class RegistryError(RuntimeError):
    """The registry cannot do what was asked; the message says why and what to do."""


@dataclass(frozen=True)
class RegisteredVersion:
    """One model version: its number (a string, as MLflow keeps it), policy tag, artefact source."""

    version: str
    policy: str | None
    source: str
    run_id: str | None
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def previous(self) -> str | None:
        """The version that held the alias before this one was promoted (None: it was the first)."""
        return self.tags.get(PREVIOUS_TAG) or None

    @property
    def rolled_back(self) -> bool:
        return self.tags.get(ROLLED_BACK_TAG) == "true"

    def label(self) -> str:
        return f"v{self.version} ({self.policy or 'untagged'})"


@dataclass(frozen=True)
class Rollback:
    """What ``rollback`` did: the alias moved from ``from_version`` to ``to_version``."""

    alias: str
    model: str
    from_version: RegisteredVersion
    to_version: RegisteredVersion

    def message(self) -> str:
        return (f"{self.model}: alias '{self.alias}' moved back from {self.from_version.label()} to "
                f"{self.to_version.label()}; {self.from_version.label()} is tagged {ROLLED_BACK_TAG}=true so "
                "select will not promote it again (a retrain registers a new version)")


def _not_found(error: Exception) -> bool:
    return getattr(error, "error_code", "") == "RESOURCE_DOES_NOT_EXIST"


class Registry:
    """The registered model ``model`` in the registry at ``tracking_uri``, with alias ``alias``."""

    def __init__(self, tracking_uri: str, model: str, alias: str = "champion") -> None:
        from mlflow import MlflowClient

        self.tracking_uri = tracking_uri
        self.model = model
        self.alias = alias
        self.client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)

    @classmethod
    def for_project(cls, root: Path, params: Any) -> "Registry":
        """The project's registry (``MLFLOW_TRACKING_URI`` or the SQLite file of params.tracking)."""
        from liveslate.tracking import tracking_uri

        return cls(tracking_uri(root, params), params.tracking.registered_model, params.select.alias)

    # ------------------------------------------------------------------ reading
    def _wrap(self, version: Any) -> RegisteredVersion:
        tags = {str(k): str(v) for k, v in (version.tags or {}).items()}
        return RegisteredVersion(version=str(version.version), policy=tags.get(POLICY_TAG), source=str(version.source),
                                 run_id=version.run_id or None, tags=tags)

    def exists(self) -> bool:
        from mlflow.exceptions import MlflowException

        try:
            self.client.get_registered_model(self.model)
        except MlflowException as error:
            if _not_found(error):
                return False
            raise
        return True

    def champion(self) -> RegisteredVersion | None:
        """The version holding the alias, or None (no registered model yet, or no alias)."""
        from mlflow.exceptions import MlflowException

        try:
            aliases = self.client.get_registered_model(self.model).aliases or {}
        except MlflowException as error:
            if _not_found(error):
                return None
            raise
        # Read the alias map rather than asking for the alias: MLflow answers a missing alias
        # with INVALID_PARAMETER_VALUE, which is indistinguishable from a real bad request.
        if self.alias not in aliases:
            return None
        return self.version(str(aliases[self.alias]))

    def version(self, version: str) -> RegisteredVersion:
        from mlflow.exceptions import MlflowException

        try:
            return self._wrap(self.client.get_model_version(self.model, str(version)))
        except MlflowException as error:
            if _not_found(error):
                raise RegistryError(f"{self.model}: no version {version}") from error
            raise

    def versions_of(self, policy: str) -> list[RegisteredVersion]:
        """Every version tagged with ``policy``, newest (highest number) first."""
        if not self.exists():
            return []
        found = self.client.search_model_versions(f"name = '{self.model}' and tags.{POLICY_TAG} = '{policy}'")
        return sorted((self._wrap(v) for v in found), key=lambda v: int(v.version), reverse=True)

    def download(self, version: RegisteredVersion, destination: Path) -> Path:
        """Copy a version's artefacts into ``destination``; returns the directory holding config.json."""
        import mlflow

        destination.mkdir(parents=True, exist_ok=True)
        # Three small files per version: MLflow's per-download progress bar would only add noise.
        previous = os.environ.get(_PROGRESS_BAR)
        os.environ[_PROGRESS_BAR] = "false"
        try:
            local = Path(mlflow.artifacts.download_artifacts(artifact_uri=version.source, dst_path=str(destination),
                                                             tracking_uri=self.tracking_uri))
        finally:
            if previous is None:
                os.environ.pop(_PROGRESS_BAR, None)
            else:
                os.environ[_PROGRESS_BAR] = previous
        configs = [local] if local.is_file() else sorted(local.rglob("config.json"))
        directories = sorted({c.parent for c in configs if c.name == "config.json"})
        if len(directories) != 1:
            raise RegistryError(f"{self.model} {version.label()}: expected one policy directory (with config.json) "
                                f"under its source {version.source}, found {len(directories)}")
        return directories[0]

    # ------------------------------------------------------------------ writing
    def promote(self, version: str) -> RegisteredVersion | None:
        """Move the alias to ``version``, recording the version it replaces; returns that one (or None)."""
        previous = self.champion()
        if previous is not None and previous.version == str(version):
            return previous
        self.client.set_model_version_tag(self.model, str(version), PREVIOUS_TAG,
                                          previous.version if previous is not None else "")
        self.client.set_registered_model_alias(self.model, self.alias, str(version))
        return previous

    def rollback(self) -> Rollback:
        """Move the alias back to the version it replaced; the abandoned one is tagged rolled back."""
        current = self.champion()
        if current is None:
            raise RegistryError(f"{self.model}: no version holds the alias '{self.alias}'; nothing to roll back")
        if current.previous is None:
            raise RegistryError(f"{self.model}: the champion {current.label()} was the first champion; "
                                "there is no previous version to roll back to")
        target = self.version(current.previous)
        self.client.set_registered_model_alias(self.model, self.alias, target.version)
        self.client.set_model_version_tag(self.model, current.version, ROLLED_BACK_TAG, "true")
        self.client.set_model_version_tag(self.model, current.version, ROLLED_BACK_FROM_TAG, target.version)
        return Rollback(alias=self.alias, model=self.model, from_version=self.version(current.version),
                        to_version=self.version(target.version))
