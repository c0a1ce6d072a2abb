"""Translation benchmark helper (tools/bench_translate.sh): makes the benchmark's inputs and
times transformers' `generate` on them.

  make --out DIR --sentences N   writes DIR/captions.jsonl (N English captions) and DIR/base/, a
                                 random Marian model the size of the OPUS-MT ones (d_model 512,
                                 6 + 6 layers, 8 heads, FFN 2048) with the fixture's tokenizer.
  generate --model DIR --captions FILE --batch-size B --num-beams K --max-new-tokens T
                                 translates the captions in batches (sorted by length, as otclip
                                 does) and prints `sentences/s: X`, model loading excluded.
"""
import argparse
import json
import shutil
import time
from pathlib import Path

import torch
from transformers import MarianConfig, MarianMTModel, MarianTokenizer

FIXTURE = Path(__file__).resolve().parent.parent / "tests/fixtures/translation/marian"
ANIMALS = ["dog", "cat", "horse", "child", "woman", "man", "bird", "boy", "girl", "cyclist"]
ACTIONS = ["is running", "is sitting", "is playing", "jumps", "stands", "is walking slowly"]
PLACES = ["on the green grass", "in the park", "by the river", "on a red bench", "near the old house", "under a large tree"]


def make(out: Path, sentences: int) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "captions.jsonl", "w") as f:
        for i in range(sentences):
            caption = f"A {ANIMALS[i % len(ANIMALS)]} {ACTIONS[i % len(ACTIONS)]} {PLACES[(i // 3) % len(PLACES)]} number {i}."
            f.write(json.dumps({"image": f"images/{i}.jpg", "caption": caption, "image_id": str(i)}) + "\n")
    base = out / "base"
    base.mkdir(exist_ok=True)
    tiny = MarianConfig.from_pretrained(FIXTURE)
    config = MarianConfig(
        vocab_size=tiny.vocab_size, decoder_vocab_size=tiny.vocab_size, d_model=512, encoder_layers=6, decoder_layers=6,
        encoder_attention_heads=8, decoder_attention_heads=8, encoder_ffn_dim=2048, decoder_ffn_dim=2048,
        max_position_embeddings=512, activation_function="swish", scale_embedding=True, pad_token_id=tiny.pad_token_id,
        eos_token_id=tiny.eos_token_id, decoder_start_token_id=tiny.decoder_start_token_id, forced_eos_token_id=tiny.eos_token_id,
    )
    torch.manual_seed(0)
    model = MarianMTModel(config).eval()
    with torch.no_grad():
        model.final_logits_bias.normal_(0.0, 1.0)
    model.save_pretrained(base)
    # The tokenizer and decoding defaults of the fixture (bad_words_ids, forced eos).
    for name in ["source.spm", "target.spm", "vocab.json", "tokenizer_config.json", "generation_config.json"]:
        shutil.copy(FIXTURE / name, base / name)


def generate(model_dir: Path, captions: Path, batch_size: int, num_beams: int, max_new_tokens: int) -> None:
    tokenizer = MarianTokenizer.from_pretrained(model_dir)
    model = MarianMTModel.from_pretrained(model_dir).eval()
    texts = sorted((json.loads(line)["caption"] for line in open(captions)), key=len)
    started = time.perf_counter()
    out = []
    with torch.inference_mode():
        for i in range(0, len(texts), batch_size):
            batch = tokenizer(texts[i : i + batch_size], return_tensors="pt", padding=True, truncation=True)
            ids = model.generate(**batch, num_beams=num_beams, max_new_tokens=max_new_tokens, do_sample=False)
            out.extend(tokenizer.batch_decode(ids, skip_special_tokens=True))
    seconds = time.perf_counter() - started
    print(f"sentences/s: {len(out) / seconds:.2f} ({len(out)} in {seconds:.2f}s, {torch.get_num_threads()} threads)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    m = sub.add_parser("make")
    m.add_argument("--out", type=Path, required=True)
    m.add_argument("--sentences", type=int, default=256)
    g = sub.add_parser("generate")
    g.add_argument("--model", type=Path, required=True)
    g.add_argument("--captions", type=Path, required=True)
    g.add_argument("--batch-size", type=int, default=16)
    g.add_argument("--num-beams", type=int, default=4)
    g.add_argument("--max-new-tokens", type=int, default=32)
    args = parser.parse_args()
    if args.command == "make":
        make(args.out, args.sentences)
    else:
        generate(args.model, args.captions, args.batch_size, args.num_beams, args.max_new_tokens)


if __name__ == "__main__":
    main()
