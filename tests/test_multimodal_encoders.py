"""Offline text and image encoders: behaviour on real inputs, caching, and bad input."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import numpy as np
import pytest

from liveslate.kg.encoders.cache import FeatureCache

DATA = Path(__file__).parent / "data" / "multimodal"

# (title, a paraphrase of it): product titles a shop could list.
PARAPHRASES = [
    ("Red floral print summer dress", "Summer dress with a red flower pattern"),
    ("Women's black leather ankle boots", "Black leather ankle boots for women"),
    ("Cozy oversized wool sweater", "Warm, loose-fitting knitted wool jumper"),
    ("Stainless steel chef's knife", "Kitchen knife made of stainless steel"),
]


@pytest.fixture
def no_network(monkeypatch):
    """Record and refuse every outgoing connection made while the test runs."""
    attempts: list[object] = []

    def refuse(*args, **kwargs):
        attempts.append(args[1:] if len(args) > 1 else args)
        raise OSError("network access is disabled in this test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    return attempts


@pytest.fixture(scope="module")
def text_vectors():
    from liveslate.kg.encoders.text import TextEncoder

    titles = [t for pair in PARAPHRASES for t in pair]
    return TextEncoder(cache_dir=None).encode(titles)


def test_text_vectors_are_unit_length_384d(text_vectors):
    assert text_vectors.shape == (2 * len(PARAPHRASES), 384)
    np.testing.assert_allclose(np.linalg.norm(text_vectors, axis=1), 1.0, atol=1e-5)


def test_paraphrased_titles_are_closer_than_unrelated_ones(text_vectors):
    similarity = text_vectors @ text_vectors.T
    for i in range(len(PARAPHRASES)):
        paraphrase = similarity[2 * i, 2 * i + 1]
        unrelated = [similarity[2 * i, 2 * j + k] for j in range(len(PARAPHRASES)) if j != i for k in (0, 1)]
        assert paraphrase > max(unrelated), (PARAPHRASES[i], paraphrase, max(unrelated))


def test_text_model_loads_offline_without_touching_the_network(tmp_path, no_network):
    from liveslate.kg.encoders.text import TextEncoder

    vectors = TextEncoder(cache_dir=tmp_path).encode(["Navy blue linen shirt"])
    assert vectors.shape == (1, 384)
    assert os.environ["HF_HUB_OFFLINE"] == "1" and os.environ["TRANSFORMERS_OFFLINE"] == "1"
    assert no_network == []


def test_text_cache_makes_a_rerun_load_no_model(tmp_path, monkeypatch, text_vectors):
    from liveslate.kg.encoders.text import TextEncoder

    titles = [t for pair in PARAPHRASES for t in pair]
    first = TextEncoder(cache_dir=tmp_path)
    monkeypatch.setattr(TextEncoder, "_load", lambda self: _fake_model(text_vectors, titles))
    encoded = first.encode(titles)
    assert first.cache.misses == len(titles) and first.cache.hits == 0

    def refuse(self):
        raise AssertionError("the model was loaded although every text was cached")

    monkeypatch.setattr(TextEncoder, "_load", refuse)
    second = TextEncoder(cache_dir=tmp_path)
    np.testing.assert_array_equal(second.encode(titles), encoded)
    assert second.cache.hits == len(titles) and second.cache.misses == 0


class _fake_model:
    """Stands in for the loaded model in the cache test: returns the real vectors of known titles."""

    def __init__(self, vectors: np.ndarray, titles: list[str]) -> None:
        self.lookup = dict(zip(titles, vectors))

    def encode(self, texts, **kwargs):
        return np.stack([self.lookup[t] for t in texts])


def test_text_encoder_names_the_row_that_is_not_text(tmp_path):
    from liveslate.kg.encoders.text import TextEncoder

    with pytest.raises(ValueError, match=r"row 1 is '  '"):
        TextEncoder(cache_dir=tmp_path).encode(["a linen shirt", "  "])


def test_feature_cache_recomputes_a_corrupt_entry(tmp_path):
    cache = FeatureCache(tmp_path, "unit-test", dim=3)
    calls: list[list[int]] = []

    def compute(rows):
        calls.append(list(rows))
        return np.array([[1.0, 2.0, 3.0]] * len(rows))

    cache.encode([b"a", b"a", b"b"], compute)
    assert calls == [[0, 2]]  # equal contents are encoded once
    key = cache.key(b"a")
    np.save(cache._path(key), np.array([np.nan, 0.0, 0.0]))
    cache.encode([b"a"], compute)
    assert calls[-1] == [0]


# ---------------------------------------------------------------------- images


def _fashion_photos(tmp_path: Path, per_class: int) -> tuple[list[Path], np.ndarray]:
    from PIL import Image

    sample = np.load(DATA / "fashion_mnist_sample.npz")
    rows = np.concatenate([np.flatnonzero(sample["labels"] == c)[:per_class] for c in range(10)])
    paths = []
    for row in rows:
        path = tmp_path / f"{sample['item_ids'][row].replace('/', '_')}.png"
        Image.fromarray(sample["images"][row], mode="L").save(path)
        paths.append(path)
    return paths, sample["labels"][rows].astype(str)


def test_efficientnet_weights_classify_a_known_photo():
    """The packaged ImageNet weights, loaded strictly, call Grace Hopper's photo a military uniform (class 652)."""
    import matplotlib.cbook
    import torch

    from liveslate.kg.encoders.image import build_network, load_pixels

    photo = Path(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))
    network = build_network(224)
    with torch.inference_mode():
        logits = network(torch.from_numpy(load_pixels(photo, 224))[None])
    assert int(logits.argmax()) == 652


def test_efficientnet_features_separate_fashion_classes_far_better_than_chance(tmp_path):
    """Linear probe on 100 photos (10 per class), 5-fold: the accuracy must be one a chance-level
    classifier (p = 0.1 per photo) reaches with probability below 1e-6. Raw pixels are reported beside it."""
    from scipy.stats import binom

    from liveslate.kg.encoders.image import IMAGE_DIM, ImageEncoder
    from liveslate.kg.probe import linear_probe, raw_pixels

    paths, labels = _fashion_photos(tmp_path, per_class=10)
    features = ImageEncoder(cache_dir=tmp_path / "cache", size=64).encode(paths)
    assert features.shape == (100, IMAGE_DIM) and np.isfinite(features).all()
    probe = linear_probe(features, labels, folds=5, seed=0)
    pixels = linear_probe(raw_pixels(paths), labels, folds=5, seed=0)
    n = probe["items"]
    threshold = next(k for k in range(n + 1) if binom.sf(k - 1, n, 0.1) < 1e-6) / n
    print(f"\nlinear probe, 100 Fashion-MNIST photos: EfficientNet-lite0 {probe['accuracy']:.2f} "
          f"{probe['accuracy_ci']}, raw pixels {pixels['accuracy']:.2f} {pixels['accuracy_ci']}, "
          f"chance {probe['uniform']:.2f}, bar {threshold:.2f}")
    assert probe["uniform"] == pytest.approx(0.1)
    assert probe["accuracy"] >= threshold


def test_image_cache_makes_a_rerun_compute_nothing(tmp_path, monkeypatch):
    from liveslate.kg.encoders.image import ImageEncoder

    paths, _ = _fashion_photos(tmp_path, per_class=1)
    first = ImageEncoder(cache_dir=tmp_path / "cache", size=32).encode(paths)

    def refuse(self, paths):
        raise AssertionError("the network ran although every photo was cached")

    monkeypatch.setattr(ImageEncoder, "_compute", refuse)
    again = ImageEncoder(cache_dir=tmp_path / "cache", size=32)
    np.testing.assert_array_equal(again.encode(paths), first)
    # Another input size is another fingerprint: it must not reuse the 32-px vectors.
    with pytest.raises(AssertionError, match="network ran"):
        ImageEncoder(cache_dir=tmp_path / "cache", size=48).encode(paths)


def test_image_encoder_names_a_file_that_is_not_an_image(tmp_path):
    from liveslate.kg.encoders.image import ImageEncoder

    bad = tmp_path / "broken.png"
    bad.write_bytes(b"not a png")
    with pytest.raises(ValueError, match="broken.png: not a readable image"):
        ImageEncoder(cache_dir=None, size=32).encode([bad])
    with pytest.raises(ValueError, match="absent.png: image file not found"):
        ImageEncoder(cache_dir=tmp_path, size=32).encode([tmp_path / "absent.png"])
