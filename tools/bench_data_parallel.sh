#!/usr/bin/env bash
# One worker against two, side by side: the median time per update of BATCH pairs (default 128,
# GradCache chunks of CHUNK, default 32) on the built-in data, each worker count in its own
# process, alternating ROUNDS times (default 3); and the bytes each worker sends per update.
#   tools/bench_data_parallel.sh [--updates 10]
set -euo pipefail
cd "$(dirname "$0")/.."
BATCH=${BATCH:-128} CHUNK=${CHUNK:-32} ROUNDS=${ROUNDS:-3}
cargo build --release --example bench_data_parallel >&2
BIN=${CARGO_TARGET_DIR:-target}/release/examples/bench_data_parallel
OUT=$(mktemp)
for _ in $(seq "$ROUNDS"); do
    "$BIN" --workers 1 --batch "$BATCH" --chunk "$CHUNK" "$@" | tee -a "$OUT"
    "$BIN" --workers 2 --batch "$BATCH" --chunk "$CHUNK" "$@" | tee -a "$OUT"
done
python3 - "$OUT" <<'PY'
import json, statistics, sys
rows = [json.loads(line) for line in open(sys.argv[1])]
t = {w: statistics.median(r["median_update_s"] for r in rows if r["workers"] == w) for w in (1, 2)}
sent = max(r["sent_bytes_per_update"] for r in rows if r["workers"] == 2)
print(f"1 worker:  {t[1]:.3f} s/update")
print(f"2 workers: {t[2]:.3f} s/update, {sent / 1e6:.2f} MB sent per worker per update")
print(f"2 workers / 1 worker: {t[2] / t[1]:.2f}x the time per update")
PY
