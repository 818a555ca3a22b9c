"""Cold-start vectors, placed items, the numeric join and standardisation, by hand."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from liveslate.kg.coldstart import cold_start_vectors, item_vectors, placed_items
from liveslate.kg.entities import EntityIndex
from liveslate.kg.features import standardise_numeric

VECTORS = np.array([[1.0, 0.0], [3.0, 0.0], [0.0, 4.0], [9.0, 9.0], [7.0, 7.0]], dtype=np.float32)
ATTRIBUTES = pd.DataFrame({
    "room_id": ["r1", "r1", "r2", "r1", "r3"],
    "cat_colour": pd.array(["red", "red", "blue", "blue", None], dtype="string"),
})


def test_cold_item_gets_the_mean_of_its_attribute_means():
    placed = np.array([True, True, True, False, True])
    out = cold_start_vectors(VECTORS, placed, ATTRIBUTES)
    # Item 3 (r1, blue): room r1 placed items 0, 1 → mean (2, 0); blue placed item 2 → (0, 4).
    np.testing.assert_allclose(out[3], [(2 + 0) / 2, (0 + 4) / 2])
    np.testing.assert_array_equal(out[placed], VECTORS[placed])


def test_cold_item_without_shared_values_gets_the_placed_mean():
    placed = np.array([True, True, True, True, False])
    out = cold_start_vectors(VECTORS, placed, ATTRIBUTES)
    # Item 4: room r3 has no placed item and no colour → mean of items 0..3 = (13/4, 13/4).
    np.testing.assert_allclose(out[4], [13 / 4, 13 / 4])


def test_no_placed_item_gives_zeros_not_an_error():
    out = cold_start_vectors(VECTORS, np.zeros(5, dtype=bool), ATTRIBUTES)
    assert (out == 0).all()
    with pytest.raises(ValueError, match="same items"):
        cold_start_vectors(VECTORS, np.ones(4, dtype=bool), ATTRIBUTES)


def test_placed_items_and_the_numeric_join():
    entities = EntityIndex(node_types=("item", "room"), ids={"item": ("a", "b", "c"), "room": ("r",)},
                           relations=(("item", "in_room", "room"),))
    # Training triples name items 0 and 2 (global 0..2) and the room (global 3).
    placed = placed_items(np.array([0, 2]), np.array([3, 3]), entities)
    assert placed.tolist() == [True, False, True]
    entity = np.array([[1, 1], [5, 5], [3, 3], [8, 8]], dtype=np.float32)
    attributes = pd.DataFrame({"room_id": ["r", "r", "r"]})
    numeric = np.array([[0.5], [-1.0], [0.5]], dtype=np.float32)
    out = item_vectors(entity, entities, placed, attributes, numeric)
    # b is cold: the mean of a and c in room r → (2, 2); then its numeric column.
    np.testing.assert_allclose(out, [[1, 1, 0.5], [2, 2, -1.0], [3, 3, 0.5]])
    assert out.dtype == np.float32


def test_standardise_numeric_by_hand():
    catalog = pd.DataFrame({"item_id": ["a", "b", "c", "d"], "num_price": [1.0, 3.0, np.nan, 5.0],
                            "num_flat": [2.0, 2.0, 2.0, 2.0]})
    features = standardise_numeric(catalog)
    assert features.columns == ("num_flat", "num_price")
    std = np.sqrt(8 / 3)  # population std of 1, 3, 5
    np.testing.assert_allclose(features.values[:, 1], [-2 / std, 0, 0, 2 / std], rtol=1e-6)
    assert (features.values[:, 0] == 0).all()
    assert features.to_json()["num_price"] == {"mean": 3.0, "std": pytest.approx(std)}


def test_non_finite_numeric_value_is_named():
    catalog = pd.DataFrame({"item_id": ["a", "b"], "num_price": [1.0, np.inf]})
    with pytest.raises(ValueError, match=r"num_price, row 1 \(item 'b'\): expected a finite number"):
        standardise_numeric(catalog)
