"""Bad command-line arguments: one line naming the option and what was expected, a non-zero exit."""

from __future__ import annotations

import pytest
import yaml
from typer.testing import CliRunner

from liveslate.cli import app


@pytest.fixture
def params(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump({"spool": {"directory": "spool"}}))
    return str(path)


@pytest.mark.parametrize(("arguments", "code", "message"), [
    # Before: "Invalid isoformat string: 'tomorrow'", naming no option.
    (["collect", "--day", "2026-12-02", "--now", "tomorrow"], 1,
     "--now 'tomorrow': expected an ISO timestamp with a time zone"),
    (["collect", "--day", "2026-12-02", "--now", "2026-12-03T01:00:00"], 1, "--now '2026-12-03T01:00:00': expected a time zone"),
    (["collect", "--day", "2026-13-02"], 1, "day '2026-13-02': expected a date as YYYY-MM-DD"),
    (["train", "--policy", "uniform"], 2, "--policy 'uniform': not a trainable policy (expected one of deepfm, deepfm_nokg"),
    (["train", "--policy", ""], 2, "--policy '': not a trainable policy"),
])
def test_bad_arguments_name_the_option(params, arguments, code, message):
    result = CliRunner().invoke(app, [*arguments, "--params", params])
    assert result.exit_code == code, result.output
    assert message in result.output and "Traceback" not in result.output
