"""Speed of SlateQ's slate optimisers at catalogue scale, against one full sort of the batch.

Run on demand: ``python benchmarks/bench_slate_optim.py``. For each (m candidates, k
positions) it prints milliseconds per 1,000 requests for the exact Dinkelbach optimum,
greedy and top-k, each as a ratio to a single ``torch.sort`` of the same [n, m] scores
measured in the same run (the floor any exact method that looks at every candidate pays),
the mean and largest number of Dinkelbach iterations, and how often (and by how much)
top-k and greedy fall short of the exact value.
"""

from __future__ import annotations

import time

import torch

from liveslate.policies.slate_optim import SlateInstance, exact_slates, greedy_slates, top_k_slates


def instance(n: int, m: int, k: int, seed: int) -> SlateInstance:
    generator = torch.Generator().manual_seed(seed)
    attraction = torch.exp(torch.randn(n, m, generator=generator, dtype=torch.float64) * 1.5 - 3.0)
    value = torch.rand(n, m, generator=generator, dtype=torch.float64) * 2.0
    weight = torch.exp(-0.3 * torch.arange(k, dtype=torch.float64))
    return SlateInstance(attraction, value, torch.ones(n, dtype=torch.float64), torch.zeros(n, dtype=torch.float64),
                         weight, torch.ones(n, m, dtype=torch.bool))


def timed(function, *args) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(3):
        start = time.perf_counter()
        out = function(*args)
        best = min(best, time.perf_counter() - start)
    return best, out


def main(n: int = 1000) -> None:
    torch.set_num_threads(1)
    print(f"slate optimisers, n={n} requests, float64, 1 thread (ratio = time / one sort of [n, m])")
    for m, k in ((80, 3), (1000, 5), (10000, 10)):
        problem = instance(n, m, k, seed=m + k)
        sort_s, _ = timed(lambda: torch.sort(problem.attraction, dim=1, descending=True, stable=True))
        exact_s, exact = timed(exact_slates, problem)
        greedy_s, greedy = timed(greedy_slates, problem)
        top_s, top = timed(top_k_slates, problem)
        steps = exact.iterations.double()
        scale = 1000.0 / n * 1000.0
        print(f"m={m:>5} k={k:>2}: sort {sort_s * scale:8.2f} ms/1000 | exact {exact_s * scale:8.2f} "
              f"({exact_s / sort_s:5.1f}x) | greedy {greedy_s * scale:8.2f} ({greedy_s / sort_s:5.1f}x) | "
              f"top-k {top_s * scale:8.2f} ({top_s / sort_s:5.1f}x) | Dinkelbach iterations mean "
              f"{steps.mean():.2f} max {int(steps.max())}")
        for name, solution in (("top-k", top), ("greedy", greedy)):
            gap = exact.value - solution.value
            worse = gap > 1e-9
            print(f"    {name:>6}: strictly worse on {int(worse.sum())}/{n} requests, mean relative loss "
                  f"{float((gap / exact.value.abs().clamp(min=1e-12))[worse].mean() if worse.any() else 0):.4f}")


if __name__ == "__main__":
    main()
