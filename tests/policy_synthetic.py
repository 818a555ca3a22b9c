"""Synthetic canonical logs with a known click model, for policy and train-stage tests.

Two rooms of six items each; item colour c0/c1 alternates; viewers are u0/u1.
True CTR: ``HIGH`` when (viewer is u1) XOR (item colour is c1), else ``LOW`` — an
interaction no main-effects model can express. Positions and ``ctx_level`` carry no signal.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from liveslate import schema

HIGH, LOW = 0.7, 0.1
ROOMS = ("r0", "r1")
ITEMS_PER_ROOM = 6


def catalog() -> pd.DataFrame:
    ids = [f"{room}/{i}" for room in ROOMS for i in range(ITEMS_PER_ROOM)]
    return pd.DataFrame({
        "item_id": pd.array(ids, dtype="string"),
        "room_id": pd.array([i.split("/")[0] for i in ids], dtype="string"),
        "first_seen": pd.Series(pd.Timestamp("2024-01-01"), index=range(len(ids))),
        "cat_colour": pd.array([f"c{int(i.split('/')[1]) % 2}" for i in ids], dtype="string"),
        "num_price": np.linspace(1.0, 12.0, len(ids)),
    })


def true_ctr(users: np.ndarray, colours: np.ndarray) -> np.ndarray:
    return np.where((users == "u1") ^ (colours == "c1"), HIGH, LOW)


def logs(n: int, seed: int, start: str = "2024-01-02", prefix: str = "imp", slate_size: int = 3) -> pd.DataFrame:
    """n one-row impressions (OBD style) drawn uniformly: room, item of the room, position, viewer."""
    rng = np.random.default_rng(seed)
    cat = catalog()
    rooms = rng.choice(ROOMS, size=n)
    local = rng.integers(0, ITEMS_PER_ROOM, size=n)
    item_ids = np.char.add(np.char.add(rooms.astype(str), "/"), local.astype(str))
    colours = cat.set_index("item_id").loc[item_ids, "cat_colour"].astype(str).to_numpy()
    users = rng.choice(["u0", "u1"], size=n)
    clicks = (rng.random(n) < true_ctr(users, colours)).astype("int8")
    frame = pd.DataFrame({
        "impression_id": [f"{prefix}{seed}-{i}" for i in range(n)],
        "session_id": pd.Series(pd.NA, index=range(n), dtype="string"),
        "step": pd.Series(pd.NA, index=range(n), dtype="Int32"),
        "ts": pd.Timestamp(start, tz="UTC") + pd.to_timedelta(np.arange(n), unit="s"),
        "room_id": rooms,
        "item_id": item_ids,
        "position": rng.integers(0, slate_size, size=n).astype("int16"),
        "click": clicks,
        "reward": clicks.astype("float32"),
        "propensity": np.full(n, 1.0 / (ITEMS_PER_ROOM * slate_size)),
        "policy": "random@synthetic",
        "slate_probability": np.nan,
        "candidates": None,
        "ctx_user": pd.array(users, dtype="string"),
        "ctx_level": rng.normal(size=n),
    })
    return schema.coerce_logs(frame)


def item_vectors(dim: int = 4, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(vectors [n_items, dim] float32, item_ids [n_items] str) in a shuffled order, as the kg stage may write."""
    cat = catalog()
    rng = np.random.default_rng(seed)
    colour = (cat["cat_colour"] == "c1").to_numpy(dtype=np.float32)
    vectors = np.concatenate([colour[:, None], rng.normal(size=(len(cat), dim - 1))], axis=1).astype(np.float32)
    order = rng.permutation(len(cat))
    return vectors[order], np.asarray(cat["item_id"].astype(str).tolist(), dtype=str)[order]
