"""Stage inputs that are missing, not Parquet, a directory, or lack columns: one line naming the file, exit 1."""

from __future__ import annotations

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from liveslate.cli import app

# (command, the input it reads first that the test damages)
STAGES = [
    (["split"], "artifacts/validated/logs.parquet"),
    (["kg", "--no-progress"], "artifacts/validated/catalog.parquet"),
    (["train", "--policy", "deepfm_nokg", "--no-progress"], "artifacts/splits/train.parquet"),
    (["ope-benchmark"], "artifacts/validated/logs.parquet"),
]


@pytest.fixture
def project(tmp_path):
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"seed": 3}))
    return tmp_path


def invoke(project, command):
    result = CliRunner().invoke(app, [*command, "--params", str(project / "params.yaml")])
    assert "Traceback" not in result.output
    return result


@pytest.mark.parametrize(("command", "relative"), STAGES)
def test_garbage_bytes_are_named_as_not_parquet(project, command, relative):
    target = project / relative
    target.parent.mkdir(parents=True)
    target.write_bytes(b"PAR1 this is not a parquet file at all")
    result = invoke(project, command)
    assert result.exit_code == 1
    assert f"{target}: not a readable Parquet file" in result.output


@pytest.mark.parametrize(("command", "relative"), STAGES)
def test_empty_file_and_directory_are_named(project, command, relative):
    target = project / relative
    target.parent.mkdir(parents=True)
    target.write_bytes(b"")
    result = invoke(project, command)
    assert result.exit_code == 1 and f"{target}: not a readable Parquet file" in result.output
    target.unlink()
    target.mkdir()
    result = invoke(project, command)
    assert result.exit_code == 1 and f"{target}: not a file" in result.output


@pytest.mark.parametrize(("command", "relative"), STAGES)
def test_missing_columns_are_listed(project, command, relative):
    target = project / relative
    target.parent.mkdir(parents=True)
    # A frame from some other tool: right file name, wrong contents.
    pd.DataFrame({"user": ["a", "b"], "score": [0.1, 0.2]}).to_parquet(target)
    result = invoke(project, command)
    assert result.exit_code == 1
    assert f"{target}: missing column(s) [" in result.output
    required = "'item_id'"
    assert required in result.output and "(has ['user', 'score'])" in result.output
