"""Registering a saved policy directory as a new version of the MLflow registered model.

MLflow 3's ``register_model("runs:/…")`` expects a LoggedModel; a policy here is plain
files (state_dict + JSON), so the directory is logged as run artefacts and a model
version is created on that artefact location with ``MlflowClient.create_model_version``.
Load it back with ``mlflow.artifacts.download_artifacts("models:/NAME/VERSION")`` and
``liveslate.policies.registry.load_policy``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

ARTIFACT_PATH = "policy"


def register_policy_directory(mlflow: Any, directory: Path, registered_model: str,
                              tags: dict[str, str]) -> Any:
    """Log ``directory`` to the active run under ``policy/`` and register it; returns the ModelVersion."""
    from mlflow.exceptions import MlflowException

    run = mlflow.active_run()
    if run is None:
        raise RuntimeError("register_policy_directory needs an active MLflow run")
    mlflow.log_artifacts(str(directory), artifact_path=ARTIFACT_PATH)
    client = mlflow.MlflowClient()
    try:
        client.get_registered_model(registered_model)
    except MlflowException:
        client.create_registered_model(registered_model, description="liveslate slate policies (one version per trained policy)")
    return client.create_model_version(
        name=registered_model,
        source=f"{run.info.artifact_uri}/{ARTIFACT_PATH}",
        run_id=run.info.run_id,
        tags={key: str(value) for key, value in tags.items()},
        description=f"policy {tags.get('policy', '?')}",
    )
