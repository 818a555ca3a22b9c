"""params.yaml for the ingest and validate stages: typos, wrong types and ranges name their dotted path."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from liveslate.cli import app
from liveslate.config import ConfigError, ValidateConfig, load_params

REPO_PARAMS = Path(__file__).resolve().parents[1] / "params.yaml"


def _params_with(tmp_path: Path, section: str, **values) -> Path:
    """A copy of the repository's params.yaml with keys of ``section`` set (dotted names nest)."""
    params = yaml.safe_load(REPO_PARAMS.read_text())
    for dotted, value in values.items():
        node = params[section]
        *parents, leaf = dotted.split(".")
        for parent in parents:
            node = node[parent]
        node[leaf] = value
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    return path


def test_the_repository_params_load_with_the_validate_defaults():
    params = load_params(REPO_PARAMS)
    assert params.validate == ValidateConfig()


@pytest.mark.parametrize(("section", "key", "value", "message"), [
    ("validate", "slate_sise", 3, r"validate\.slate_sise: unknown key \(expected one of: .*slate_size"),
    ("ingest", "obd.max_row_per_file", 10, r"ingest\.obd\.max_row_per_file: unknown key"),
    ("validate", "min_rows", "ten", r"validate\.min_rows: expected an integer, got 'ten'"),
    ("validate", "max_reject_share", 1.5, r"validate\.max_reject_share: expected a share in \[0, 1\], got 1\.5"),
    ("validate", "slate_size", 0, r"validate\.slate_size: expected >= 1, got 0"),
    ("validate", "reward_max", 0.0, r"validate\.reward_max: expected > 0, got 0\.0"),
    ("validate", "context_abs_max", -1.0, r"validate\.context_abs_max: expected > 0"),
    ("validate", "catalog_numeric_abs_max", True, r"validate\.catalog_numeric_abs_max: expected a number, got True"),
    ("ingest", "sources", ["obd", "served_logs"], r"ingest\.sources\[1\]: expected one of obd, canonical"),
])
def test_bad_params_name_the_file_and_dotted_path(tmp_path, section, key, value, message):
    path = _params_with(tmp_path, section, **{key: value})
    with pytest.raises(ConfigError, match=rf"^{tmp_path}/params\.yaml: {message}"):
        load_params(path)


@pytest.mark.parametrize("stage", ["ingest", "validate", "split"])
def test_a_params_typo_stops_the_stage_with_exit_code_2(tmp_path, stage):
    path = _params_with(tmp_path, "validate", slate_sise=3)
    result = CliRunner().invoke(app, [stage, "--params", str(path)])
    assert result.exit_code == 2
    assert f"error: {path}: validate.slate_sise: unknown key" in result.output
    assert not (tmp_path / "artifacts").exists()  # nothing ran
