#!/usr/bin/env bash
# The CUDA check (../shared/design/gpu.md; figures go to the book's "Performance" chapter).
# GPU machines have CUDA but no Rust toolchain and no network, for about 15 minutes, so:
#   tools/gpu-check.sh prepare     # here: builds with --features cuda, strips and gzips into .gpu/
#                                  # (git-ignored, about 25 MB: a lent machine takes 64 MiB)
#   tools/gpu-check.sh run [LOGS]  # there, from the repository root: runs .gpu/, logs into LOGS
#                                  # (default: $OUT when set, else gpu-logs/); about 6 minutes
# Every step is bounded by `timeout` and logged on its own; a failed step does not stop the rest,
# and the exit status says whether any failed.
set -uo pipefail
cd "$(dirname "$0")/.."
GPU_DIR=.gpu

prepare() {
    set -e
    export CARGO_INCREMENTAL=0
    cargo build --release -p otclip-kernels --features cuda --example bench_sinkhorn
    cargo build --release --features cuda --example bench_train_step
    local target=${CARGO_TARGET_DIR:-target}/release/examples
    rm -rf "$GPU_DIR"
    mkdir -p "$GPU_DIR"
    for bin in bench_sinkhorn bench_train_step; do
        strip -o "$GPU_DIR/$bin" "$target/$bin"
        gzip -9 "$GPU_DIR/$bin"
    done
    local kib
    kib=$(du -sk "$GPU_DIR" | cut -f1)
    echo "$GPU_DIR: $((kib / 1024)) MiB"
    [ "$kib" -lt $((60 * 1024)) ] || { echo "$GPU_DIR is over 60 MiB; a lent machine takes 64 MiB" >&2; exit 1; }
}

run() {
    local logs=${1:-${OUT:-gpu-logs}} failed=0 bin
    mkdir -p "$logs"
    BIN_DIR=$(mktemp -d)
    for bin in bench_sinkhorn bench_train_step; do
        gunzip -c "$GPU_DIR/$bin.gz" > "$BIN_DIR/$bin" && chmod +x "$BIN_DIR/$bin" || { echo "no $GPU_DIR/$bin.gz: run 'tools/gpu-check.sh prepare' first" >&2; return 2; }
    done
    step() { # NAME SECONDS COMMAND...
        local name=$1 seconds=$2
        shift 2
        echo "== $name: $*" | tee -a "$logs/summary.txt"
        local started=$SECONDS
        if timeout "$seconds" "$@" > "$logs/$name.log" 2>&1; then
            echo "   ok in $((SECONDS - started)) s" | tee -a "$logs/summary.txt"
        else
            echo "   FAILED (status $?) after $((SECONDS - started)) s; last lines:" | tee -a "$logs/summary.txt"
            tail -5 "$logs/$name.log" | tee -a "$logs/summary.txt"
            failed=1
        fi
        grep -h '^{' "$logs/$name.log" >> "$logs/results.jsonl" || true
    }
    nvidia-smi > "$logs/nvidia-smi.txt" 2>&1 || echo "no nvidia-smi" > "$logs/nvidia-smi.txt"
    head -15 "$logs/nvidia-smi.txt"
    # Peak GPU memory: nvidia-smi samples every 200 ms for the whole run.
    nvidia-smi --query-gpu=timestamp,memory.used,utilization.gpu --format=csv,noheader -lms 200 > "$logs/gpu-memory.csv" 2>/dev/null &
    local sampler=$!
    step sinkhorn-check-and-bench 150 "$BIN_DIR/bench_sinkhorn" --backend cuda --check --sizes 128,600,2048 --reps 5
    for precision in f32 bf16; do
        step "train-tiny-$precision" 60 "$BIN_DIR/bench_train_step" --device cuda --preset tiny --batch 128 --precision "$precision" --steps 10
        step "train-base-$precision" 120 "$BIN_DIR/bench_train_step" --device cuda --preset base --batch 128 --precision "$precision" --steps 5
    done
    step embed-base 60 "$BIN_DIR/bench_train_step" --device cuda --what embed --preset base --batch 256 --steps 3
    step gradcache-base-bf16 120 "$BIN_DIR/bench_train_step" --device cuda --preset base --batch 600 --chunk 100 --precision bf16 --steps 2
    kill "$sampler" 2>/dev/null
    awk -F', ' '{ gsub(/ MiB/, "", $2); if ($2 + 0 > peak) peak = $2 + 0 } END { if (peak == "") print "no GPU memory samples (no nvidia-smi?)"; else print "peak GPU memory over the run: " peak " MiB" }' "$logs/gpu-memory.csv" | tee -a "$logs/summary.txt"
    return $failed
}

case "${1:-}" in
    prepare) prepare ;;
    run) shift; run "$@" ;;
    *) echo "usage: tools/gpu-check.sh prepare | run [LOGS]" >&2; exit 2 ;;
esac
