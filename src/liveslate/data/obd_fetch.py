"""Set-up step: fetch the Open Bandit Dataset sample into ``data/obd/``.

The sample ships inside the ``obp==0.4.1`` wheel. We download that wheel with pip
(the only network access liveslate ever makes, and only here), verify its sha256,
and copy the log files, item contexts and the Bernoulli-TS prior out byte for byte,
so ``data.dvc`` hashes the same on every machine. The project never imports ``obp``.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

OBP_REQUIREMENT = "obp==0.4.1"
OBP_WHEEL = "obp-0.4.1-py3-none-any.whl"
OBP_SHA256 = "87dec9caf4283c25ab13036532e0a24566f1c7bdcad1653a8ded43b2f5ef8208"
CAMPAIGNS = ("all", "men", "women")
POLICIES = ("random", "bts")
PRIOR_MEMBER = "obp/policy/conf/prior_bts.yaml"


def wanted_members() -> dict[str, str]:
    """Wheel member → path under data/obd/."""
    members = {PRIOR_MEMBER: "prior_bts.yaml"}
    for policy in POLICIES:
        for campaign in CAMPAIGNS:
            base = f"obp/dataset/obd/{policy}/{campaign}"
            members[f"{base}/{campaign}.csv"] = f"{policy}/{campaign}/{campaign}.csv"
            members[f"{base}/item_context.csv"] = f"{policy}/{campaign}/item_context.csv"
    return members


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def download_wheel(cache_dir: Path) -> Path:
    """Return the verified wheel, downloading it with pip if it is not cached."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    wheel = cache_dir / OBP_WHEEL
    if not wheel.exists() or sha256_of(wheel) != OBP_SHA256:
        wheel.unlink(missing_ok=True)
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", str(cache_dir), OBP_REQUIREMENT],
            check=True,
        )
    actual = sha256_of(wheel)
    if actual != OBP_SHA256:
        wheel.unlink()
        raise RuntimeError(f"{wheel}: sha256 {actual} does not match the pinned {OBP_SHA256}; refusing to use it")
    return wheel


def extract_obd(wheel: Path, target: Path) -> list[Path]:
    """Copy the wanted members into ``target`` (atomically per file); return the written paths."""
    written = []
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        for member, relative in wanted_members().items():
            if member not in names:
                raise RuntimeError(f"{wheel}: expected member {member} is missing")
            out = target / relative
            out.parent.mkdir(parents=True, exist_ok=True)
            tmp = out.with_suffix(out.suffix + ".tmp")
            with archive.open(member) as src, tmp.open("wb") as dst:
                shutil.copyfileobj(src, dst)
            tmp.replace(out)
            written.append(out)
    return written


def obd_present(target: Path) -> bool:
    return all((target / rel).exists() for rel in wanted_members().values())
