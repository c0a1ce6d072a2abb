#!/usr/bin/env bash
# The fused CPU Sinkhorn against POT and PyTorch, side by side on this machine: ROUNDS (default 3)
# alternating runs of the Rust benchmark and tools/bench_pot.py, 2 threads each, then the medians
# and ratios. N = 128 and 600 (SIZES), eps = 0.05, tau = 0.5, 200 iterations.
#   tools/bench_sinkhorn.sh
set -euo pipefail
cd "$(dirname "$0")/.."
SIZES=${SIZES:-128,600} ROUNDS=${ROUNDS:-3} THREADS=${THREADS:-2}
PY=$(tools/peer-venv.sh)
cargo build --release -p otclip-kernels --example bench_sinkhorn >&2
BIN=${CARGO_TARGET_DIR:-target}/release/examples/bench_sinkhorn
OUT=$(mktemp)
for _ in $(seq "$ROUNDS"); do
    RAYON_NUM_THREADS=$THREADS "$BIN" --sizes "$SIZES" --reps 5 2>/dev/null | tail -1 >> "$OUT"
    "$PY" tools/bench_pot.py --sizes "$SIZES" --reps 5 --threads "$THREADS" | tail -1 >> "$OUT"
done
"$PY" - "$OUT" <<'PY'
import json, statistics, sys
rows = [json.loads(line) for line in open(sys.argv[1])]
def med(bench, n, key):
    return statistics.median(r[key] for row in rows if row["benchmark"] == bench for r in row["results"] if r["n"] == n and r.get(key) is not None)
sizes = sorted({r["n"] for row in rows for r in row["results"]})
print(f"medians of {len(rows) // 2} alternating rounds, milliseconds")
print(f"{'n':>5} | {'fused fwd':>9} {'POT f32':>8} {'POT f64':>8} {'fwd vs POT f32':>14} | {'fused fwd+bwd':>13} {'tensor-op':>10} {'torch':>8} {'vs tensor-op':>12} {'vs torch':>9}")
for n in sizes:
    fwd, pot32, pot64 = med("sinkhorn", n, "fused_forward_ms"), med("sinkhorn_python", n, "pot_f32_ms"), med("sinkhorn_python", n, "pot_f64_ms")
    both, ref, torch = med("sinkhorn", n, "fused_forward_backward_ms"), med("sinkhorn", n, "reference_forward_backward_ms"), med("sinkhorn_python", n, "torch_f32_fwd_bwd_ms")
    print(f"{n:>5} | {fwd:>9.1f} {pot32:>8.1f} {pot64:>8.1f} {pot32 / fwd:>13.2f}x | {both:>13.1f} {ref:>10.1f} {torch:>8.1f} {ref / both:>11.1f}x {torch / both:>8.1f}x")
PY
