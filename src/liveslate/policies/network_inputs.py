"""Request batch → the tensors an item-scoring network reads (shared by SlateQ and SAC)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from liveslate.policies.base import Candidates
from liveslate.policies.encoders import FeatureEncoder


def encode_request(name: str, n_items: int, context_encoder: FeatureEncoder, contexts: pd.DataFrame,
                   candidates: Candidates) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Encode raw ``ctx_*`` contexts and check candidates against the policy's item index.

    Returns (codes [n, fields] int64, values [n, numeric] float, items [n, m] int64 with padding
    mapped to index 0 — never read —, mask [n, m] bool). Raises ValueError naming the policy,
    the row and the column when a candidate lies outside the ``n_items`` it was trained with.
    """
    if len(contexts) != candidates.n:
        raise ValueError(f"{name}: {len(contexts)} context rows but {candidates.n} candidate rows")
    outside = np.argwhere(candidates.mask & (candidates.items >= n_items))
    if outside.size:
        row, column = outside[0]
        raise ValueError(f"{name}: candidates row {row}, column {column}: item index "
                         f"{candidates.items[row, column]} is outside the {n_items} items the policy was "
                         "trained with (new items reach it at the next retrain)")
    codes, values = context_encoder.transform(contexts.reset_index(drop=True), where=f"{name} contexts")
    items = np.where(candidates.mask, candidates.items, 0)
    return (torch.from_numpy(codes), torch.from_numpy(values), torch.from_numpy(items),
            torch.from_numpy(candidates.mask))
