"""Cut the small, committed test samples of the two multimodal sources out of the fetched data.

Run after `liveslate fetch-data`: writes tests/data/multimodal/
- clothing_reviews_sample.parquet: every review (at most 6 each) of 60 Clothing IDs, drawn
  so that every department appears (the source table is CC0);
- fashion_mnist_sample.npz: 20 photos per class from data/fashion_mnist (images uint8
  [200, 28, 28], labels, item ids; MIT licence, notice in README.md beside it).
Deterministic (seed 0), so re-running it reproduces the same files.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "tests" / "data" / "multimodal"


def clothing_sample(rng: np.random.Generator) -> None:
    reviews = pd.read_parquet(ROOT / "data" / "clothing_text" / "WomensClothingE-CommerceReviews.parquet.brotli")
    labelled = reviews.dropna(subset=["Department Name"])
    items: list[int] = []
    for _, group in labelled.groupby("Department Name"):
        ids = np.sort(group["Clothing ID"].unique())
        items += rng.choice(ids, size=min(10, ids.size), replace=False).tolist()
    sample = reviews[reviews["Clothing ID"].isin(items)].groupby("Clothing ID", sort=False).head(6)
    sample.reset_index(drop=True).to_parquet(OUT / "clothing_reviews_sample.parquet", index=False)


def fashion_sample(rng: np.random.Generator) -> None:
    directory = ROOT / "data" / "fashion_mnist"
    with (directory / "items.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    labels = np.array([int(r["label"]) for r in rows])
    chosen = np.sort(np.concatenate([rng.choice(np.flatnonzero(labels == c), 20, replace=False) for c in range(10)]))
    images = np.stack([np.asarray(Image.open(directory / rows[i]["image"])) for i in chosen]).astype(np.uint8)
    np.savez_compressed(OUT / "fashion_mnist_sample.npz", images=images, labels=labels[chosen].astype(np.uint8),
                        item_ids=np.array([rows[i]["item_id"] for i in chosen], dtype=str))


if __name__ == "__main__":
    OUT.mkdir(parents=True, exist_ok=True)
    clothing_sample(np.random.default_rng(0))
    fashion_sample(np.random.default_rng(0))
    print(f"wrote {sorted(p.name for p in OUT.iterdir())}")
