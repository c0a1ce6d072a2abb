#!/usr/bin/env bash
# Translation throughput on this CPU: `otclip translate` against transformers' `generate` on the
# same models (the tiny fixture Marian and a random OPUS-MT-sized one), same captions, batch and
# beams, interleaved; and otclip with and without its key–value cache. Prints sentences per
# second (model loading excluded on both sides) and the ratios, medians of ROUNDS rounds.
#   tools/bench_translate.sh [SENTENCES] [ROUNDS]     (defaults 128, 3; about 10 minutes on 2 cores)
set -euo pipefail
cd "$(dirname "$0")/.."
SENTENCES=${1:-128}
ROUNDS=${2:-3}
BATCH=16 BEAMS=4 TOKENS=32
PY=$(tools/peer-venv.sh)
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
CARGO_INCREMENTAL=0 cargo build --release --quiet --bin otclip
"$PY" tools/bench_translate.py make --out "$WORK" --sentences "$SENTENCES"

otclip_rate() { # MODEL [--no-cache]
    rm -f "$WORK/out.jsonl"
    target/release/otclip translate --model "$1" --data "jsonl:$WORK/captions.jsonl" --out "$WORK/out.jsonl" \
        --batch-size $BATCH --num-beams $BEAMS --max-new-tokens $TOKENS "${@:2}" | sed -n 's/.*s (\([0-9.]*\) captions\/s).*/\1/p'
}
torch_rate() { # MODEL
    "$PY" tools/bench_translate.py generate --model "$1" --captions "$WORK/captions.jsonl" \
        --batch-size $BATCH --num-beams $BEAMS --max-new-tokens $TOKENS | sed -n 's/^sentences\/s: \([0-9.]*\).*/\1/p'
}
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

echo "$SENTENCES captions, batch $BATCH, $BEAMS beams, at most $TOKENS new tokens; $(nproc) CPUs; sentences/s, median of $ROUNDS"
printf '%-8s %12s %12s %12s %14s %12s\n' model otclip transformers "otclip/tf" "otclip no-cache" "cache gain"
for name in tiny base; do
    model=$([ $name = tiny ] && echo tests/fixtures/translation/marian || echo "$WORK/base")
    : >"$WORK/ours" ; : >"$WORK/theirs" ; : >"$WORK/uncached"
    for _ in $(seq "$ROUNDS"); do
        otclip_rate "$model" >>"$WORK/ours"
        torch_rate "$model" >>"$WORK/theirs"
        otclip_rate "$model" --no-cache >>"$WORK/uncached"
    done
    ours=$(median <"$WORK/ours"); theirs=$(median <"$WORK/theirs"); uncached=$(median <"$WORK/uncached")
    printf '%-8s %12s %12s %12.2f %14s %12.2f\n' $name "$ours" "$theirs" "$(echo "$ours / $theirs" | bc -l)" "$uncached" "$(echo "$ours / $uncached" | bc -l)"
done
