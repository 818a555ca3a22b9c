"""Saving and loading policies without pickled modules.

A policy directory holds three files:
- ``config.json``: {"kind": ..., "name": ..., "item_ids": [the stable item index it was
  built with], ...the class's own hyper-parameters}
- ``weights.pt``: a state_dict (str → tensor), read with ``torch.load(weights_only=True)``
- ``encoders.json``: the fitted feature encoders ({} for policies without features)

``POLICY_KINDS`` maps a config "kind" to "module:Class"; classes are imported only when
a policy of that kind is loaded (plain dict, no import-time registration).

A directory that cannot be loaded (a file missing, not JSON, truncated weights, a
state_dict that does not fit the class) raises :class:`PolicyFileError`, a ValueError
naming the file and what is wrong, never a bare KeyError or torch RuntimeError.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from liveslate.io import atomic_path, read_json, write_json

if TYPE_CHECKING:
    from liveslate.policies.base import Policy


class PolicyFileError(ValueError):
    """A saved policy directory that cannot be loaded; the message names the file."""

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


def _read_json_object(path: Path) -> dict[str, Any]:
    """A JSON object read from ``path``, or PolicyFileError naming the file."""
    try:
        value = read_json(path)
    except UnicodeDecodeError as err:
        raise PolicyFileError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start})") from err
    except ValueError as err:  # json.JSONDecodeError
        raise PolicyFileError(f"{path}: not valid JSON ({err})") from err
    if not isinstance(value, dict):
        raise PolicyFileError(f"{path}: expected a JSON object, got a {type(value).__name__}")
    return value


def _read_config(path: Path) -> dict[str, Any]:
    """config.json with its common keys checked: kind and name strings, unique string item_ids."""
    config = _read_json_object(path)
    for key in ("kind", "name"):
        if not isinstance(config.get(key), str):
            raise PolicyFileError(f"{path}: {key!r} must be a string, got {config.get(key)!r}")
    item_ids = config.get("item_ids")
    if not isinstance(item_ids, list) or not all(isinstance(i, str) for i in item_ids):
        raise PolicyFileError(f"{path}: 'item_ids' must be a list of item id strings")
    if len(set(item_ids)) != len(item_ids):
        seen: set[str] = set()
        repeated = next(i for i in item_ids if i in seen or seen.add(i))
        raise PolicyFileError(f"{path}: item id {repeated!r} appears more than once in 'item_ids'")
    return config


def read_policy_files(directory: Path, kind: str) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """(config, state_dict, encoders) of a policy directory whose kind must be ``kind``."""
    import torch

    directory = Path(directory)
    for file in (CONFIG_FILE, WEIGHTS_FILE, ENCODERS_FILE):
        if not (directory / file).is_file():
            raise FileNotFoundError(f"{directory / file}: not found (a policy directory holds "
                                    f"{CONFIG_FILE}, {WEIGHTS_FILE} and {ENCODERS_FILE})")
    config = _read_config(directory / CONFIG_FILE)
    if config["kind"] != kind:
        raise PolicyFileError(f"{directory / CONFIG_FILE}: kind is {config['kind']!r}, expected {kind!r}")
    try:
        state = torch.load(directory / WEIGHTS_FILE, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises a zoo here (EOFError, UnpicklingError, RuntimeError, ...)
        # Only torch's first sentence: its UnpicklingError goes on to suggest weights_only=False,
        # which is exactly what must not be done with a file of unknown origin.
        first = str(err).strip().split(". ")[0].splitlines()[0][:200] if str(err).strip() else "no data"
        raise PolicyFileError(f"{directory / WEIGHTS_FILE}: not a readable state_dict ({type(err).__name__}: {first}); "
                              "retrain the policy or restore the file") from err
    if not isinstance(state, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                              for k, v in state.items()):
        raise PolicyFileError(f"{directory / WEIGHTS_FILE}: expected a state_dict (tensor name → tensor), "
                              f"got a {type(state).__name__}")
    return config, state, _read_json_object(directory / ENCODERS_FILE)


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
    if not (directory / CONFIG_FILE).is_file():
        raise FileNotFoundError(f"{directory / CONFIG_FILE}: not found; not a saved policy directory")
    kind = _read_config(directory / CONFIG_FILE)["kind"]
    if kind not in POLICY_KINDS:
        raise PolicyFileError(f"{directory / CONFIG_FILE}: unknown policy kind {kind!r} "
                              f"(known: {', '.join(sorted(POLICY_KINDS))})")
    try:
        return policy_class(kind).load(directory)
    except (PolicyFileError, FileNotFoundError):
        raise
    except (KeyError, TypeError, ValueError, IndexError, AttributeError, RuntimeError) as err:
        # The files parse but do not fit the class: a hand edit, a file from another
        # version, or a state_dict whose tensors lack keys or have other shapes.
        detail = " ".join(str(err).split())[:500]
        raise PolicyFileError(f"{directory}: the saved {kind} policy does not load ({type(err).__name__}: "
                              f"{detail}); retrain it or restore the directory") from err
