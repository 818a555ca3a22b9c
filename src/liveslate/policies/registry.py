"""Saving and loading policies without pickled modules.

A policy directory holds three files:
- ``config.json``: {"kind": ..., "name": ..., "item_ids": [the stable item index it was
  built with], ...the class's own hyper-parameters}
- ``weights.pt``: a state_dict (str → tensor), read with ``torch.load(weights_only=True)``
- ``encoders.json``: the fitted feature encoders ({} for policies without features)

``POLICY_KINDS`` maps a config "kind" to "module:Class"; classes are imported only when
a policy of that kind is loaded (plain dict, no import-time registration).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from liveslate.io import atomic_path, read_json, write_json

if TYPE_CHECKING:
    from liveslate.policies.base import Policy

POLICY_KINDS: dict[str, str] = {
    "uniform": "liveslate.policies.reference:UniformPolicy",
    "bts_replica": "liveslate.policies.reference:BTSReplicaPolicy",
    "popularity": "liveslate.policies.reference:PopularityPolicy",
    "deepfm": "liveslate.policies.deepfm:DeepFMPolicy",
    "sac": "liveslate.policies.sac:SacPolicy",
    "slateq": "liveslate.policies.slateq:SlateQPolicy",
}

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "weights.pt"
ENCODERS_FILE = "encoders.json"


def write_policy_files(directory: Path, config: dict[str, Any], state: dict[str, Any],
                       encoders: dict[str, Any]) -> None:
    """Write the three policy files atomically; ``config`` must hold "kind" and "name"."""
    import torch

    for key in ("kind", "name", "item_ids"):
        if key not in config:
            raise ValueError(f"policy config: missing key {key!r}")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    with atomic_path(directory / WEIGHTS_FILE) as tmp:
        torch.save({name: tensor.detach().cpu() if hasattr(tensor, "detach") else torch.as_tensor(tensor)
                    for name, tensor in state.items()}, tmp)
    write_json(directory / ENCODERS_FILE, encoders)
    write_json(directory / CONFIG_FILE, config)


def read_policy_files(directory: Path, kind: str) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """(config, state_dict, encoders) of a policy directory whose kind must be ``kind``."""
    import torch

    directory = Path(directory)
    for file in (CONFIG_FILE, WEIGHTS_FILE, ENCODERS_FILE):
        if not (directory / file).exists():
            raise FileNotFoundError(f"{directory / file}: not found (a policy directory holds "
                                    f"{CONFIG_FILE}, {WEIGHTS_FILE} and {ENCODERS_FILE})")
    config = read_json(directory / CONFIG_FILE)
    if config.get("kind") != kind:
        raise ValueError(f"{directory / CONFIG_FILE}: kind is {config.get('kind')!r}, expected {kind!r}")
    state = torch.load(directory / WEIGHTS_FILE, map_location="cpu", weights_only=True)
    return config, state, read_json(directory / ENCODERS_FILE)


def policy_class(kind: str) -> type["Policy"]:
    """The Policy class registered for ``kind``."""
    import importlib

    if kind not in POLICY_KINDS:
        raise ValueError(f"unknown policy kind {kind!r} (known: {', '.join(sorted(POLICY_KINDS))})")
    module_name, class_name = POLICY_KINDS[kind].split(":")
    return getattr(importlib.import_module(module_name), class_name)


def save_policy(policy: "Policy", directory: Path) -> None:
    policy.save(Path(directory))


def load_policy(directory: Path) -> "Policy":
    """Load any saved policy: dispatch on config.json's "kind"."""
    directory = Path(directory)
    if not (directory / CONFIG_FILE).exists():
        raise FileNotFoundError(f"{directory / CONFIG_FILE}: not found; not a saved policy directory")
    kind = read_json(directory / CONFIG_FILE).get("kind")
    return policy_class(str(kind)).load(directory)
