"""Hostile params files: each is refused with the file and the dotted key named (exit 2 at the CLI)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from liveslate.cli import app
from liveslate.config import ConfigError, load_params

BAD_TEXT = [
    # (what a user wrote, the error it must give)
    ("", r"holds no settings; expected a mapping of sections"),
    ("# every setting commented out\n", r"holds no settings"),
    ("- seed\n- paths\n", r"<top level>: expected a mapping, got \['seed', 'paths'\]"),
    ("seed: 1\nseed: 2\n", r"duplicate key 'seed' \(first given on line 1\)"),
    ("split: {train: 0.5, valid: 0.25, test: 0.25}\nsplit: {train: 0.6}\n", r"duplicate key 'split'"),
    ("train:\n  deepfm: {lr: 0.1}\n  deepfm: {lr: 0.2}\n", r"duplicate key 'deepfm' \(first given on line 2\)"),
    ("kg:\n  hierarchy: [{parent: cat_a}]\n", r"kg\.hierarchy\[0\]\.child: missing required key"),
    ("train:\n  deepfm:\n    lr: .inf\n", r"train\.deepfm\.lr: expected a finite number, got inf"),
    ("train:\n  min_delta: .inf\n", r"train\.min_delta: expected a finite number"),
    ("validate:\n  reward_max: .nan\n", r"validate\.reward_max: expected a finite number, got nan"),
    ("train:\n  sac:\n    log_alpha_min: -.inf\n", r"train\.sac\.log_alpha_min: expected a finite number"),
    ("kg_multimodal:\n  clothing_text:\n    first_seen: 2019-01-01\n",
     r"first_seen: expected a string, got the date 2019-01-01 .*quote it"),
    ("ingest:\n  obd:\n    campaigns: [men, men]\n", r"ingest\.obd\.campaigns: a campaign is listed twice"),
    ("ingest:\n  obd:\n    policies: [bts, bts]\n", r"ingest\.obd\.policies: a policy is listed twice"),
    ("tracking:\n  experiment: ''\n", r"tracking\.experiment: expected a non-empty name"),
    ("tracking:\n  registered_model: ' '\n", r"tracking\.registered_model: expected a non-empty name"),
    ("paths:\n  artifacts: ''\n", r"paths\.artifacts: expected a non-empty directory"),
    ("spool:\n  directory: ''\n", r"spool\.directory: expected a non-empty directory"),
    ("ingest:\n  canonical:\n    directory: ''\n", r"ingest\.canonical\.directory: expected a non-empty directory"),
    ("evaluate:\n  policies: [slateq]\n", r"select\.candidates: \['deepfm', 'deepfm_nokg', 'sac'\] not in "
     r"evaluate\.policies \['slateq'\]: they would never be evaluated"),
    ("backtest:\n  train_overrides:\n    slateq: {stepz: 3}\n",
     r"backtest\.train_overrides\.slateq\.stepz: not a field of train\.slateq"),
    ("backtest:\n  train_overrides:\n    slateq: {steps: 3.5}\n",
     r"backtest\.train_overrides\.slateq\.steps: expected an integer, got 3\.5"),
    ("backtest:\n  train_overrides:\n    sac: {steps: -5}\n",
     r"backtest\.train_overrides\.sac: makes an invalid train\.sac: train\.sac\.steps: expected >= 1, got -5"),
    ("backtest:\n  train_overrides:\n    slateq: {target: sideways}\n",
     r"backtest\.train_overrides\.slateq\.target: expected one of sarsa, q_learning, got 'sideways'"),
    ("backtest:\n  train_overrides:\n    deepfm_nokg: {dropout: 1.5}\n",
     r"backtest\.train_overrides\.deepfm_nokg: makes an invalid train\.deepfm_nokg: .*dropout: expected a probability"),
]


@pytest.mark.parametrize(("text", "message"), BAD_TEXT)
def test_bad_params_text_is_refused_naming_the_key(tmp_path, text, message):
    path = tmp_path / "params.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message) as caught:
        load_params(path)
    assert str(caught.value).startswith(f"{path}: ")


def test_exponent_floats_read_as_numbers_as_yaml_1_2_does(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("train:\n  deepfm:\n    lr: 1e-3\n    weight_decay: 2E-5\n")
    params = load_params(path)
    assert params.train.deepfm.lr == 0.001 and params.train.deepfm.weight_decay == 2e-5


def test_valid_overrides_of_every_kind_load(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("backtest:\n  train_overrides:\n    slateq: {steps: 7, target: q_learning, lr: 1, use_kg: false}\n")
    assert load_params(path).backtest.train_overrides["slateq"]["target"] == "q_learning"


def test_unreadable_params_files_exit_2_with_one_line(tmp_path):
    latin1 = tmp_path / "latin1.yaml"
    latin1.write_bytes("seed: 1\n# café\n".encode("latin-1"))
    directory = tmp_path / "dir.yaml"
    directory.mkdir()
    expectations = {
        latin1: r"latin1\.yaml: line 2: not UTF-8 text \(byte 0xe9\)",
        directory: r"dir\.yaml: not a file",
        tmp_path / "missing.yaml": r"missing\.yaml: params file not found",
    }
    for path, message in expectations.items():
        result = CliRunner().invoke(app, ["split", "--params", str(path)])
        assert result.exit_code == 2, result.output
        assert re.search(message, result.output), result.output
        assert "Traceback" not in result.output


def test_repository_params_file_still_loads():
    load_params(Path(__file__).resolve().parents[1] / "params.yaml")
