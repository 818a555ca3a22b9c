"""Tampered policy directories, KG vector files and BTS priors: a ValueError naming the file, never a bare
KeyError/RuntimeError/EOFError from json, torch or yaml (evaluate and package catch ValueError)."""

from __future__ import annotations

import dataclasses
import json
import re

import numpy as np
import pandas as pd
import pytest
import torch

import policy_synthetic as synth
from liveslate import schema
from liveslate.config import DeepFMConfig, Params, TrainConfig
from liveslate.policies.base import Candidates, Exploration
from liveslate.policies.deepfm_train import train_deepfm
from liveslate.policies.item_vectors import load_item_vectors
from liveslate.policies.reference import PopularityPolicy, UniformPolicy, read_bts_prior
from liveslate.policies.registry import PolicyFileError, load_policy
from liveslate.policies.training import TrainingData, TrainRun

ITEM_IDS = ["men/0", "men/1", "men/2", "women/0"]


@pytest.fixture
def saved(tmp_path):
    """A saved popularity policy: config.json, weights.pt (ctr [4]) and encoders.json."""
    policy = PopularityPolicy(ITEM_IDS, np.array([0.1, 0.2, 0.3, 0.4]), default_ctr=0.25)
    directory = tmp_path / "popularity"
    policy.save(directory)
    return directory


def edit_config(directory, change):
    config = json.loads((directory / "config.json").read_text())
    change(config)
    (directory / "config.json").write_text(json.dumps(config))


TAMPERING = [
    ("config.json", lambda d: (d / "config.json").write_text("{oops"), r"config\.json: not valid JSON"),
    ("config.json", lambda d: (d / "config.json").write_text(""), r"config\.json: not valid JSON"),
    ("config.json", lambda d: (d / "config.json").write_text("[1, 2]"), r"config\.json: expected a JSON object, got a list"),
    ("config.json", lambda d: (d / "config.json").write_bytes(b"\xff\xfe{}"), r"config\.json: not UTF-8 text"),
    ("config.json", lambda d: edit_config(d, lambda c: c.pop("kind")), r"config\.json: 'kind' must be a string, got None"),
    ("config.json", lambda d: edit_config(d, lambda c: c.update(kind="oracle")), r"unknown policy kind 'oracle'"),
    ("config.json", lambda d: edit_config(d, lambda c: c.pop("item_ids")), r"'item_ids' must be a list of item id strings"),
    ("config.json", lambda d: edit_config(d, lambda c: c["item_ids"].__setitem__(2, "men/0")),
     r"item id 'men/0' appears more than once"),
    ("config.json", lambda d: edit_config(d, lambda c: c.pop("default_ctr")),
     r"the saved popularity policy does not load \(KeyError: 'default_ctr'\)"),
    ("weights.pt", lambda d: (d / "weights.pt").write_bytes(b""), r"weights\.pt: not a readable state_dict \(EOFError"),
    ("weights.pt", lambda d: (d / "weights.pt").write_bytes((d / "weights.pt").read_bytes()[:200]),
     r"weights\.pt: not a readable state_dict"),
    # torch's own text goes on to advise weights_only=False: only its first sentence is kept.
    ("weights.pt", lambda d: (d / "weights.pt").write_bytes(b"garbage" * 50),
     r"weights\.pt: not a readable state_dict \(UnpicklingError: Weights only load failed\); retrain"),
    ("weights.pt", lambda d: torch.save([1, 2], d / "weights.pt"),
     r"weights\.pt: expected a state_dict \(tensor name → tensor\), got a list"),
    ("weights.pt", lambda d: torch.save({}, d / "weights.pt"), r"does not load \(KeyError: 'ctr'\)"),
    ("weights.pt", lambda d: torch.save({"ctr": torch.zeros(3, 3)}, d / "weights.pt"),
     r"does not load \(ValueError: PopularityPolicy: ctr has shape \(3, 3\)"),
    ("encoders.json", lambda d: (d / "encoders.json").write_text("nope"), r"encoders\.json: not valid JSON"),
]


@pytest.mark.parametrize(("file", "tamper", "message"), TAMPERING)
def test_tampered_policy_directory_names_the_file(saved, file, tamper, message):
    tamper(saved)
    with pytest.raises(PolicyFileError, match=message) as caught:
        load_policy(saved)
    assert str(saved) in str(caught.value)


def test_missing_file_is_named(saved):
    (saved / "weights.pt").unlink()
    with pytest.raises(FileNotFoundError, match=re.escape(f"{saved / 'weights.pt'}: not found")):
        load_policy(saved)


def test_untampered_directory_still_loads(saved):
    policy = load_policy(saved)
    assert isinstance(policy, PopularityPolicy) and policy.item_ids == tuple(ITEM_IDS)


def test_deepfm_with_item_ids_that_do_not_match_its_network(tmp_path):
    catalog = synth.catalog()
    index = schema.item_index(catalog)
    data = TrainingData(train=synth.logs(200, seed=1), valid=synth.logs(100, seed=2, start="2024-02-01"),
                        catalog=catalog, index=index, item_vectors=None, slate_size=3, seed=7)
    section = dataclasses.replace(DeepFMConfig(use_kg=False), embedding_dim=2, hidden=(4,), max_epochs=1)
    run = TrainRun(name="deepfm_nokg", checkpoint_dir=tmp_path / "ckpt", fingerprint="f", progress=False)
    policy = train_deepfm(data, Params(train=TrainConfig(deepfm_nokg=section)), run).policy
    policy.save(tmp_path / "deepfm")
    edit_config(tmp_path / "deepfm", lambda c: c.update(item_ids=c["item_ids"][:-1]))
    # Before: accepted, so item index i silently scored another item's row of the network.
    with pytest.raises(PolicyFileError, match=rf"{len(index) - 1} item ids but the network holds {len(index)} items"):
        load_policy(tmp_path / "deepfm")


def test_self_exploring_policies_check_the_batch_rows():
    contexts = pd.DataFrame({"ctx_user": ["a", "b"]})
    candidates = Candidates.from_lists([[0, 1, 2]] * 3)
    with pytest.raises(ValueError, match=r"uniform: 2 context rows but 3 candidate rows"):
        UniformPolicy(ITEM_IDS).action_dist(contexts, candidates, 2, Exploration())
    with pytest.raises(ValueError, match=r"uniform: 2 context rows but 3 candidate rows"):
        UniformPolicy(ITEM_IDS).slate(contexts, candidates, 2, Exploration())


@pytest.mark.parametrize(("text", "message"), [
    ("men: {alpha: [1, 2\n", r"not a readable YAML prior"),
    ("men: {alpha: 3, beta: 4}\n", r"room 'men': alpha and beta must be lists"),
    ("men: {alpha: [1, .inf], beta: [1, 1]}\n", r"room 'men', item 1: alpha and beta must be finite numbers > 0, got inf"),
    ("men: {alpha: [true], beta: [1]}\n", r"room 'men', item 0: .* got True, 1"),
    ("men: {alpha: [1, 2], beta: [1]}\n", r"room 'men': 2 alpha values but 1 beta values"),
])
def test_bad_bts_prior_files_name_the_room_and_item(tmp_path, text, message):
    path = tmp_path / "prior_bts.yaml"
    path.write_text(text)
    with pytest.raises(ValueError, match=message) as caught:
        read_bts_prior(path, ITEM_IDS)
    assert str(caught.value).startswith(str(path))


def test_bts_prior_in_latin1_or_a_directory_is_named(tmp_path):
    path = tmp_path / "prior_bts.yaml"
    path.write_bytes("# café\nmen: {alpha: [1], beta: [1]}\n".encode("latin-1"))
    with pytest.raises(ValueError, match=rf"{re.escape(str(path))}: not a readable YAML prior"):
        read_bts_prior(path, ITEM_IDS)
    path.unlink()
    path.mkdir()  # was an IsADirectoryError traceback in ope-benchmark
    with pytest.raises(ValueError, match=rf"{re.escape(str(path))}: not a readable YAML prior"):
        read_bts_prior(path, ITEM_IDS)


def test_kg_vector_file_that_is_not_an_archive(tmp_path):
    index = pd.Index(ITEM_IDS)
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"\x00\x01 not a zip archive")
    with pytest.raises(ValueError, match=rf"{re.escape(str(garbage))}: not a readable \.npz archive"):
        load_item_vectors(garbage, index)
    bare = tmp_path / "bare.npz"
    with bare.open("wb") as handle:  # np.save onto an .npz name: one array, not an archive
        np.save(handle, np.zeros((4, 2)))
    with pytest.raises(ValueError, match=rf"{re.escape(str(bare))}: expected an \.npz archive"):
        load_item_vectors(bare, index)


def test_an_unreadable_checkpoint_is_ignored_with_a_warning(tmp_path):
    """Checkpoints outlive runs (not a DVC output): a damaged one was a torch traceback on every later run."""
    from liveslate.policies.training import Checkpoint

    run = TrainRun(name="deepfm", checkpoint_dir=tmp_path, fingerprint="f", progress=False)
    checkpoint = Checkpoint(run)
    checkpoint.save({"step": torch.tensor(3)})
    assert int(checkpoint.load()["step"]) == 3
    checkpoint.path.write_bytes(checkpoint.path.read_bytes()[:100])
    with pytest.warns(UserWarning, match=rf"{re.escape(str(checkpoint.path))}: unreadable checkpoint ignored"):
        assert checkpoint.load() is None
    torch.save([1, 2], checkpoint.path)  # readable, but not a checkpoint
    assert checkpoint.load() is None
