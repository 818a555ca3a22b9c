"""Package the champion: registry alias → BentoML model → Bento, recorded in artifacts/bento/bento.json.

The registry is the source of truth: the version holding the alias (``select.alias``)
is packaged, so a `liveslate rollback` is followed by the next package run. A build is
identified by a fingerprint of everything that goes into the Bento: the registry version
and its artefacts, the catalogue of its items, the serving arguments, the service code
(``src/liveslate``) and ``bentofile.yaml``. When the record already names a Bento with the
same fingerprint and it is in the store, nothing is built.

Bento: ``<serving.bento_name>:v<registry version>-<fingerprint[:8]>``, built from
``bentofile.yaml`` with ``src/`` as build context (the Bento carries its own copy of the
code), the model added to its models and the serving arguments as build arguments.
Everything is local: no package index or registry is contacted.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from liveslate.io import read_json, write_json

RECORD = Path("artifacts/bento/bento.json")
BENTOFILE = "bentofile.yaml"
REQUIREMENTS = "requirements.lock"
BUILD_CONTEXT = "src"
# Keys of bentofile.yaml passed on to bentoml.bentos.build (models, version and args come from here).
BENTOFILE_KEYS = ("service", "description", "labels", "include", "exclude", "python", "docker", "envs")


class PackageError(RuntimeError):
    """The champion cannot be packaged; the message says why and what to do."""


@dataclass(frozen=True)
class PackageResult:
    """built: a new Bento was built; record: what artifacts/bento/bento.json now holds."""

    built: bool
    record: dict[str, Any]
    message: str


def resolve_bentoml_home(root: Path, configured: str) -> Path:
    """BENTOML_HOME when set (BentoML's own convention), else ``serving.bentoml_home`` under the project."""
    home = Path(os.environ["BENTOML_HOME"]) if os.environ.get("BENTOML_HOME") else root / configured
    home = home.resolve()
    os.environ["BENTOML_HOME"] = str(home)
    return home


def check_bentoml_home(home: Path) -> None:
    """BentoML fixes its home the first time it is used in a process: refuse to write elsewhere."""
    from bentoml._internal.configuration.containers import BentoMLContainer

    current = Path(BentoMLContainer.bentoml_home.get()).resolve()
    if current != home.resolve():
        raise PackageError(f"BentoML already uses {current} in this process, not {home}; "
                           "run the package stage in a fresh process")


def code_hash(root: Path, bentofile: Path) -> str:
    """sha256 of bentofile.yaml and every .py file under src/liveslate (what the Bento carries)."""
    digest = hashlib.sha256(bentofile.read_bytes())
    package = root / BUILD_CONTEXT / "liveslate"
    for path in sorted(package.rglob("*.py")):
        digest.update(str(path.relative_to(package)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def fingerprint(registered_version: str, model_content_hash: str, arguments: dict[str, Any], code: str) -> str:
    payload = json.dumps({"version": registered_version, "model": model_content_hash, "arguments": arguments,
                          "code": code}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()


def bento_options(bentofile: Path) -> dict[str, Any]:
    """The build options of bentofile.yaml; keys this stage sets itself (models, version, args) are refused."""
    options = yaml.safe_load(bentofile.read_text()) or {}
    if not isinstance(options, dict):
        raise PackageError(f"{bentofile}: expected a mapping of Bento build options")
    unknown = sorted(set(options) - set(BENTOFILE_KEYS) - {"name"})
    if unknown:
        raise PackageError(f"{bentofile}: unsupported key(s) {unknown}; expected some of {list(BENTOFILE_KEYS)} "
                           "(models, version and arguments are set by `liveslate package`)")
    if "service" not in options:
        raise PackageError(f"{bentofile}: missing key 'service'")
    return options


def _bento_exists(tag: str) -> bool:
    import bentoml
    from bentoml.exceptions import NotFound

    try:
        bentoml.bentos.get(tag)
    except NotFound:
        return False
    return True


def package_champion(root: Path, params: Any, registry: Any, catalog_path: Path,
                     home: Path, record_path: Path | None = None) -> PackageResult:
    """Build the Bento of the version holding the alias (or reuse the one already built); write the record.

    registry: ``evaluation.registry_ops.Registry``; catalog_path: the validated catalogue;
    home: the BENTOML_HOME in use. Returns what was done; raises PackageError for what a
    person must fix.
    """
    import pandas as pd

    from liveslate.policies.registry import load_policy
    from liveslate.serving.arguments import ServiceArguments
    from liveslate.serving.bento_model import (bento_catalog, content_hash, create_policy_model, model_tag,
                                               policy_item_ids)

    record_path = record_path or root / RECORD
    bentofile = root / BENTOFILE
    previous = read_json(record_path) if record_path.exists() else None
    champion = registry.champion()
    if champion is None:
        message = (f"no version of {registry.model} holds the alias '{registry.alias}' (select has not promoted "
                   "any policy yet); nothing to package")
        record = {"bento_tag": None, "registered_version": None, "policy": None, "reason": message}
        if previous != record:
            write_json(record_path, record)
        return PackageResult(built=False, record=record, message=message)
    if not bentofile.exists():
        raise PackageError(f"{bentofile}: not found; the Bento's build options live there")
    if not catalog_path.exists():
        raise PackageError(f"{catalog_path}: not found; run `liveslate validate` first (the Bento needs each "
                           "item's room)")

    with tempfile.TemporaryDirectory(prefix="liveslate-package-") as scratch:
        policy_dir = registry.download(champion, Path(scratch) / "download")
        try:
            policy = load_policy(policy_dir)
            catalog = bento_catalog(pd.read_parquet(catalog_path), policy_item_ids(policy_dir))
        except (ValueError, FileNotFoundError, KeyError) as error:
            raise PackageError(f"{registry.model} {champion.label()}: {error}") from error
        digest = content_hash(policy_dir, catalog)
        tag = model_tag(params.serving.model_name, champion.version, digest)
        arguments = ServiceArguments.from_params(params, tag, root / params.spool.directory).model_dump()
        build_print = fingerprint(champion.version, digest, arguments, code_hash(root, bentofile))
        bento_tag = f"{params.serving.bento_name}:v{champion.version}-{build_print[:8]}"
        if previous and previous.get("fingerprint") == build_print and _bento_exists(str(previous.get("bento_tag"))):
            return PackageResult(built=False, record=previous,
                                 message=f"champion {champion.label()} unchanged: {previous['bento_tag']} is built")
        info = {"registered_version": champion.version, "policy": champion.policy or policy.name,
                "kind": getattr(policy, "kind", "unknown"), "run_id": champion.run_id or "",
                "data_version": champion.tags.get("data_hash", "unknown"),
                "git_commit": champion.tags.get("git_commit", "unknown"), "content_hash": digest,
                "items": len(catalog)}
        create_policy_model(params.serving.model_name, policy_dir, catalog, info)
    reused = _bento_exists(bento_tag)  # e.g. after a rollback: the older champion's Bento is still in the store
    if not reused:
        _build(root, bentofile, bento_tag, tag, arguments)
    record = {
        "bento_tag": bento_tag,
        "model_tag": tag,
        "registered_version": champion.version,
        "policy": info["policy"],
        "registered_model": registry.model,
        "alias": registry.alias,
        "fingerprint": build_print,
        "data_version": info["data_version"],
        "bentoml_home": str(home),
        "built_at": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    write_json(record_path, record)
    if reused:
        return PackageResult(built=False, record=record,
                             message=f"switched to {bento_tag}, already built for {registry.model} {champion.label()}")
    return PackageResult(built=True, record=record,
                         message=f"built {bento_tag} from {registry.model} {champion.label()} (model {tag})")


def _build(root: Path, bentofile: Path, bento_tag: str, model: str, arguments: dict[str, Any]) -> None:
    import bentoml

    options = bento_options(bentofile)
    name, version = bento_tag.split(":", 1)
    options.pop("name", None)
    python = dict(options.get("python") or {})
    requirements = root / REQUIREMENTS
    if requirements.exists() and not python.get("packages") and not python.get("requirements_txt"):
        python["packages"] = [line.strip() for line in requirements.read_text().splitlines()
                              if line.strip() and not line.lstrip().startswith("#")]
    options["python"] = python
    bentoml.bentos.build(name=name, version=version, models=[model], args=arguments,
                         build_ctx=str(root / BUILD_CONTEXT), **options)
