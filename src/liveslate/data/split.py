"""Time split of validated logs into train / valid / test.

Impressions are ordered by their time (the earliest row of the impression) and cut
at the configured fractions, so every row of an impression lands in the same split
and every training impression is no later than every test impression.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from liveslate.config import SplitConfig

SPLITS = ("train", "valid", "test")


def split_by_time(logs: pd.DataFrame, config: SplitConfig) -> dict[str, pd.DataFrame]:
    """Return {"train", "valid", "test"} frames; no impression crosses a cut.

    Cut points are counted in impressions: with n impressions, train takes the first
    round(n·train), valid the next round(n·(train+valid)) − that, test the rest.
    """
    if logs.empty:
        raise ValueError("split: the validated logs are empty; nothing to split")
    first_ts = logs.groupby("impression_id", sort=False)["ts"].min()
    order = first_ts.reset_index().sort_values(["ts", "impression_id"], kind="mergesort")["impression_id"].to_numpy()
    n = len(order)
    cut_train = int(round(n * config.train))
    cut_valid = int(round(n * (config.train + config.valid)))
    assignment = pd.Series(np.empty(n, dtype=object), index=order)
    assignment.iloc[:cut_train] = "train"
    assignment.iloc[cut_train:cut_valid] = "valid"
    assignment.iloc[cut_valid:] = "test"
    labels = logs["impression_id"].map(assignment)
    return {name: logs[labels == name].reset_index(drop=True) for name in SPLITS}
