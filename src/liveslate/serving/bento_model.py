"""The champion as a BentoML model: its registered artefacts, its catalogue, and how to load them back.

A model directory holds:
- ``policy/``: the registered version's files, unchanged (config.json with the item index,
  weights.pt as a state_dict, encoders.json) — loaded with ``policies.registry.load_policy``;
- ``catalog.parquet``: the catalogue rows of the policy's items, in item index order (the
  rooms the service serves; also the snapshot it leaves in the spool);
- ``serving_model.json``: the registry version, policy name and kind, data version, git
  commit and the content hash.

The model version is ``v<registry version>-<content hash[:8]>``: the registry version says
which champion it is, the hash keeps two different contents from sharing a tag.
"""

from __future__ import annotations

import hashlib
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from liveslate.io import read_json, write_json
from liveslate.policies.base import Policy
from liveslate.policies.registry import CONFIG_FILE, ENCODERS_FILE, load_policy

POLICY_DIR = "policy"
CATALOG_FILE = "catalog.parquet"
INFO_FILE = "serving_model.json"


def bento_catalog(catalog: pd.DataFrame, item_ids: list[str]) -> pd.DataFrame:
    """The catalogue rows of ``item_ids``, in that order; ValueError names an item missing from it."""
    ids = catalog["item_id"].astype(str)
    duplicated = ids[ids.duplicated()]
    if not duplicated.empty:
        raise ValueError(f"catalog: item_id {duplicated.iloc[0]!r} appears more than once")
    positions = pd.Index(ids.to_numpy()).get_indexer(pd.Index(item_ids))
    missing = [item_ids[i] for i in np.flatnonzero(positions < 0)[:5]]
    if missing:
        raise ValueError(f"catalog: item(s) {missing} of the policy's item index are not in the catalogue "
                         f"({int((positions < 0).sum())} missing); the Bento needs each item's room")
    return catalog.iloc[positions].reset_index(drop=True)


def content_hash(policy_dir: Path, catalog: pd.DataFrame) -> str:
    """sha256 of the policy files (names and bytes) and of the catalogue's values."""
    digest = hashlib.sha256()
    for path in sorted(p for p in Path(policy_dir).rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(policy_dir)).encode())
        digest.update(path.read_bytes())
    digest.update(repr([(c, str(t)) for c, t in catalog.dtypes.items()]).encode())
    digest.update(pd.util.hash_pandas_object(catalog.astype("string"), index=False).to_numpy().tobytes())
    return digest.hexdigest()


def policy_item_ids(policy_dir: Path) -> list[str]:
    config = read_json(Path(policy_dir) / CONFIG_FILE)
    item_ids = config.get("item_ids")
    if not isinstance(item_ids, list) or not item_ids:
        raise ValueError(f"{Path(policy_dir) / CONFIG_FILE}: expected a non-empty 'item_ids' list (the item index)")
    return [str(i) for i in item_ids]


def write_model_files(directory: Path, policy_dir: Path, catalog: pd.DataFrame, info: dict[str, Any]) -> None:
    """Fill a model directory: policy files, catalogue, serving_model.json."""
    directory = Path(directory)
    shutil.copytree(policy_dir, directory / POLICY_DIR, dirs_exist_ok=True)
    catalog.to_parquet(directory / CATALOG_FILE, index=False)
    write_json(directory / INFO_FILE, info)


def model_tag(model_name: str, registered_version: str, digest: str) -> str:
    return f"{model_name}:v{registered_version}-{digest[:8]}"


def create_policy_model(model_name: str, policy_dir: Path, catalog: pd.DataFrame, info: dict[str, Any]) -> str:
    """Create the BentoML model (or reuse the one with the same tag); returns its tag.

    ``info`` must hold "registered_version", "policy" and "content_hash". The model is
    created with ``bentoml.models.create`` in the current BENTOML_HOME.
    """
    import bentoml
    from bentoml.exceptions import NotFound

    tag = model_tag(model_name, str(info["registered_version"]), str(info["content_hash"]))
    try:
        existing = bentoml.models.get(tag)
    except NotFound:
        existing = None
    if existing is not None:
        found = read_json(Path(existing.path) / INFO_FILE) if (Path(existing.path) / INFO_FILE).exists() else {}
        if found.get("content_hash") != info["content_hash"]:
            raise ValueError(f"BentoML model {tag} exists with other content (hash {found.get('content_hash')!r}); "
                             f"delete it with `bentoml models delete {tag}`")
        return tag
    labels = {"registered_version": str(info["registered_version"]), "policy": str(info["policy"])}
    metadata = {key: value for key, value in info.items() if isinstance(value, (str, int, float, bool))}
    with bentoml.models.create(tag, labels=labels, metadata=metadata) as model:
        write_model_files(Path(model.path), policy_dir, catalog, info)
    return tag


@dataclass(frozen=True, eq=False)
class ServingBundle:
    """A loaded model directory.

    policy: the champion; index: its stable item index [n_items]; catalog: catalogue rows
    in index order; rooms: room → ascending item indices of its items; context_features:
    the ctx_* columns the policy encodes (numeric ones in ``numeric_context``); info: the
    serving_model.json payload.
    """

    policy: Policy
    index: pd.Index
    catalog: pd.DataFrame
    rooms: dict[str, np.ndarray]
    context_features: tuple[str, ...]
    numeric_context: frozenset[str]
    info: dict[str, Any]

    @property
    def name(self) -> str:
        return f"{self.info['policy']}@v{self.info['registered_version']}"


def context_features(policy_dir: Path) -> tuple[tuple[str, ...], frozenset[str]]:
    """(every ctx_* column the policy's context encoder reads, the numeric ones) from encoders.json."""
    from liveslate.policies.encoders import FeatureEncoder

    encoders = read_json(Path(policy_dir) / ENCODERS_FILE)
    if not isinstance(encoders, dict) or "context" not in encoders:
        return (), frozenset()
    encoder = FeatureEncoder.from_json(encoders["context"])
    return tuple(encoder.columns), frozenset(e.column for e in encoder.numeric)


def load_bundle(directory: Path) -> ServingBundle:
    """Load a model directory written by :func:`write_model_files`; ValueError names an inconsistent file."""
    directory = Path(directory)
    policy_dir = directory / POLICY_DIR
    info = read_json(directory / INFO_FILE)
    item_ids = policy_item_ids(policy_dir)
    catalog = pd.read_parquet(directory / CATALOG_FILE)
    if catalog["item_id"].astype(str).tolist() != item_ids:
        raise ValueError(f"{directory / CATALOG_FILE}: items differ from the item index of {policy_dir / CONFIG_FILE}")
    index = pd.Index(item_ids, name="item_id")
    rooms: dict[str, np.ndarray] = {}
    for room, rows in catalog.groupby(catalog["room_id"].astype(str), sort=True).indices.items():
        rooms[str(room)] = np.sort(np.asarray(rows, dtype=np.int64))
    features, numeric = context_features(policy_dir)
    return ServingBundle(policy=load_policy(policy_dir), index=index, catalog=catalog, rooms=rooms,
                         context_features=features, numeric_context=numeric, info=info)
