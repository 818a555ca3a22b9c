"""`liveslate package`: build the Bento of the registry's champion (the `package` DVC stage)."""

from __future__ import annotations

from pathlib import Path

from liveslate.stages.common import ParamsOption, fail, open_project, say


def main(params: ParamsOption = Path("params.yaml")) -> None:
    """Package the version holding the champion alias as a Bento and record it in artifacts/bento/bento.json.

    An unchanged champion (same registry version, artefacts, catalogue, serving settings and
    code) builds nothing. Without a champion it says so and builds nothing. BENTOML_HOME
    overrides serving.bentoml_home.
    """
    project = open_project(params)  # a params typo fails before the heavy imports
    from liveslate.serving.package import PackageError, package_champion, resolve_bentoml_home

    home = resolve_bentoml_home(project.root, project.params.serving.bentoml_home)

    from liveslate.evaluation.registry_ops import Registry, RegistryError
    from liveslate.serving.package import check_bentoml_home

    try:
        check_bentoml_home(home)
        result = package_champion(project.root, project.params, Registry.for_project(project.root, project.params),
                                  project.artifacts / "validated" / "catalog.parquet", home)
    except (PackageError, RegistryError) as error:
        fail(str(error))
    if result.record.get("bento_tag"):
        from liveslate.tracking import stage_run

        with stage_run(project.root, project.params, "package", project.params.serving) as mlflow:
            mlflow.set_tags({f"package.{key}": str(result.record[key]) for key in
                             ("bento_tag", "model_tag", "registered_version", "policy", "fingerprint")})
            mlflow.set_tag("package.built", str(result.built).lower())
    say(f"package: {result.message}")
    if result.record.get("bento_tag"):
        say(f"package: serve it on 127.0.0.1 with BENTOML_HOME={home} python -m bentoml serve "
            f"{result.record['bento_tag']} --host 127.0.0.1 --port 3000")
