"""Record a run's versions in git on a publish branch, without touching the work tree.

The daily DAG runs in a checkout that people may also use; switching branches under
them would be rude. So the commit is built with a private index file: read the branch
tip (or HEAD when the branch does not exist yet), add the run's files, write the tree,
commit it on top of the branch and move the branch ref. A run whose files did not
change commits nothing.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path


def _git(project: Path, *args: str, env: dict | None = None) -> str:
    completed = subprocess.run(["git", *args], cwd=project, capture_output=True, text=True, env=env)
    if completed.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)} failed: {completed.stderr.strip()}")
    return completed.stdout.strip()


def _tip(project: Path, branch: str) -> str | None:
    completed = subprocess.run(["git", "rev-parse", "--verify", "--quiet", f"refs/heads/{branch}"],
                               cwd=project, capture_output=True, text=True)
    return completed.stdout.strip() or None


def publish_run(project: Path, branch: str, message: str, paths: list[str]) -> str | None:
    """Commit ``paths`` (those that exist) on ``branch``; return the new commit or None if unchanged."""
    parent = _tip(project, branch) or _git(project, "rev-parse", "HEAD")
    existing = [p for p in paths if (project / p).exists()]
    if not existing:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "GIT_INDEX_FILE": str(Path(tmp) / "index")}
        _git(project, "read-tree", parent, env=env)
        # -f: metrics or lock files may be listed in .gitignore for everyday work
        _git(project, "add", "-f", "--", *existing, env=env)
        tree = _git(project, "write-tree", env=env)
    if tree == _git(project, "rev-parse", f"{parent}^{{tree}}"):
        return None
    identity = {**os.environ, "GIT_AUTHOR_NAME": os.environ.get("GIT_AUTHOR_NAME", "liveslate"),
                "GIT_AUTHOR_EMAIL": os.environ.get("GIT_AUTHOR_EMAIL", "liveslate@localhost"),
                "GIT_COMMITTER_NAME": os.environ.get("GIT_COMMITTER_NAME", "liveslate"),
                "GIT_COMMITTER_EMAIL": os.environ.get("GIT_COMMITTER_EMAIL", "liveslate@localhost")}
    commit = _git(project, "commit-tree", tree, "-p", parent, "-m", message, env=identity)
    _git(project, "update-ref", f"refs/heads/{branch}", commit, parent if _tip(project, branch) else "")
    return commit
