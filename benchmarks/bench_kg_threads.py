"""KGE training speed against torch's intra-op thread count, at the OBD graph's size.

Run on demand: ``python benchmarks/bench_kg_threads.py``. For each KGE, trains 50 epochs on
random triples shaped like the OBD graph (262 entities, 7 relations, 1,004 training
triples, dim 64) with 1 thread and with every core, and prints seconds per 100 epochs with
the ratio against 1 thread measured in the same run. This is why ``kg.threads`` defaults to
1: the matrices are tiny, so extra threads add synchronisation, not speed.
"""

from __future__ import annotations

import os
import time
from dataclasses import replace

import numpy as np
import torch

from liveslate.config import KgConfig
from liveslate.kg.embed import train_kge
from liveslate.kg.entities import EntityIndex
from liveslate.kg.ranking import KnownAnswers
from liveslate.kg.triples import Triples


def obd_shaped(seed: int = 0) -> tuple[EntityIndex, dict[str, Triples]]:
    entities = EntityIndex(node_types=("item", "attribute"),
                           ids={"item": tuple(f"i{k}" for k in range(160)),
                                "attribute": tuple(f"a{k}" for k in range(102))},
                           relations=tuple(("item", f"r{k}", "attribute") for k in range(7)))
    rng = np.random.default_rng(seed)
    n = 1004
    train = Triples(rng.integers(0, 160, n), rng.integers(0, 7, n), 160 + rng.integers(0, 102, n))
    return entities, {"train": train}


def main(epochs: int = 50) -> None:
    entities, splits = obd_shaped()
    known = KnownAnswers(*splits.values())
    config = replace(KgConfig(), epochs=epochs, eval_every=epochs + 1)
    cores = os.cpu_count() or 1
    print(f"KGE training, {epochs} epochs on an OBD-shaped graph; threads 1 vs {cores}")
    for name in config.models:
        seconds = {}
        for threads in (1, cores):
            torch.set_num_threads(threads)
            start = time.perf_counter()
            train_kge(name, splits, entities, known, config, seed=0, progress=False)
            seconds[threads] = time.perf_counter() - start
        for threads, value in seconds.items():
            print(f"  {name:9s} threads={threads:2d}: {value * 100 / epochs:7.2f} s / 100 epochs"
                  f"  (ratio to 1 thread {value / seconds[1]:5.2f})")


if __name__ == "__main__":
    main()
