"""KG item vectors written by the kg stage, aligned to a policy's item index by item id."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd


def load_item_vectors(path: Path, index: pd.Index) -> np.ndarray:
    """``path`` (.npz with ``vectors`` [n, d] float and ``item_ids`` [n] str) → [len(index), d] float32.

    Rows are matched by item id, never by position. Raises FileNotFoundError when the
    file is absent and ValueError naming the file and the first offending item when an
    item of the index has no vector, an id repeats, or a vector is not finite.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: KG item vectors not found; run the kg stage first, or set "
                                "use_kg: false for this policy in params.yaml")
    try:
        opened = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as err:
        raise ValueError(f"{path}: not a readable .npz archive of KG item vectors ({err})") from err
    if not isinstance(opened, np.lib.npyio.NpzFile):  # a bare .npy array saved under the .npz name
        raise ValueError(f"{path}: expected an .npz archive with arrays 'vectors' and 'item_ids', got one array")
    with opened as archive:
        missing = [key for key in ("vectors", "item_ids") if key not in archive.files]
        if missing:
            raise ValueError(f"{path}: missing array(s) {missing} (expected 'vectors' and 'item_ids')")
        try:
            vectors = np.asarray(archive["vectors"])
            item_ids = np.asarray(archive["item_ids"]).astype(str)
        except ValueError as err:
            # Object arrays would need pickle; ids must be saved as a numpy string array.
            raise ValueError(f"{path}: 'vectors' must be a float array and 'item_ids' a string array "
                             f"(np.asarray(ids, dtype=str)), not Python objects ({err})") from err
    if vectors.ndim != 2 or vectors.shape[0] != item_ids.shape[0]:
        raise ValueError(f"{path}: 'vectors' has shape {vectors.shape} but there are {item_ids.shape[0]} item_ids "
                         "(expected [n_items, d])")
    ids = pd.Index(item_ids)
    if ids.has_duplicates:
        raise ValueError(f"{path}: item id {ids[ids.duplicated()][0]!r} appears more than once")
    rows = ids.get_indexer(index.astype(str))
    if (rows < 0).any():
        absent = [str(i) for i in index[rows < 0][:5]]
        raise ValueError(f"{path}: no vector for {int((rows < 0).sum())} item(s) of the catalogue, e.g. {absent}")
    aligned = vectors[rows].astype(np.float32)
    bad = np.flatnonzero(~np.isfinite(aligned).all(axis=1))
    if bad.size:
        raise ValueError(f"{path}: the vector of item {index[int(bad[0])]!r} is not finite")
    return aligned
