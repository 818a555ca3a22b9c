"""Encoder throughput on CPU and what the content-hash cache saves.

Run on demand: ``python benchmarks/bench_multimodal_encoders.py``. Uses the committed
Fashion-MNIST sample (200 photos) and the clothing review sample's item texts. Prints, for
EfficientNet-lite0, photos/s at 224, 112 and 64 px with the ratio against 224 px measured
in the same run (why ``kg_multimodal.image.size`` defaults to 112), then MiniLM texts/s,
and the time of a fully cached re-run of each encoder as a ratio of its first run.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from liveslate.config import ClothingTextSourceConfig
from liveslate.data.multimodal import clothing_catalog, read_clothing_reviews
from liveslate.kg.encoders.image import ImageEncoder
from liveslate.kg.encoders.text import TextEncoder

DATA = Path(__file__).resolve().parents[1] / "tests" / "data" / "multimodal"


def photos(directory: Path) -> list[Path]:
    sample = np.load(DATA / "fashion_mnist_sample.npz")
    paths = []
    for i, image in enumerate(sample["images"]):
        path = directory / f"{i:03d}.png"
        Image.fromarray(image, mode="L").save(path)
        paths.append(path)
    return paths


def timed(encode, items) -> float:
    start = time.perf_counter()
    encode(items)
    return time.perf_counter() - start


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        paths = photos(root)
        rates = {}
        for size in (224, 112, 64):
            encoder = ImageEncoder(cache_dir=None, size=size)
            encoder.encode(paths[:4])  # build the network outside the timing
            rates[size] = len(paths) / timed(encoder.encode, paths)
        for size, rate in rates.items():
            print(f"efficientnet-lite0 {size:>3} px: {rate:7.1f} photos/s  ({rate / rates[224]:.1f}x the 224-px rate)")
        cached = ImageEncoder(cache_dir=root / "cache", size=112)
        first, again = timed(cached.encode, paths), timed(ImageEncoder(root / "cache", size=112).encode, paths)
        print(f"image cache: re-run {again:.3f} s vs first run {first:.2f} s ({again / first:.3f}x)")

        texts = clothing_catalog(read_clothing_reviews(DATA / "clothing_reviews_sample.parquet"),
                                 ClothingTextSourceConfig())
        items = texts.catalog["text"].dropna().tolist()
        encoder = TextEncoder(cache_dir=root / "text")
        encoder.encode(["warm-up"])
        first = timed(encoder.encode, items)
        again = timed(TextEncoder(cache_dir=root / "text").encode, items)
        print(f"all-MiniLM-L6-v2: {len(items) / first:.1f} item texts/s (3 reviews each, ≤ 256 tokens)")
        print(f"text cache: re-run {again:.3f} s vs first run {first:.2f} s ({again / first:.3f}x)")


if __name__ == "__main__":
    main()
