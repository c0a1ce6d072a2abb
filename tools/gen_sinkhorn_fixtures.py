#!/usr/bin/env python3
"""Generate the golden fixtures for otclip's Sinkhorn solver and OT losses.

What it writes (paths relative to the repository root):

  tests/fixtures/sinkhorn/
      manifest.json            one entry per case (see `sinkhorn_cases`)
      <case>_x.npy, _y.npy     float64 embeddings, rows L2-normalised, shape [n, 8] / [m, 8]
      <case>_plan.npy          POT's transport plan Gamma after exactly 200 iterations
                               (float64, or float32 for n = 600 to keep the repository small)
      <case>_f.npy, _g.npy     float64 potentials of the log-domain iteration of
                               design/losses.md section 4 (f updated first, then g)
      <case>_f_pot_order.npy,  balanced cases only: the same iteration with g updated first,
      <case>_g_pot_order.npy   which is the order POT's `sinkhorn_log` uses

  tests/fixtures/losses/losses.json
      small CLIP / SigLIP / SIGROT / "+UOT" cases with all inputs and outputs, computed in
      NumPy (float64) from the formulas of design/losses.md sections 1-3; the plan comes from POT.

Every problem uses C = 1 - x y^T and uniform marginals a = 1/n, b = 1/m. The plan of the
log-domain iteration is recovered from the potentials as

      M0_ij = C_ij - eps * log(a_i * b_j)
      Gamma_ij = exp((f_i + g_j - M0_ij) / eps)

How to run (from the repository root; about a minute on two cores):

      pip install -r tools/requirements.txt
      python3 tools/gen_sinkhorn_fixtures.py

Required packages (pinned in tools/requirements.txt): POT==0.9.7.post1, numpy==2.4.6
(POT pulls in scipy, which this script does not use directly). The versions actually used are
recorded in the manifest and in losses.json. The output is deterministic: every random draw
comes from numpy.random.default_rng with a fixed seed.

Forcing POT to run all 200 iterations: both POT solvers test their error only every 10
iterations. `sinkhorn_stabilized_unbalanced` loops `while err > stopThr`, and `err` can be
exactly 0.0 once the iteration has reached a floating-point fixed point (it happens for n = 2),
so stopThr = 0.0 or 1e-300 would stop it early. `sinkhorn_log` breaks on `err < stopThr`.
A negative threshold (STOP_THR = -1.0) never stops either. The script checks the count:
`sinkhorn_log` reports it as log["niter"] (0-based index of the last iteration), and for the
stabilised unbalanced solver, which reports no count, it counts the backend's `dot` calls
(three per iteration in POT 0.9.7).
"""

from __future__ import annotations

import contextlib
import json
import warnings
from pathlib import Path

import numpy as np
import ot

ROOT = Path(__file__).resolve().parent.parent
SINKHORN_DIR = ROOT / "tests" / "fixtures" / "sinkhorn"
LOSSES_DIR = ROOT / "tests" / "fixtures" / "losses"

ITERS = 200
STOP_THR = -1.0  # never reached: forces POT to run all ITERS iterations (see module docstring)
DIM = 8  # embedding dimension of the Sinkhorn problems
CONVERGED_ITERS = 5000  # used only to measure how far 200 iterations are from the fixed point
POT_OK_TOL = 1e-6  # POT plan counts as matching the log-domain iteration below this rel. diff


# ----------------------------------------------------------------------------------------------
# Small helpers
# ----------------------------------------------------------------------------------------------


def l2_normalise_rows(z: np.ndarray) -> np.ndarray:
    return z / np.linalg.norm(z, axis=1, keepdims=True)


def random_problem(n: int, m: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """x [n, DIM], y [m, DIM] standard normal with L2-normalised rows; C = 1 - x y^T."""
    rng = np.random.default_rng(seed)
    x = l2_normalise_rows(rng.standard_normal((n, DIM)))
    y = l2_normalise_rows(rng.standard_normal((m, DIM)))
    return x, y, 1.0 - x @ y.T


def logsumexp(z: np.ndarray, axis: int) -> np.ndarray:
    """Stable log-sum-exp along `axis`: subtract the maximum first."""
    zmax = np.max(z, axis=axis, keepdims=True)
    out = zmax + np.log(np.sum(np.exp(z - zmax), axis=axis, keepdims=True))
    return np.squeeze(out, axis=axis)


def max_rel_diff(reference: np.ndarray, other: np.ndarray) -> float:
    """max |reference - other| / max |reference|."""
    return float(np.max(np.abs(reference - other)) / np.max(np.abs(reference)))


def uniform(k: int) -> np.ndarray:
    return np.full(k, 1.0 / k)


# ----------------------------------------------------------------------------------------------
# Independent NumPy log-domain Sinkhorn (design/losses.md section 4)
# ----------------------------------------------------------------------------------------------


def logdomain_sinkhorn(a, b, C, eps, tau, iters, g_first=False):
    """Log-domain (unbalanced) Sinkhorn with KL marginal penalties.

    tau=None means balanced (phi = 1). With g_first=False this is exactly losses.md section 4:
        f_i <- phi * (eps log a_i - eps LSE_j((g_j - M0_ij) / eps))
        g_j <- phi * (eps log b_j - eps LSE_i((f_i - M0_ij) / eps))
    g_first=True swaps the two updates inside each iteration (POT `sinkhorn_log` order).
    Returns (f, g, plan).
    """
    phi = 1.0 if tau is None else tau / (tau + eps)
    M0 = C - eps * np.log(np.outer(a, b))
    f = np.zeros(len(a))
    g = np.zeros(len(b))

    def update_f(g):
        return phi * (eps * np.log(a) - eps * logsumexp((g[None, :] - M0) / eps, axis=1))

    def update_g(f):
        return phi * (eps * np.log(b) - eps * logsumexp((f[:, None] - M0) / eps, axis=0))

    for _ in range(iters):
        if g_first:
            g = update_g(f)
            f = update_f(g)
        else:
            f = update_f(g)
            g = update_g(f)
    plan = np.exp((f[:, None] + g[None, :] - M0) / eps)
    return f, g, plan


# ----------------------------------------------------------------------------------------------
# POT reference solvers, with an iteration-count check
# ----------------------------------------------------------------------------------------------


@contextlib.contextmanager
def counting_backend_dot():
    """Count calls to POT's NumPy backend `dot` while the block runs."""
    cls = ot.backend.NumpyBackend
    original = cls.dot
    counter = {"calls": 0}

    def counted(self, p, q):
        counter["calls"] += 1
        return original(self, p, q)

    cls.dot = counted
    try:
        yield counter
    finally:
        cls.dot = original


def pot_unbalanced(a, b, C, eps, tau):
    """POT sinkhorn_unbalanced, stabilised, KL reg; returns (plan, iterations run)."""
    with warnings.catch_warnings(record=True) as caught, counting_backend_dot() as dots:
        warnings.simplefilter("always")
        plan = ot.unbalanced.sinkhorn_unbalanced(
            a, b, C, reg=eps, reg_m=tau, method="sinkhorn_stabilized", reg_type="kl",
            numItermax=ITERS, stopThr=STOP_THR,
        )
    numerical = [w for w in caught if "Numerical errors" in str(w.message)]
    if numerical:
        raise RuntimeError(f"POT stopped on a numerical error: {numerical[0].message}")
    if dots["calls"] % 3 != 0:
        raise RuntimeError(f"unexpected number of dot calls ({dots['calls']}); POT changed?")
    return plan, dots["calls"] // 3


def pot_balanced(a, b, C, eps):
    """POT sinkhorn with method sinkhorn_log; returns (plan, iterations run)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "did not converge" is expected: we stop at ITERS
        plan, log = ot.sinkhorn(
            a, b, C, reg=eps, method="sinkhorn_log", numItermax=ITERS, stopThr=STOP_THR,
            log=True,
        )
    return plan, int(log["niter"]) + 1


# ----------------------------------------------------------------------------------------------
# Sinkhorn fixtures
# ----------------------------------------------------------------------------------------------


def case_name(n, m, eps, tau):
    kind = "bal" if tau is None else "uot"
    size = f"n{n}" if n == m else f"n{n}x{m}"
    return f"{kind}_{size}_eps{eps:g}"


def sinkhorn_cases():
    """(n, m, eps, tau) for every case; tau=None is balanced."""
    cases = []
    for n in (2, 7, 64, 600):
        cases.append((n, n, 0.05, 0.5))
    for n in (2, 7, 64, 600):
        cases.append((n, n, 0.05, None))
    for n in (7, 64):
        for eps in (0.01, 0.1):
            cases.append((n, n, eps, 0.5))
    for eps in (0.01, 0.1):
        cases.append((64, 64, eps, None))
    cases.append((7, 11, 0.05, 0.5))
    return cases


def build_sinkhorn_case(index, n, m, eps, tau):
    name = case_name(n, m, eps, tau)
    seed = 1000 + index
    x, y, C = random_problem(n, m, seed)
    a, b = uniform(n), uniform(m)

    if tau is None:
        pot_plan, pot_iters = pot_balanced(a, b, C, eps)
        method = "ot.sinkhorn(method='sinkhorn_log')"
        pot_update_order = "g_then_f"
    else:
        pot_plan, pot_iters = pot_unbalanced(a, b, C, eps, tau)
        method = "ot.unbalanced.sinkhorn_unbalanced(method='sinkhorn_stabilized', reg_type='kl')"
        pot_update_order = "f_then_g"
    if pot_iters != ITERS:
        raise RuntimeError(f"{name}: POT ran {pot_iters} iterations, expected {ITERS}")

    f, g, plan_ld = logdomain_sinkhorn(a, b, C, eps, tau, ITERS)
    f_po, g_po, plan_po = logdomain_sinkhorn(a, b, C, eps, tau, ITERS, g_first=(tau is None))
    _, _, plan_conv = logdomain_sinkhorn(a, b, C, eps, tau, CONVERGED_ITERS)

    diff_ld = max_rel_diff(pot_plan, plan_ld)
    diff_po = max_rel_diff(pot_plan, plan_po)
    pot_ok = diff_po < POT_OK_TOL

    plan_dtype = np.float32 if n > 64 else np.float64
    files = {key: f"{name}_{key}.npy" for key in ("x", "y", "plan", "f", "g")}
    arrays = {"x": x, "y": y, "plan": pot_plan.astype(plan_dtype), "f": f, "g": g}
    if tau is None:
        files["f_pot_order"] = f"{name}_f_pot_order.npy"
        files["g_pot_order"] = f"{name}_g_pot_order.npy"
        arrays["f_pot_order"], arrays["g_pot_order"] = f_po, g_po
    for key, arr in arrays.items():
        np.save(SINKHORN_DIR / files[key], arr)

    entry = {
        "name": name,
        "n": n,
        "m": m,
        "eps": eps,
        "tau": tau,
        "iters": ITERS,
        "method": method,
        "seed": seed,
        "plan_dtype": np.dtype(plan_dtype).name,
        "numpy_logdomain_max_rel_diff": diff_ld,
        "pot_update_order": pot_update_order,
        "numpy_logdomain_pot_order_max_rel_diff": diff_po,
        "logdomain_200_vs_converged_max_rel_diff": max_rel_diff(plan_conv, plan_ld),
        "pot_plan_matches_logdomain": bool(pot_ok),
        "plan_mass_pot": float(pot_plan.sum()),
        "plan_mass_logdomain": float(plan_ld.sum()),
        "files": files,
    }
    if not pot_ok:
        entry["note"] = (
            "POT's plan is not the result of the log-domain iteration (and is far from the "
            "fixed point). sinkhorn_stabilized_unbalanced absorbs max(u), max(v) into the "
            "scalar offsets alpha, beta whenever u or v exceeds 1e5 and then resets v to ones "
            "instead of v / max(v), discarding v's shape; at this eps the absorption fires "
            "again and again, so the iteration never settles. (The 1e-16 POT adds to K v and "
            "K^T u also matters here: K v underflows to ~1e-34 in the first iteration.) "
            "Compare the Rust solver with the plan rebuilt from f, g instead."
        )
    return entry


def write_sinkhorn_fixtures():
    SINKHORN_DIR.mkdir(parents=True, exist_ok=True)
    entries = [build_sinkhorn_case(i, *case) for i, case in enumerate(sinkhorn_cases())]
    manifest = {
        "generator": "tools/gen_sinkhorn_fixtures.py",
        "pot_version": ot.__version__,
        "numpy_version": np.__version__,
        "problem": "x, y ~ N(0, I) rows L2-normalised (numpy default_rng(seed), x drawn first); "
                   "C = 1 - x @ y.T; a = 1/n, b = 1/m; float64",
        "stop_thr": STOP_THR,
        "plan_from_potentials": "Gamma_ij = exp((f_i + g_j - M0_ij) / eps), "
                                "M0_ij = C_ij - eps * log(a_i * b_j); this holds for f/g and "
                                "f_pot_order/g_pot_order (POT's own log_u, log_v differ from "
                                "these by the eps*log(a), eps*log(b) offsets)",
        "update_orders": "f, g files: f then g in every iteration (losses.md section 4); "
                         "f_pot_order, g_pot_order (balanced only): g then f, as POT's "
                         "sinkhorn_log does. POT's stabilised unbalanced solver updates u (f) "
                         "first, so for unbalanced cases f, g already follow POT's order.",
        "max_rel_diff": "max |Gamma_POT - Gamma_numpy| / max |Gamma_POT| (float64, before any "
                        "float32 cast)",
        "cases": entries,
    }
    with open(SINKHORN_DIR / "manifest.json", "w") as fh:
        json.dump(manifest, fh, indent=2)
        fh.write("\n")
    return manifest


# ----------------------------------------------------------------------------------------------
# Losses (design/losses.md sections 1-3), float64
# ----------------------------------------------------------------------------------------------


def log_softmax_rows(L):
    return L - logsumexp(L, axis=1)[:, None]


def soft_ce_rows(L, T):
    """Row-averaged soft-label cross-entropy: mean_i -sum_j T_ij log softmax_j(L_i.)."""
    return float(np.mean(-np.sum(T * log_softmax_rows(L), axis=1)))


def same_image(image_ids):
    ids = np.asarray(image_ids)
    return ids[:, None] == ids[None, :]


def clip_loss(x, y, image_ids, s):
    """Section 1: multi-positive symmetric CLIP loss."""
    L = s * x @ y.T
    same = same_image(image_ids)
    G = same / same.sum(axis=1, keepdims=True)
    return 0.5 * (soft_ce_rows(L, G) + soft_ce_rows(L.T, G.T))


def siglip_loss(x, y, image_ids, s, bias):
    """Section 2: multi-positive SigLIP loss, averaged over rows."""
    same = same_image(image_ids)
    z = np.where(same, 1.0, -1.0)
    w = np.where(same, 1.0 / same.sum(axis=1, keepdims=True), 1.0)
    logits = s * x @ y.T + bias
    log_sigmoid = -np.logaddexp(0.0, -z * logits)
    return float(np.mean(-np.sum(w * log_sigmoid, axis=1)))


def teacher_graph(A, B):
    """Section 3.4: S = 1/4 (A + B)(A + B)^T."""
    return 0.25 * (A + B) @ (A + B).T


def softmax_rows(Z):
    return np.exp(log_softmax_rows(Z))


def gkl(P, Q):
    """Generalised KL, sum_ij P (log P - log Q) - P + Q, with 0 log 0 = 0."""
    safe_P = np.where(P > 0, P, 1.0)
    p_log_p = np.where(P > 0, P * np.log(safe_P), 0.0)
    return float(np.sum(p_log_p - P * np.log(Q) - P + Q))


def sigrot_loss(P, Q):
    """Section 3.6: 1/2 [GKL(P || Q) + GKL(P^T || Q)] / n."""
    n = P.shape[0]
    return 0.5 * (gkl(P, Q) + gkl(P.T, Q)) / n


def uot_loss(x, y, s, P):
    """"+UOT" baseline: 1/2 [CE(L, P) + CE(L^T, P^T)], L = s x y^T, P used as given."""
    L = s * x @ y.T
    return 0.5 * (soft_ce_rows(L, P) + soft_ce_rows(L.T, P.T))


def loss_case(name, image_ids, seed, s, siglip_scale, siglip_bias, kappa, kappa_source,
              d=5, teacher_dim=4, eps=0.05, tau=0.5):
    rng = np.random.default_rng(seed)
    n = len(image_ids)
    # Texts near their images so that the positives score higher than the negatives.
    x = l2_normalise_rows(rng.standard_normal((n, d)))
    y = l2_normalise_rows(x + 0.8 * rng.standard_normal((n, d)))
    # Teacher: one image vector per distinct id (repeated per pair), one caption vector per pair.
    unique_ids = sorted(set(image_ids))
    image_vecs = l2_normalise_rows(rng.standard_normal((len(unique_ids), teacher_dim)))
    B = image_vecs[[unique_ids.index(i) for i in image_ids]]
    A = l2_normalise_rows(B + 0.7 * rng.standard_normal((n, teacher_dim)))

    C = 1.0 - x @ y.T
    a = uniform(n)
    gamma, pot_iters = pot_unbalanced(a, a, C, eps, tau)
    assert pot_iters == ITERS
    _, _, gamma_ld = logdomain_sinkhorn(a, a, C, eps, tau, ITERS)
    P = n * gamma
    S = teacher_graph(A, B)
    Q = softmax_rows(kappa * S)

    clip = clip_loss(x, y, image_ids, s)
    siglip = siglip_loss(x, y, image_ids, siglip_scale, siglip_bias)
    sigrot = sigrot_loss(P, Q)
    return {
        "name": name,
        "inputs": {
            "n": n,
            "d": d,
            "x": x.tolist(),
            "y": y.tolist(),
            "image_ids": list(image_ids),
            "logit_scale_exp": s,
            "siglip_scale": siglip_scale,
            "siglip_bias": siglip_bias,
            "teacher_A": A.tolist(),
            "teacher_B": B.tolist(),
            "kappa": kappa,
            "kappa_source": kappa_source,
            "eps": eps,
            "tau": tau,
            "iters": ITERS,
        },
        "outputs": {
            "clip": clip,
            "siglip": siglip,
            "plan_P": P.tolist(),
            "teacher_S": S.tolist(),
            "target_Q": Q.tolist(),
            "sigrot": sigrot,
            "uot": uot_loss(x, y, s, P),
            "clip_plus_sigrot": 0.1 * clip + sigrot,
            "siglip_plus_sigrot": 0.1 * siglip + sigrot,
        },
        "plan_P_numpy_logdomain_max_rel_diff": max_rel_diff(gamma, gamma_ld),
    }


def write_loss_fixtures():
    LOSSES_DIR.mkdir(parents=True, exist_ok=True)
    cases = [
        loss_case("n6_shared_ids", [0, 0, 1, 2, 2, 2], seed=2001, s=10.0, siglip_scale=10.0,
                  siglip_bias=-2.0, kappa=20.0, kappa_source="fixed"),
        loss_case("n9_distinct_ids", list(range(9)), seed=2002, s=10.0, siglip_scale=10.0,
                  siglip_bias=-2.0, kappa=20.0, kappa_source="fixed"),
        loss_case("n9_shared_ids_kappa_scale", [0, 1, 1, 2, 3, 3, 3, 4, 5], seed=2003,
                  s=1.0 / 0.07, siglip_scale=1.0 / 0.07, siglip_bias=-2.0, kappa=1.0 / 0.07,
                  kappa_source="scale"),
    ]
    doc = {
        "generator": "tools/gen_sinkhorn_fixtures.py",
        "pot_version": ot.__version__,
        "numpy_version": np.__version__,
        "definitions": {
            "clip": "1/2 [CE_rows(L, G) + CE_rows(L^T, G^T)], L = logit_scale_exp * x y^T, "
                    "G_ij = 1[id_i = id_j] / #{k: id_k = id_i}",
            "siglip": "mean_i -sum_j w_ij log sigmoid(z_ij (siglip_scale x_i.y_j + siglip_bias)),"
                      " z = +1 same image else -1, w = 1/#positives(row i) for positives else 1",
            "plan_P": "n * Gamma, Gamma = POT sinkhorn_unbalanced(a=b=1/n, C = 1 - x y^T, "
                      "reg=eps, reg_m=tau, method='sinkhorn_stabilized', reg_type='kl', "
                      "iters exactly)",
            "teacher_S": "1/4 (A + B)(A + B)^T",
            "target_Q": "softmax_rows(kappa * S)",
            "sigrot": "1/2 [GKL(P || Q) + GKL(P^T || Q)] / n, "
                      "GKL(P || Q) = sum P (log P - log Q) - P + Q, 0 log 0 = 0",
            "uot": "1/2 [CE_rows(L, P) + CE_rows(L^T, P^T)], L = logit_scale_exp * x y^T, "
                   "P used as is (rows not renormalised)",
            "clip_plus_sigrot": "0.1 * clip + sigrot",
            "siglip_plus_sigrot": "0.1 * siglip + sigrot",
        },
        "cases": cases,
    }
    with open(LOSSES_DIR / "losses.json", "w") as fh:
        json.dump(doc, fh, indent=1)
        fh.write("\n")
    return doc


def main():
    manifest = write_sinkhorn_fixtures()
    print(f"POT {ot.__version__}, numpy {np.__version__}")
    print(f"{'case':24s} {'f->g vs POT':>12s} {'POT order':>12s} {'200 vs conv':>12s}  POT ok")
    for c in manifest["cases"]:
        print(f"{c['name']:24s} {c['numpy_logdomain_max_rel_diff']:12.3e} "
              f"{c['numpy_logdomain_pot_order_max_rel_diff']:12.3e} "
              f"{c['logdomain_200_vs_converged_max_rel_diff']:12.3e}  "
              f"{c['pot_plan_matches_logdomain']}")
    losses = write_loss_fixtures()
    for c in losses["cases"]:
        out = c["outputs"]
        print(f"{c['name']:28s} clip {out['clip']:.6f} siglip {out['siglip']:.6f} "
              f"sigrot {out['sigrot']:.6f} uot {out['uot']:.6f} "
              f"(plan vs log-domain {c['plan_P_numpy_logdomain_max_rel_diff']:.1e})")


if __name__ == "__main__":
    main()
