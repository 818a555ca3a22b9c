"""Dataset layer on a hand-built log: every tensor written out by hand."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from liveslate import schema
from liveslate.policies.dataset import PAD_ITEM, build_transitions, encode_rows
from liveslate.policies.encoders import FeatureEncoder, ItemFeatures, fit_context_encoder


def catalog() -> pd.DataFrame:
    # Room r has no item 2 (a gap in ids); r/3 arrives a day later, so it is appended last.
    return pd.DataFrame({
        "item_id": pd.array(["r/3", "s/0", "r/1", "r/0"], dtype="string"),
        "room_id": pd.array(["r", "s", "r", "r"], dtype="string"),
        "first_seen": pd.to_datetime(["2024-01-02", "2024-01-01", "2024-01-01", "2024-01-01"]),
        "cat_colour": pd.array(["red", "blue", "red", None], dtype="string"),
        "num_price": [10.0, 30.0, 20.0, 20.0],
    })


def log_rows(rows: list[dict]) -> pd.DataFrame:
    frame = pd.DataFrame(rows)
    frame["ts"] = pd.to_datetime(frame["ts"], utc=True)
    for column in ("impression_id", "session_id", "room_id", "item_id", "policy", "ctx_user"):
        frame[column] = frame[column].astype("string")
    frame["step"] = frame["step"].astype("Int32")
    frame["reward"] = frame["click"].astype("float32")
    return frame


def train_logs() -> pd.DataFrame:
    base = {"session_id": None, "step": None, "room_id": "r", "policy": "random@x", "propensity": 0.5,
            "candidates": None}
    return log_rows([
        {**base, "impression_id": "t1", "ts": "2024-01-01 10:00", "item_id": "r/0", "position": 0, "click": 0,
         "ctx_user": "a", "ctx_score": 1.0},
        {**base, "impression_id": "t2", "ts": "2024-01-01 11:00", "item_id": "r/1", "position": 0, "click": 1,
         "ctx_user": "b", "ctx_score": 3.0},
    ])


def eval_logs() -> pd.DataFrame:
    """A two-step session (i1 → i2), a one-step impression (i3), an unseen user, rows shuffled."""
    common = {"policy": "random@x", "propensity": 0.5, "candidates": None}
    return log_rows([
        {**common, "impression_id": "i2", "session_id": "S", "step": 1, "ts": "2024-01-03 10:05", "room_id": "r",
         "item_id": "r/1", "position": 0, "click": 0, "ctx_user": "b", "ctx_score": None,
         "candidates": ["r/1", "r/3"]},
        {**common, "impression_id": "i1", "session_id": "S", "step": 0, "ts": "2024-01-03 10:00", "room_id": "r",
         "item_id": "r/0", "position": 1, "click": 1, "ctx_user": "zz-unseen", "ctx_score": 4.0,
         "propensity": 0.25},
        {**common, "impression_id": "i3", "session_id": None, "step": None, "ts": "2024-01-03 10:02", "room_id": "s",
         "item_id": "s/0", "position": 1, "click": 1, "ctx_user": "a", "ctx_score": 2.0},
        {**common, "impression_id": "i1", "session_id": "S", "step": 0, "ts": "2024-01-03 10:00", "room_id": "r",
         "item_id": "r/3", "position": 0, "click": 0, "ctx_user": "zz-unseen", "ctx_score": 4.0},
    ])


def test_item_index_is_stable_and_encoders_have_an_unknown_bucket():
    index = schema.item_index(catalog())
    assert list(index) == ["r/0", "r/1", "s/0", "r/3"]
    encoder = fit_context_encoder(train_logs())
    assert encoder.columns == ["ctx_user", "ctx_score"]
    assert encoder.categorical[0].values == ("a", "b") and encoder.cardinalities == [3]
    assert (encoder.numeric[0].mean, encoder.numeric[0].std) == (2.0, 1.0)
    assert FeatureEncoder.from_json(encoder.to_json()) == encoder
    items = ItemFeatures.fit(catalog(), index)
    # cat_colour values sorted: blue → 1, red → 2; r/0 has none → unknown 0.
    np.testing.assert_array_equal(items.codes, [[0], [2], [1], [2]])
    np.testing.assert_allclose(items.values[:, 0], (np.array([20, 20, 30, 10]) - 20) / np.sqrt(50), rtol=1e-6)


def test_rows_and_transitions_hold_exactly_the_expected_tensors():
    index = schema.item_index(catalog())
    encoder = fit_context_encoder(train_logs())
    rows = encode_rows(eval_logs(), encoder, index)
    np.testing.assert_array_equal(rows.items, [1, 0, 2, 3])
    np.testing.assert_array_equal(rows.context_codes, [[2], [0], [1], [0]])
    np.testing.assert_array_equal(rows.context_values, np.array([[0.0], [2.0], [0.0], [2.0]], dtype=np.float32))
    np.testing.assert_array_equal(rows.positions, [0, 1, 1, 0])

    transitions = build_transitions(eval_logs(), encoder, index, slate_size=2, catalog=catalog())
    # Time order: i1 (10:00), i3 (10:02), i2 (10:05).
    assert transitions.impression_ids.tolist() == ["i1", "i3", "i2"]
    assert transitions.session_ids.tolist() == ["S", "", "S"]
    np.testing.assert_array_equal(transitions.slate_items, [[3, 0], [PAD_ITEM, 2], [1, PAD_ITEM]])
    np.testing.assert_array_equal(transitions.slate_mask, [[True, True], [False, True], [True, False]])
    np.testing.assert_array_equal(transitions.clicks, [[0, 1], [0, 1], [0, 0]])
    np.testing.assert_array_equal(transitions.propensities, [[0.5, 0.25], [0, 0.5], [0.5, 0]])
    np.testing.assert_array_equal(transitions.context_codes, [[0], [1], [2]])
    np.testing.assert_array_equal(transitions.context_values, np.array([[2.0], [0.0], [0.0]], dtype=np.float32))
    np.testing.assert_array_equal(transitions.next_index, [2, -1, -1])
    np.testing.assert_array_equal(transitions.done, [False, True, True])
    np.testing.assert_array_equal(transitions.next_slate_items, [[1, PAD_ITEM], [PAD_ITEM, PAD_ITEM],
                                                                 [PAD_ITEM, PAD_ITEM]])
    # Candidates: room r's whole catalogue [0, 1, 3]; room s → [2]; i2 logged its own list.
    np.testing.assert_array_equal(transitions.candidates.items, [[0, 1, 3], [2, 0, 0], [1, 3, 0]])
    np.testing.assert_array_equal(transitions.candidates.mask,
                                  [[True, True, True], [True, False, False], [True, True, False]])


def test_one_step_logs_are_terminal():
    index = schema.item_index(catalog())
    transitions = build_transitions(train_logs(), fit_context_encoder(train_logs()), index, slate_size=3)
    np.testing.assert_array_equal(transitions.done, [True, True])
    assert transitions.candidates is None


@pytest.mark.parametrize("change, message", [
    (lambda f: f.assign(item_id=f["item_id"].where(f.index != 2, "r/2")), "row 2: item_id 'r/2' is not in"),
    (lambda f: f.assign(position=f["position"].where(f.index != 0, 5)), "position 5 is outside 0..1"),
    (lambda f: f.assign(position=[0, 0, 1, 0]), "impression 'i1' logs position 0 twice"),
    (lambda f: f.assign(step=pd.array([0, 0, None, 0], dtype="Int32")), "session 'S' has step 0 on more than one"),
    (lambda f: f.assign(ctx_user=["b", "x", "a", "y"]), "impression 'i1' has different context values"),
])
def test_bad_logs_are_rejected_with_their_row(change, message):
    index = schema.item_index(catalog())
    with pytest.raises(ValueError, match=message):
        build_transitions(change(eval_logs()), fit_context_encoder(train_logs()), index, slate_size=2)
