"""Content-addressed cache of encoder outputs: one ``.npy`` vector per (encoder, content) pair.

The key of an entry is sha256(encoder fingerprint ‖ content bytes). The fingerprint names
the model, the hash of its weight file and every preprocessing setting, so changing any of
them misses the cache instead of returning a stale vector. Entries are written atomically
(temporary file, then rename), so two runs sharing a cache never see half a vector.
The cache is a memo only: deleting it changes no result, only the time a run takes.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import Callable, Sequence

import numpy as np


def sha256_bytes(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


class FeatureCache:
    """Vectors of one encoder, stored under ``directory/<fingerprint[:16]>/<key[:2]>/<key>.npy``.

    ``dim`` is the vector length the encoder produces; a cached file of another shape or
    with a non-finite value is treated as corrupt: recomputed and overwritten.
    """

    def __init__(self, directory: Path, fingerprint: str, dim: int) -> None:
        self.fingerprint = fingerprint
        self.dim = dim
        self.root = Path(directory) / sha256_bytes(fingerprint.encode())[:16]
        self.hits = 0
        self.misses = 0

    def key(self, content: bytes) -> str:
        return sha256_bytes(self.fingerprint.encode() + b"\0" + content)

    def _path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.npy"

    def get(self, key: str) -> np.ndarray | None:
        path = self._path(key)
        if not path.exists():
            return None
        try:
            vector = np.load(path, allow_pickle=False)
        except (OSError, ValueError):
            return None
        if vector.shape != (self.dim,) or not np.isfinite(vector).all():
            return None
        return vector.astype(np.float32, copy=False)

    def put(self, key: str, vector: np.ndarray) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{key[:8]}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as handle:
                np.save(handle, np.asarray(vector, dtype=np.float32), allow_pickle=False)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)

    def encode(self, contents: Sequence[bytes], compute: Callable[[list[int]], np.ndarray]) -> np.ndarray:
        """[n, dim] float32 vectors of ``contents``; ``compute(rows)`` encodes the missing rows.

        ``compute`` receives positions into ``contents`` and returns [len(rows), dim]. Equal
        contents are computed once. The returned rows follow ``contents``' order.
        """
        keys = [self.key(c) for c in contents]
        out = np.zeros((len(contents), self.dim), dtype=np.float32)
        first_row: dict[str, int] = {}
        missing: list[int] = []
        for row, key in enumerate(keys):
            if key in first_row:
                continue
            first_row[key] = row
            cached = self.get(key)
            if cached is None:
                missing.append(row)
            else:
                out[row] = cached
        self.hits += len(first_row) - len(missing)
        self.misses += len(missing)
        if missing:
            computed = np.asarray(compute(missing), dtype=np.float32)
            if computed.shape != (len(missing), self.dim):
                raise ValueError(f"feature cache: the encoder returned shape {computed.shape}, "
                                 f"expected ({len(missing)}, {self.dim})")
            if not np.isfinite(computed).all():
                raise ValueError("feature cache: the encoder returned a non-finite value; nothing was cached")
            for row, vector in zip(missing, computed):
                out[row] = vector
                self.put(keys[row], vector)
        for row, key in enumerate(keys):
            if first_row[key] != row:
                out[row] = out[first_row[key]]
        return out
