"""The two multimodal catalogue sources → the canonical catalogue schema (schema.py).

Both return ``(catalog, rejects)``: ``catalog`` has ``item_id``, ``room_id``, ``first_seen``,
``cat_*``, ``num_*`` and the modality columns the source really has (``text`` for the
reviews, ``image`` for the photos; a source never gets the other's column), and
``rejects`` keeps every dropped source row or item with its reason
(columns ``level`` = "row" | "item", ``key``, ``reason``).

**Clothing reviews** (one row per review) → one item per ``Clothing ID``:
- room = the item's Division (three live rooms: general, general_petite, intimates; the
  source spells the last one "Initmates", corrected here); ``cat_department`` and
  ``cat_class`` form a hierarchy (each class lies in one department);
- an item reviewed under more than one (division, department, class) keeps the most
  frequent triple (ties: the alphabetically first), counted in ``stats``;
- ``num_rating_mean`` (1..5), ``num_recommend_share`` (0..1), ``num_log1p_reviews``;
- ``text`` = its ``reviews_in_text`` most helpful reviews (most positive feedback first,
  then source order), each "title. body", joined by newlines; null when none has words.
**Fashion-MNIST subset** (``items.csv`` written by fetch-data) → one item per photo, in one
room, with its class as ``cat_class`` and its own PNG as ``image``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from liveslate.config import ClothingTextSourceConfig, FashionMnistSourceConfig
from liveslate.data.multimodal_fetch import FASHION_CLASSES, FASHION_MANIFEST, MANIFEST_COLUMNS

CLOTHING_COLUMNS = ("Clothing ID", "Age", "Title", "Review Text", "Rating", "Recommended IND",
                    "Positive Feedback Count", "Division Name", "Department Name", "Class Name")
# Source spelling → corrected name (a typo in the published table).
DIVISION_FIXES = {"Initmates": "Intimates"}
# Every class of the reviews lies under one department: (parent, child) for the kg hierarchy.
CLOTHING_HIERARCHY = (("cat_department", "cat_class"),)
FASHION_ROOM = "fashion_mnist"
REJECT_COLUMNS = ("level", "key", "reason")


@dataclass(frozen=True)
class CatalogueSource:
    """A converted catalogue, its rejects and counts for the stage summary."""

    catalog: pd.DataFrame
    rejects: pd.DataFrame
    stats: dict[str, int]


def _rejects(rows: list[tuple[str, str, str]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=list(REJECT_COLUMNS)).astype("string")


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", name.strip().lower()).strip("_")


def _review_text(title: object, body: object) -> str | None:
    parts = [str(p).strip() for p in (title, body) if isinstance(p, str) and p.strip()]
    if not parts:
        return None
    if len(parts) == 2 and not parts[0].endswith((".", "!", "?")):
        parts[0] += "."
    return " ".join(parts)


def _finish(frame: pd.DataFrame, first_seen: str) -> pd.DataFrame:
    frame = frame.copy()
    frame["item_id"] = frame["item_id"].astype("string")
    frame["room_id"] = frame["room_id"].astype("string")
    frame["first_seen"] = pd.Series(pd.Timestamp(first_seen), index=frame.index).astype("datetime64[ns]")
    for column in ("text", "image"):
        if column in frame.columns:
            frame[column] = frame[column].astype("string")
    for column in [c for c in frame.columns if c.startswith("cat_")]:
        frame[column] = frame[column].astype("string")
    for column in [c for c in frame.columns if c.startswith("num_")]:
        frame[column] = frame[column].astype("float64")
    leading = ["item_id", "room_id", "first_seen"]
    rest = sorted(c for c in frame.columns if c not in leading)
    return frame[leading + rest].sort_values(["first_seen", "item_id"], kind="mergesort").reset_index(drop=True)


def read_clothing_reviews(path: Path) -> pd.DataFrame:
    """The reviews table; raises ValueError naming the file and the missing columns."""
    try:
        reviews = pd.read_parquet(path)
    except FileNotFoundError as err:
        raise FileNotFoundError(f"{path}: not found; run `liveslate fetch-data` (or `make data`) first") from err
    except Exception as err:  # pyarrow raises several types for a file that is not Parquet
        raise ValueError(f"{path}: not a readable Parquet file ({err})") from err
    missing = [c for c in CLOTHING_COLUMNS if c not in reviews.columns]
    if missing:
        raise ValueError(f"{path}: missing column(s) {missing}; expected the Women's Clothing E-Commerce Reviews table")
    return reviews


def clothing_catalog(reviews: pd.DataFrame, config: ClothingTextSourceConfig) -> CatalogueSource:
    """Reviews → one catalogue row per Clothing ID (see the module doc)."""
    rejected: list[tuple[str, str, str]] = []
    reviews = reviews.reset_index(drop=True)
    item = pd.to_numeric(reviews["Clothing ID"], errors="coerce")
    rating = pd.to_numeric(reviews["Rating"], errors="coerce")
    recommended = pd.to_numeric(reviews["Recommended IND"], errors="coerce")
    feedback = pd.to_numeric(reviews["Positive Feedback Count"], errors="coerce")
    checks = [
        (item.isna() | (item != item.round()), "Clothing ID: expected an integer"),
        (~rating.between(1, 5), "Rating: expected 1..5"),
        (~recommended.isin([0, 1]), "Recommended IND: expected 0 or 1"),
        (feedback.isna() | (feedback < 0), "Positive Feedback Count: expected a count >= 0"),
    ]
    bad = pd.Series(False, index=reviews.index)
    for mask, reason in checks:
        for row in np.flatnonzero(mask.to_numpy() & ~bad.to_numpy()):
            rejected.append(("row", str(row), reason))
        bad |= mask
    good = pd.DataFrame({
        "row": reviews.index[~bad],
        "item": item[~bad].astype("int64"),
        "rating": rating[~bad].astype("float64"),
        "recommended": recommended[~bad].astype("float64"),
        "feedback": feedback[~bad].astype("int64"),
        "division": reviews.loc[~bad, "Division Name"].astype(object).replace(DIVISION_FIXES),
        "department": reviews.loc[~bad, "Department Name"].astype(object),
        "class": reviews.loc[~bad, "Class Name"].astype(object),
        "text": [_review_text(t, b) for t, b in zip(reviews.loc[~bad, "Title"], reviews.loc[~bad, "Review Text"])],
    })

    # The most frequent (division, department, class) triple of each item; ties → alphabetical.
    labelled = good.dropna(subset=["division", "department", "class"])
    triples = (labelled.groupby(["item", "division", "department", "class"]).size().rename("n").reset_index()
               .sort_values(["item", "n", "division", "department", "class"],
                            ascending=[True, False, True, True, True], kind="mergesort"))
    conflicting = int((triples.groupby("item").size() > 1).sum())
    chosen = triples.drop_duplicates("item").set_index("item")
    for unlabelled in sorted(set(good["item"]) - set(chosen.index)):
        rejected.append(("item", f"clothing/{unlabelled}",
                         "no review of this item names its Division, Department and Class"))
    good = good.loc[good["item"].isin(chosen.index)]

    per_item = good.groupby("item")
    helpful = good.dropna(subset=["text"]).sort_values(["item", "feedback", "row"], ascending=[True, False, True],
                                                       kind="mergesort")
    texts = helpful.groupby("item")["text"].apply(lambda s: "\n".join(s.iloc[:config.reviews_in_text]))
    frame = pd.DataFrame({
        "item_id": [f"clothing/{i}" for i in chosen.index],
        "room_id": [f"clothing/{_slug(d)}" for d in chosen["division"]],
        "cat_department": chosen["department"].astype(str).to_numpy(),
        "cat_class": chosen["class"].astype(str).to_numpy(),
        "num_rating_mean": per_item["rating"].mean().reindex(chosen.index).to_numpy(),
        "num_recommend_share": per_item["recommended"].mean().reindex(chosen.index).to_numpy(),
        "num_log1p_reviews": np.log1p(per_item.size().reindex(chosen.index).to_numpy().astype(np.float64)),
        "text": texts.reindex(chosen.index).to_numpy(),
    })
    stats = {"reviews": len(reviews), "reviews_rejected": int(bad.sum()), "items": len(frame),
             "items_rejected": sum(1 for r in rejected if r[0] == "item"),
             "items_with_conflicting_categories": conflicting,
             "items_without_text": int(frame["text"].isna().sum())}
    return CatalogueSource(_finish(frame, config.first_seen), _rejects(rejected), stats)


def fashion_catalog(root: Path, config: FashionMnistSourceConfig) -> CatalogueSource:
    """The fetched Fashion-MNIST subset → catalogue; ``image`` paths are relative to ``root``.

    Raises FileNotFoundError when the manifest is absent and ValueError when it lacks a
    column; rows with an unknown label, a class name that disagrees with the label, a
    repeated item id or a missing photo are rejected with their reason.
    """
    directory = Path(config.directory)
    manifest = root / directory / FASHION_MANIFEST
    if not manifest.is_file():
        raise FileNotFoundError(f"{manifest}: not found; run `liveslate fetch-data` (or `make data`) first")
    items = pd.read_csv(manifest, dtype=str, keep_default_na=False)
    missing = [c for c in MANIFEST_COLUMNS if c not in items.columns]
    if missing:
        raise ValueError(f"{manifest}: missing column(s) {missing}; expected {list(MANIFEST_COLUMNS)}")
    rejected: list[tuple[str, str, str]] = []
    keep, seen = [], set()
    for row, record in items.iterrows():
        label = record["label"]
        reason = None
        if not label.isdigit() or int(label) >= len(FASHION_CLASSES):
            reason = f"label: expected 0..{len(FASHION_CLASSES) - 1}, got {label!r}"
        elif record["class_name"] != FASHION_CLASSES[int(label)]:
            reason = f"class_name: label {label} is {FASHION_CLASSES[int(label)]!r}, got {record['class_name']!r}"
        elif not record["item_id"]:
            reason = "item_id: empty"
        elif record["item_id"] in seen:
            reason = f"item_id: {record['item_id']!r} appears twice"
        elif not (root / directory / record["image"]).is_file():
            reason = f"image: {directory / record['image']} not found"
        if reason is None:
            seen.add(record["item_id"])
            keep.append(row)
        else:
            rejected.append(("row", f"{manifest.name}:{int(row) + 2}", reason))  # +2: header, 1-based lines
    kept = items.loc[keep]
    frame = pd.DataFrame({
        "item_id": kept["item_id"].to_numpy(),
        "room_id": FASHION_ROOM,
        "cat_class": kept["class_name"].to_numpy(),
        "image": [str(directory / p) for p in kept["image"]],
    })
    stats = {"rows": len(items), "rows_rejected": len(rejected), "items": len(frame)}
    return CatalogueSource(_finish(frame, config.first_seen), _rejects(rejected), stats)
