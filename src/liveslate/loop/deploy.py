"""Staging deployment: start the packaged Bento, switch over once it is ready, keep the old record.

The package stage records the Bento it built in ``artifacts/bento/bento.json``
({"bento_tag", "registered_version", ...}). Deploy starts ``bentoml serve <tag>`` on
127.0.0.1 (a new process group, so it outlives the task), waits until its readiness
endpoint answers, and only then stops the previously deployed server by its PID.
``artifacts/deploy/staging.json`` holds the current deployment and the previous one,
so a rollback knows which Bento to start again.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from liveslate.config import load_params
from liveslate.io import write_json

BENTO_RECORD = Path("artifacts/bento/bento.json")
STAGING_RECORD = Path("artifacts/deploy/staging.json")


class DeployError(RuntimeError):
    """The new Bento could not be started or never became ready; the old one keeps serving."""


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def wait_ready(url: str, timeout_s: float, process: subprocess.Popen | None = None) -> None:
    """Poll ``url`` until it answers 200; fail early if the process has died."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise DeployError(f"the server exited with code {process.returncode} before {url} was ready")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.5)
    raise DeployError(f"{url} did not become ready within {timeout_s:.0f} s")


def stop_pid(pid: int, grace_s: float = 10.0) -> None:
    """Stop a server we started (its whole process group): SIGTERM, then SIGKILL after a grace period."""
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        try:
            os.killpg(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def start_bento(project: Path, bento_tag: str, port: int, log_path: Path,
                bentoml_home: str | None = None) -> subprocess.Popen:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log = log_path.open("ab")
    bentoml = [sys.executable, "-m", "bentoml"]
    # The Bento lives in the store the package stage built it in (recorded in bento.json).
    env = {**os.environ, "BENTOML_HOME": bentoml_home} if bentoml_home else None
    return subprocess.Popen([*bentoml, "serve", bento_tag, "--host", "127.0.0.1", "--port", str(port)],
                            cwd=project, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=env)


def deploy_staging(project: Path) -> Path:
    """Start the recorded Bento, wait for readiness, stop the old server, write staging.json."""
    params = load_params(project / "params.yaml")
    record_path = project / BENTO_RECORD
    if not record_path.exists():
        raise DeployError(f"{record_path}: no packaged Bento; run the package stage first")
    bento = json.loads(record_path.read_text())
    if not bento.get("bento_tag"):
        raise DeployError(f"{record_path}: no Bento was packaged ({bento.get('reason', 'no champion')})")
    staging_path = project / STAGING_RECORD
    current = json.loads(staging_path.read_text()) if staging_path.exists() else None
    if current and current.get("bento_tag") == bento["bento_tag"] and _alive(current.get("pid")):
        return staging_path  # already serving this Bento: nothing to do on a re-run
    port = params.deploy.port or free_port()
    if current and current.get("port") == port and _alive(current.get("pid")):
        port = free_port()  # the old server still holds the configured port until the switch
    process = start_bento(project, bento["bento_tag"], port, project / "artifacts/deploy/logs" / f"{port}.log",
                          bento.get("bentoml_home"))
    try:
        wait_ready(f"http://127.0.0.1:{port}{params.deploy.readiness_path}", params.deploy.readiness_timeout_s, process)
    except DeployError:
        stop_pid(process.pid)
        raise
    if current and _alive(current.get("pid")):
        stop_pid(int(current["pid"]))
    previous = {k: v for k, v in current.items() if k != "previous"} if current else None
    write_json(staging_path, {
        "bento_tag": bento["bento_tag"],
        "registered_version": bento.get("registered_version"),
        "pid": process.pid,
        "host": "127.0.0.1",
        "port": port,
        "deployed_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "previous": previous,
    })
    return staging_path


def _alive(pid: object) -> bool:
    if not isinstance(pid, int):
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
