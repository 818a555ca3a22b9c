"""`liveslate package` against a real SQLite registry and BentoML store.

One walk: no champion → a message and no build; the first champion → a Bento whose model
is tagged with the registry version and holds its artefacts; a re-run → nothing built; a
new champion → a new Bento; `liveslate rollback` → the previous version's Bento again
(from the store, not rebuilt).
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

import serving_support as support
from liveslate.cli import app


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    support.bentoml_home(tmp_path_factory)
    root = support.write_project(tmp_path_factory.mktemp("package"), model="liveslate-policy-pkg")
    return root, f"sqlite:///{root / 'mlflow.db'}"


def run(root: Path, tracking_uri: str, *command: str) -> str:
    result = CliRunner().invoke(app, [*command, "--params", str(root / "params.yaml")],
                                env={"MLFLOW_TRACKING_URI": tracking_uri})
    assert result.exit_code == 0, result.output
    return result.output


def record(root: Path) -> dict:
    return json.loads((root / "artifacts" / "bento" / "bento.json").read_text())


def test_package_follows_the_alias(project):
    import bentoml

    root, uri = project
    model = "liveslate-policy-pkg"
    output = run(root, uri, "package")
    assert "no version of liveslate-policy-pkg holds the alias 'champion'" in output
    assert record(root)["bento_tag"] is None

    first = support.register(support.train_policy(root / "trained" / "a", seed=7), uri, model=model)
    support.promote(uri, first, model=model)
    output = run(root, uri, "package")
    built = record(root)
    assert "package: built " in output and built["registered_version"] == first
    assert built["bento_tag"].startswith(f"liveslate-service:v{first}-")
    assert built["model_tag"].startswith(f"liveslate-policy:v{first}-") and "latest" not in built["model_tag"]
    bento = bentoml.bentos.get(built["bento_tag"])
    assert [str(m.tag) for m in bento.info.models] == [built["model_tag"]]
    assert bento.info.args["model_tag"] == built["model_tag"]
    assert bento.info.args["epsilon"] == 0.3 and bento.info.args["spool_dir"] == str((root / "spool").resolve())
    stored = Path(bentoml.models.get(built["model_tag"]).path)
    for name in ("config.json", "weights.pt", "encoders.json"):  # the registered artefacts, byte for byte
        assert (stored / "policy" / name).read_bytes() == (root / "trained" / "a" / name).read_bytes()
    assert (Path(bento.path_of("src")) / "liveslate" / "serving" / "service.py").exists()  # its own copy of the code

    output = run(root, uri, "package")
    assert f"champion v{first} (deepfm_nokg) unchanged: {built['bento_tag']} is built" in output
    assert record(root) == built

    second = support.register(support.train_policy(root / "trained" / "b", seed=8, epochs=2), uri, model=model)
    support.promote(uri, second, model=model)
    run(root, uri, "package")
    assert record(root)["registered_version"] == second and record(root)["bento_tag"] != built["bento_tag"]

    output = run(root, uri, "rollback")
    assert f"moved back from v{second}" in output
    output = run(root, uri, "package")
    assert f"switched to {built['bento_tag']}" in output
    assert {k: v for k, v in record(root).items() if k != "built_at"} == \
        {k: v for k, v in built.items() if k != "built_at"}

    # A catalogue that lost one of the champion's items: the stage refuses, naming the item.
    path = root / "artifacts" / "validated" / "catalog.parquet"
    full = pd.read_parquet(path)
    full[full["item_id"] != "r1/5"].to_parquet(path, index=False)
    result = CliRunner().invoke(app, ["package", "--params", str(root / "params.yaml")],
                                env={"MLFLOW_TRACKING_URI": uri})
    assert result.exit_code == 1
    assert "item(s) ['r1/5'] of the policy's item index are not in the catalogue" in result.output
    full.to_parquet(path, index=False)
