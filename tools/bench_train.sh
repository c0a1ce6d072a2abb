#!/usr/bin/env bash
# otclip's CPU training step and evaluation embedding against the PyTorch replica
# (tools/bench_train_torch.py), side by side: ROUNDS (default 3) rounds, each running otclip then
# torch for every case, 2 threads each (THREADS). Prints the medians and the ratio
# torch time / otclip time (above 1: otclip is faster), and the peak memory ratio.
#   tools/bench_train.sh                 # tiny (batch 128) and base (batch 8)
#   CASES="tiny:128" tools/bench_train.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3} THREADS=${THREADS:-2} STEPS=${STEPS:-5}
CASES=${CASES:-"tiny:128 base:8"}
EMBED_CASES=${EMBED_CASES:-"tiny:256 base:16"}
PY=$(tools/peer-venv.sh)
cargo build --release --example bench_train_step >&2
BIN=${CARGO_TARGET_DIR:-target}/release/examples/bench_train_step
OUT=$(mktemp)
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), threads $THREADS" | tee "$OUT.machine"
for round in $(seq "$ROUNDS"); do
    for case in $CASES; do
        preset=${case%%:*} batch=${case##*:}
        RAYON_NUM_THREADS=$THREADS "$BIN" --preset "$preset" --batch "$batch" --steps "$STEPS" --what train >> "$OUT"
        "$PY" tools/bench_train_torch.py --preset "$preset" --batch "$batch" --steps "$STEPS" --what train --threads "$THREADS" >> "$OUT"
    done
    for case in $EMBED_CASES; do
        preset=${case%%:*} batch=${case##*:}
        RAYON_NUM_THREADS=$THREADS "$BIN" --preset "$preset" --batch "$batch" --steps 3 --what embed >> "$OUT"
        "$PY" tools/bench_train_torch.py --preset "$preset" --batch "$batch" --steps 3 --what embed --threads "$THREADS" >> "$OUT"
    done
    echo "round $round of $ROUNDS done" >&2
done
"$PY" - "$OUT" <<'PY'
import json, statistics, sys
rows = [json.loads(line) for line in open(sys.argv[1])]
def med(impl, what, preset, key):
    return statistics.median(r[key] for r in rows if (r["impl"], r["what"], r["preset"]) == (impl, what, preset))
print("training step (forward, CLIP loss, backward, AdamW), medians over rounds of the per-round median:")
print(f"{'preset':>6} {'batch':>5} | {'otclip s':>8} {'torch s':>8} {'torch/otclip':>12} | {'best otclip':>11} {'best torch':>10} | {'peak MiB otclip':>15} {'torch':>6} {'ratio':>6}")
for preset in dict.fromkeys(r["preset"] for r in rows if r["what"] == "train"):
    o, t = med("otclip", "train", preset, "median_s"), med("torch", "train", preset, "median_s")
    bo, bt = med("otclip", "train", preset, "best_s"), med("torch", "train", preset, "best_s")
    mo, mt = med("otclip", "train", preset, "peak_rss_mib"), med("torch", "train", preset, "peak_rss_mib")
    batch = next(r["batch"] for r in rows if r["preset"] == preset and r["what"] == "train")
    print(f"{preset:>6} {batch:>5} | {o:>8.3f} {t:>8.3f} {t / o:>11.2f}x | {bo:>11.3f} {bt:>10.3f} | {mo:>15.0f} {mt:>6.0f} {mo / mt:>5.2f}x")
print("evaluation embedding (no gradients):")
print(f"{'preset':>6} | {'images/s otclip':>15} {'torch':>8} {'ratio':>6} | {'captions/s otclip':>17} {'torch':>8} {'ratio':>6}")
for preset in dict.fromkeys(r["preset"] for r in rows if r["what"] == "embed"):
    io, it = med("otclip", "embed", preset, "images_per_s"), med("torch", "embed", preset, "images_per_s")
    co, ct = med("otclip", "embed", preset, "captions_per_s"), med("torch", "embed", preset, "captions_per_s")
    print(f"{preset:>6} | {io:>15.1f} {it:>8.1f} {io / it:>5.2f}x | {co:>17.1f} {ct:>8.1f} {co / ct:>5.2f}x")
PY
