"""Synthetic canonical logs with known click rates, for the evaluate and backtest tests.

Two rooms of five items. Each impression is one logged row (OBD style): a uniformly
random room, slate position in 0..k-1 and item of the room, so the logging propensity
of the shown item at its position is exactly 1/5 (uniform random ordered slates of
distinct items). A click is Bernoulli(ctr[day, local item]) — no context or position
effect — so any policy's value per slot has a closed form: Σ_j π(j | position) ctr_j,
averaged over rooms and positions.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

ROOMS = ("r0", "r1")
ITEMS = 5
SLATE = 3
START = "2024-03-01"


def catalog() -> pd.DataFrame:
    ids = [f"{room}/{i}" for room in ROOMS for i in range(ITEMS)]
    return pd.DataFrame({
        "item_id": pd.array(ids, dtype="string"),
        "room_id": pd.array([i.split("/")[0] for i in ids], dtype="string"),
        "first_seen": pd.Series(pd.Timestamp("2024-01-01"), index=range(len(ids))),
        "cat_shape": pd.array([f"s{int(i.split('/')[1]) % 2}" for i in ids], dtype="string"),
        "num_size": np.linspace(1.0, 2.0, len(ids)),
    })


def logs(ctr: np.ndarray, rows_per_day: int, seed: int, policy: str = "random@sim") -> pd.DataFrame:
    """Canonical logs over ``len(ctr)`` days; ctr [days, ITEMS] click rate of each room-local item per day."""
    ctr = np.atleast_2d(np.asarray(ctr, dtype=float))
    rng = np.random.default_rng(seed)
    parts = []
    for day in range(ctr.shape[0]):
        n = rows_per_day
        rooms = rng.choice(ROOMS, size=n)
        local = rng.integers(0, ITEMS, size=n)
        clicks = (rng.random(n) < ctr[day, local]).astype("int8")
        seconds = np.sort(rng.uniform(0, 86_399, size=n))
        parts.append(pd.DataFrame({
            "impression_id": [f"{policy}-{seed}-{day}-{i}" for i in range(n)],
            "session_id": pd.Series(pd.NA, index=range(n), dtype="string"),
            "step": pd.Series(pd.NA, index=range(n), dtype="Int32"),
            "ts": pd.Timestamp(START, tz="UTC") + pd.Timedelta(days=day) + pd.to_timedelta(seconds, unit="s"),
            "room_id": pd.array(rooms, dtype="string"),
            "item_id": pd.array([f"{r}/{i}" for r, i in zip(rooms, local)], dtype="string"),
            "position": rng.integers(0, SLATE, size=n).astype("int16"),
            "click": clicks,
            "reward": clicks.astype("float32"),
            "propensity": np.full(n, 1.0 / ITEMS),
            "policy": pd.array([policy] * n, dtype="string"),
            "slate_probability": np.nan,
            "candidates": None,
            "ctx_user": pd.array(rng.choice(["u0", "u1"], size=n), dtype="string"),
        }))
    return pd.concat(parts, ignore_index=True)


def prior_yaml(alpha: list[float], beta: list[float]) -> str:
    """A BTS prior file in the OBD layout (room → alpha/beta by local item id), the same for both rooms."""
    import yaml

    return yaml.safe_dump({room: {"alpha": list(alpha), "beta": list(beta)} for room in ROOMS})
