"""`liveslate deploy`: serve the packaged Bento for staging on 127.0.0.1 (what the daily DAG's deploy task runs)."""

from __future__ import annotations

from pathlib import Path

from liveslate.stages.common import ParamsOption, fail, open_project, say


def main(params: ParamsOption = Path("params.yaml")) -> None:
    """Start the Bento recorded in artifacts/bento/bento.json, switch over once it is ready, record it.

    The old server is stopped only after the new one answers readiness; artifacts/deploy/staging.json
    keeps the previous deployment. Use it after `liveslate rollback` and `liveslate package`.
    """
    import json

    from liveslate.loop.deploy import DeployError, deploy_staging

    project = open_project(params)
    try:
        record = deploy_staging(project.root)
    except DeployError as err:
        fail(str(err))
    staging = json.loads(record.read_text())
    say(f"deploy: {staging['bento_tag']} (registry version {staging.get('registered_version')}) serves on "
        f"http://{staging['host']}:{staging['port']} as pid {staging['pid']} → {record}")
