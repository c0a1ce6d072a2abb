#!/usr/bin/env bash
# GradCache against the plain update, side by side: peak memory and time of one update of PAIRS
# pairs (default 512) with chunks of CHUNK (default 32), each mode in its own process, the two
# alternating ROUNDS times (default 2). Extra arguments go to the example (--width, --layers, ...).
#   tools/bench_grad_cache.sh [--width 384 --layers 6 ...]
set -euo pipefail
cd "$(dirname "$0")/.."
PAIRS=${PAIRS:-512} CHUNK=${CHUNK:-32} ROUNDS=${ROUNDS:-2}
cargo build --release --example bench_grad_cache >&2
BIN=${CARGO_TARGET_DIR:-target}/release/examples/bench_grad_cache
OUT=$(mktemp)
for _ in $(seq "$ROUNDS"); do
    "$BIN" --mode direct --pairs "$PAIRS" "$@" | tee -a "$OUT"
    "$BIN" --mode cache --pairs "$PAIRS" --chunk "$CHUNK" "$@" | tee -a "$OUT"
done
python3 - "$OUT" <<'PY'
import json, statistics, sys
rows = [json.loads(line) for line in open(sys.argv[1])]
def median(mode, key):
    return statistics.median(r[key] for r in rows if r["mode"] == mode)
t_d, t_c = median("direct", "seconds_per_update"), median("cache", "seconds_per_update")
m_d, m_c = median("direct", "peak_rss_mib"), median("cache", "peak_rss_mib")
print(f"direct: {t_d:.2f} s/update, peak {m_d:.0f} MiB")
print(f"cache:  {t_c:.2f} s/update, peak {m_c:.0f} MiB")
print(f"GradCache / direct: time {t_c / t_d:.2f}x, peak memory {m_c / m_d:.2f}x")
PY
