"""The train and policies params sections reject bad values, naming the dotted key."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from liveslate.config import ConfigError, load_params


@pytest.mark.parametrize("section, message", [
    ({"train": {"deepfm_nokg": {"use_kg": True}}}, "train.deepfm_nokg.use_kg: expected false"),
    ({"train": {"deepfm": {"hidden": [16, 0]}}}, r"train.deepfm.hidden\[1\]: expected a layer width >= 1"),
    ({"train": {"deepfm": {"lr": 0}}}, "train.deepfm.lr: expected > 0"),
    ({"train": {"deepfm": {"embedding": 8}}}, "train.deepfm.embedding: unknown key"),
    ({"train": {"patience": 0}}, "train.patience: expected >= 1"),
    ({"train": {"kg_vectors": "vectors.csv"}}, "train.kg_vectors: expected an .npz file"),
    ({"train": {"confidence": 1.0}}, r"train.confidence: expected a level in \(0, 1\)"),
    ({"train": {"deterministic": "yes"}}, "train.deterministic: expected true or false"),
    ({"policies": {"bts_mc_samples": 0}}, "policies.bts_mc_samples: expected >= 1"),
    ({"policies": {"popularity_prior_impressions": -1}}, "policies.popularity_prior_impressions: expected >= 0"),
])
def test_bad_train_params_name_their_key(tmp_path, section, message):
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(section))
    with pytest.raises(ConfigError, match=message):
        load_params(path)


def test_project_params_load_with_both_deepfm_variants():
    params = load_params(Path(__file__).resolve().parents[1] / "params.yaml")
    assert params.train.deepfm.use_kg and not params.train.deepfm_nokg.use_kg
    assert params.train.kg_vectors == "artifacts/kg/item_vectors.npz"
