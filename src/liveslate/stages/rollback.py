"""`liveslate rollback`: move the registry alias `champion` back to the version it replaced."""

from __future__ import annotations

from pathlib import Path

from liveslate.stages.common import ParamsOption, fail, open_project, say


def main(params: ParamsOption = Path("params.yaml")) -> None:
    """Move the champion alias back to the previous version and say what moved.

    The abandoned version is tagged rolled back so that select does not promote it again;
    a retrain registers a new version that can compete. Rebuild the serving Bento after.
    """
    from liveslate.evaluation.registry_ops import Registry, RegistryError

    project = open_project(params)
    try:
        result = Registry.for_project(project.root, project.params).rollback()
    except RegistryError as error:
        fail(str(error))
    say(f"rollback: {result.message()}")
    say("rollback: rebuild what serves with `dvc repro package` (it packages the version holding the alias)")
