#!/usr/bin/env bash
# Indexing throughput: images per second that `otclip index` embeds from a folder of 224 px
# images with a ViT-B/16 + BERT-base model (the base preset), release build, on this machine.
# The model is trained for one short epoch (its weights do not change the speed); the images are
# the built-in test split's, written as PNG by a first `otclip index --split test`.
#   tools/bench_index.sh            IMAGES=256 ROUNDS=3 BATCH=32 by default
set -euo pipefail
cd "$(dirname "$0")/.."
IMAGES=${IMAGES:-256} ROUNDS=${ROUNDS:-3} BATCH=${BATCH:-32}
cargo build --release >&2
BIN=${CARGO_TARGET_DIR:-target}/release/otclip
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
"$BIN" train --config configs/synthetic_vi.toml --out "$WORK/run" \
    --set model.preset=base --set data.synthetic.image_size=224 --set optim.epochs=1 \
    --set data.synthetic.train_images=16 --set data.synthetic.val_images=8 \
    --set "data.synthetic.test_images=$IMAGES" --set optim.batch_size=8 >&2
"$BIN" index --run "$WORK/run" --split test --out "$WORK/split" --batch-size "$BATCH" >&2
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
for round in $(seq "$ROUNDS"); do
    rm -rf "$WORK/folder"
    "$BIN" index --run "$WORK/run" --images "$WORK/split/images" --out "$WORK/folder" --batch-size "$BATCH" \
        | sed -n 's/.*added in \([0-9.]*\)s, \([0-9.]*\) images\/s.*/round '"$round"': \2 images\/s (\1 s)/p'
done
