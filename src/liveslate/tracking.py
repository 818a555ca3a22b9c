"""MLflow tracking for stages: one run per stage execution.

The tracking URI comes from ``MLFLOW_TRACKING_URI``, else a SQLite file in the
project (MLflow 3 disables the plain file store). Nothing happens at import time:
mlflow itself is imported only when a run is opened.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from liveslate.config import Params, as_flat_dict


def tracking_uri(root: Path, params: Params) -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{(root / params.tracking.sqlite_path).resolve()}"


def git_commit(root: Path) -> str:
    """The checked-out commit, or 'unknown' outside a git work tree."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() if out.returncode == 0 else "unknown"


def data_hash(root: Path) -> str:
    """The DVC hash of ``data/`` as recorded in ``data.dvc`` (the data version), else 'untracked'."""
    dvc_file = root / "data.dvc"
    if not dvc_file.exists():
        return "untracked"
    import yaml

    spec = yaml.safe_load(dvc_file.read_text()) or {}
    outs = spec.get("outs") or [{}]
    return str(outs[0].get("md5", "untracked"))


def file_hash(*paths: Path) -> str:
    """Content hash of input files/directories, for tagging a run with the data it read."""
    digest = hashlib.md5()
    for path in paths:
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        for file in files:
            digest.update(str(file.relative_to(path.parent)).encode())
            digest.update(file.read_bytes())
    return digest.hexdigest()


@contextmanager
def stage_run(root: Path, params: Params, stage: str, section: Any = None,
              input_paths: tuple[Path, ...] = ()) -> Iterator[Any]:
    """Open an MLflow run for ``stage``, log its params section and the common tags.

    Yields the ``mlflow`` module so the caller can log metrics and artefacts.
    Tags: stage, git commit, DVC data version and a content hash of the stage's inputs.
    """
    import mlflow

    mlflow.set_tracking_uri(tracking_uri(root, params))
    mlflow.set_experiment(params.tracking.experiment)
    with mlflow.start_run(run_name=stage):
        mlflow.set_tags({
            "liveslate.stage": stage,
            "git_commit": git_commit(root),
            "data_version": data_hash(root),
            "input_hash": file_hash(*input_paths) if input_paths else "none",
        })
        logged = {"seed": params.seed}
        if section is not None:
            logged.update({f"{stage}.{k}": v for k, v in as_flat_dict(section).items()})
        mlflow.log_params({k: str(v)[:500] for k, v in logged.items()})
        yield mlflow
