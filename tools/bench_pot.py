#!/usr/bin/env python3
"""Times POT's `sinkhorn_unbalanced` (NumPy) and a PyTorch CPU log-domain Sinkhorn on the problems
of `cargo run --release -p otclip-kernels --example bench_sinkhorn`: C = 1 - x.y between random
unit vectors of dimension 64, uniform marginals, unbalanced KL penalty tau = 0.5, eps = 0.05,
200 iterations (no early stop), forward alone and, for torch, forward plus backward through every
iteration (autograd). Prints a table of medians and one JSON line.

    python3 tools/bench_pot.py [--sizes 128,600,2048] [--reps 5] [--threads 2]

The problems are drawn with NumPy, not the Rust generator; the timings do not depend on the
values. Versions: see tools/requirements.txt (POT, numpy, torch).
"""

import argparse
import json
import time

import numpy as np
import ot
import torch

EPS, TAU, ITERS = 0.05, 0.5, 200


def problem(n, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, (n, 64))
    y = rng.uniform(-1, 1, (n, 64))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    y /= np.linalg.norm(y, axis=1, keepdims=True)
    return 1.0 - x @ y.T


def pot(cost, dtype):
    n = cost.shape[0]
    a = np.full(n, 1.0 / n, dtype=dtype)
    cost = cost.astype(dtype)
    return ot.sinkhorn_unbalanced(a, a, cost, EPS, TAU, method="sinkhorn_stabilized", numItermax=ITERS, stopThr=0.0)


def torch_log_sinkhorn(cost):
    """The log-domain update of losses.md section 4 (alpha first), in torch ops."""
    n = cost.shape[0]
    phi = TAU / (TAU + EPS)
    log_a = torch.full((n,), -np.log(n), dtype=cost.dtype)
    neg = -cost / EPS
    alpha, beta = log_a.clone(), log_a.clone()
    for _ in range(ITERS):
        alpha = log_a - phi * torch.logsumexp(neg + beta[None, :], dim=1)
        beta = log_a - phi * torch.logsumexp(neg + alpha[:, None], dim=0)
    return torch.exp(alpha[:, None] + beta[None, :] + neg)


def torch_forward_backward(cost, weights):
    """d(sum(W * plan)) / dC through every iteration: PyTorch's autograd, unrolled."""
    cost = cost.clone().requires_grad_(True)
    (torch_log_sinkhorn(cost) * weights).sum().backward()
    return cost.grad


def median_ms(run, reps):
    run()
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        run()
        times.append((time.perf_counter() - start) * 1e3)
    return float(np.median(times))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="128,600,2048")
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    for n in [int(s) for s in args.sizes.split(",")]:
        cost = problem(n)
        cost32 = torch.from_numpy(cost.astype(np.float32))
        weights = torch.from_numpy(np.random.default_rng(1).uniform(-1, 1, cost.shape).astype(np.float32))
        rows.append({
            "n": n,
            "pot_f64_ms": median_ms(lambda: pot(cost, np.float64), args.reps),
            "pot_f32_ms": median_ms(lambda: pot(cost, np.float32), args.reps),
            "torch_f32_ms": median_ms(lambda: torch_log_sinkhorn(cost32), args.reps),
            "torch_f32_fwd_bwd_ms": median_ms(lambda: torch_forward_backward(cost32, weights), args.reps),
        })
    print(f"POT {ot.__version__} sinkhorn_unbalanced (stabilized) and torch {torch.__version__} log-domain, "
          f"eps={EPS}, tau={TAU}, {ITERS} iterations, {args.threads} threads; medians of {args.reps}")
    print(f"{'n':>6} | {'POT f64 ms':>11} {'POT f32 ms':>11} {'torch f32 ms':>13} {'torch fwd+bwd':>14}")
    for r in rows:
        print(f"{r['n']:>6} | {r['pot_f64_ms']:>11.1f} {r['pot_f32_ms']:>11.1f} {r['torch_f32_ms']:>13.1f} {r['torch_f32_fwd_bwd_ms']:>14.1f}")
    print(json.dumps({"benchmark": "sinkhorn_python", "eps": EPS, "tau": TAU, "iters": ITERS,
                      "threads": args.threads, "pot": ot.__version__, "torch": torch.__version__, "results": rows}))


if __name__ == "__main__":
    main()
