"""Which function trains which learned policy (the `train@NAME` stages of dvc.yaml).

Each value is "module:function" of a trainer ``train(data: TrainingData, params: Params,
run: TrainRun) -> TrainResult`` (see ``training.py``); the module is imported only when
that policy is trained. To add a policy: one entry here, its sub-section
``train.<name>`` in config.py/params.yaml, and its name in the foreach list of the
``train`` stage in dvc.yaml.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

TRAINERS: dict[str, str] = {
    "deepfm": "liveslate.policies.deepfm_train:train_deepfm",
    "deepfm_nokg": "liveslate.policies.deepfm_train:train_deepfm",
    "sac": "liveslate.policies.sac_train:train_sac_policy",
    "slateq": "liveslate.policies.slateq_train:train_slateq_policy",
}


def get_trainer(name: str) -> Callable[..., Any]:
    """The trainer function of policy ``name``; ValueError listing the known names otherwise."""
    if name not in TRAINERS:
        raise ValueError(f"unknown policy {name!r} (trainable policies: {', '.join(sorted(TRAINERS))})")
    module_name, function_name = TRAINERS[name].split(":")
    return getattr(importlib.import_module(module_name), function_name)
