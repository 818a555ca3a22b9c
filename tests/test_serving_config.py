"""params.yaml sections of serving and of the served ingest source: bad values name their dotted path."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from liveslate.cli import app
from liveslate.config import ConfigError, ServingConfig, load_params
from liveslate.serving.arguments import ServiceArguments

REPO_PARAMS = Path(__file__).resolve().parents[1] / "params.yaml"


def test_repository_params_serve_with_the_defaults():
    params = load_params(REPO_PARAMS)
    assert params.serving == ServingConfig() and "served" not in params.ingest.sources
    arguments = ServiceArguments.from_params(params, "liveslate-policy:v1-abc", Path("spool"))
    # The served default exploration is the one the champion was evaluated with.
    assert (arguments.exploration_mode, arguments.epsilon) == (params.evaluate.exploration.mode,
                                                               params.evaluate.exploration.epsilon)
    assert arguments.reward_max == params.validate.reward_max and Path(arguments.spool_dir).is_absolute()


@pytest.mark.parametrize(("changes", "message"), [
    ({"serving": {"unknown_candidates": "ignore"}}, r"serving\.unknown_candidates: expected one of drop, reject"),
    ({"serving": {"max_k": 4}}, r"serving\.max_k: expected <= validate\.slate_size \(3\)"),
    ({"serving": {"max_k": 0}}, r"serving\.max_k: expected an integer >= 1, got 0"),
    ({"serving": {"max_request_bytes": 10}}, r"serving\.max_request_bytes: expected >= 1024 bytes"),
    ({"serving": {"bento_name": "Liveslate Service"}}, r"serving\.bento_name: expected a lower-case name"),
    ({"serving": {"workers": "two"}}, r"serving\.workers: expected an integer, got 'two'"),
    ({"serving": {"bentoml_hme": "x"}}, r"serving\.bentoml_hme: unknown key"),
    ({"ingest": {"sources": ["served", "live"]}}, r"ingest\.sources\[1\]: expected one of obd, canonical, served"),
    ({"ingest": {"served": {"window_days": 0}}}, r"ingest\.served\.window_days: expected >= 1 day, got 0"),
])
def test_bad_serving_params_name_the_key(tmp_path, changes, message):
    params = yaml.safe_load(REPO_PARAMS.read_text())
    for section, values in changes.items():
        for key, value in values.items():
            params[section][key] = value if not isinstance(value, dict) else {**params[section][key], **value}
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    with pytest.raises(ConfigError, match=message):
        load_params(path)
    result = CliRunner().invoke(app, ["package", "--params", str(path)])
    assert result.exit_code == 2 and "error:" in result.output
