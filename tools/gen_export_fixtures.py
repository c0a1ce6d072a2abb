#!/usr/bin/env python3
"""Reference embeddings for the export fixtures (tests/suite/export_hf.rs), from transformers itself.

The folders tests/fixtures/exports/<case>/ are written by otclip (`OTCLIP_BLESS_EXPORTS=1` on the
export_hf tests). For each, this script loads the folder with
`transformers.AutoModel.from_pretrained(dir, trust_remote_code=True)`, fails unless the loading
info is clean (no missing, unexpected or mismatched weights, no errors), embeds fixed token ids
(padded, so the mask matters) and pixel values, and writes reference.safetensors beside the export:
input_ids, attention_mask, pixel_values, text_embeds, image_embeds, logits_per_image.

    ~/.cache/otclip/py/bin/python tools/gen_export_fixtures.py            # every case
    ~/.cache/otclip/py/bin/python tools/gen_export_fixtures.py --check DIR

--check DIR compares an export of a trained run that the export_hf test kept
(`OTCLIP_KEEP_EXPORT=DIR`) with otclip's own embeddings written beside it, and checks that
AutoTokenizer gives otclip's token ids and that AutoImageProcessor reads the processor config.
Versions: torch 2.x, transformers 5.x, safetensors (tools/requirements.txt).
"""
import argparse
import json
import os
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch
from safetensors.torch import load_file, save_file
from transformers import AutoModel

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "exports")
TOLERANCE = 1e-4


def load(path):
    """The model of an export folder; an error unless every weight loaded and none was left over."""
    model, info = AutoModel.from_pretrained(path, trust_remote_code=True, output_loading_info=True)
    bad = {k: v for k, v in info.items() if v}
    if bad:
        sys.exit(f"{path}: transformers' loading info is not clean: {bad}")
    if type(model).__name__ != "OtclipModel":
        sys.exit(f"{path}: AutoModel gave {type(model).__name__}, expected OtclipModel")
    return model.eval()


def inputs(config, seed):
    """Three captions of 7, 5 and 2 tokens (padded with the pad id) and two images."""
    gen = torch.Generator().manual_seed(seed)
    text, vision = config.text_config, config.vision_config
    pad, vocab = text["pad_token_id"], text["vocab_size"]
    lengths = [7, 5, 2]
    ids = torch.randint(0, vocab, (len(lengths), max(lengths)), generator=gen)
    ids = torch.where(ids == pad, (ids + 1) % vocab, ids)
    mask = (torch.arange(max(lengths))[None, :] < torch.tensor(lengths)[:, None]).long()
    ids = torch.where(mask.bool(), ids, torch.full_like(ids, pad))
    size = vision["image_size"]
    pixels = torch.randn(2, vision.get("num_channels", 3), size, size, generator=gen)
    return ids, mask, pixels


def reference(case, path):
    model = load(path)
    ids, mask, pixels = inputs(model.config, seed=sum(map(ord, case)))
    with torch.no_grad():
        text = model.get_text_features(input_ids=ids, attention_mask=mask)
        image = model.get_image_features(pixel_values=pixels)
        out = model(input_ids=ids, attention_mask=mask, pixel_values=pixels)
    for name, e in (("text", text), ("image", image)):
        if not torch.allclose(e.norm(dim=-1), torch.ones(e.shape[0]), atol=1e-5):
            sys.exit(f"{case}: {name} embeddings are not L2-normalised")
    if not torch.allclose(out.logits_per_image, model.logit_scale.exp() * image @ text.T, atol=1e-5):
        sys.exit(f"{case}: forward's logits_per_image are not exp(logit_scale) * image @ text.T")
    save_file(
        {"input_ids": ids, "attention_mask": mask, "pixel_values": pixels.contiguous(), "text_embeds": text.contiguous(),
         "image_embeds": image.contiguous(), "logits_per_image": out.logits_per_image.contiguous()},
        os.path.join(path, "reference.safetensors"),
    )
    print(f"{case}: text {tuple(text.shape)}, image {tuple(image.shape)}, logit_scale {model.logit_scale.item():.4f}")


def check(path):
    """An export of a trained run against otclip's embeddings of the same inputs."""
    from transformers import AutoImageProcessor, AutoTokenizer

    model = load(path)
    ours = load_file(os.path.join(path, "otclip_embeddings.safetensors"))
    with torch.no_grad():
        text = model.get_text_features(input_ids=ours["input_ids"], attention_mask=ours["attention_mask"])
        image = model.get_image_features(pixel_values=ours["pixel_values"])
    diffs = {"text_embeds": (text - ours["text_embeds"]).abs().max().item(), "image_embeds": (image - ours["image_embeds"]).abs().max().item()}
    tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=True)
    captions = json.load(open(os.path.join(path, "otclip_captions.json")))
    encoded = tokenizer(captions, padding=True, truncation=True, return_tensors="pt")
    same_ids = torch.equal(encoded["input_ids"], ours["input_ids"]) and torch.equal(encoded["attention_mask"], ours["attention_mask"])
    with torch.no_grad():
        from_tokenizer = model.get_text_features(**encoded)
    diffs["text_embeds via AutoTokenizer"] = (from_tokenizer - ours["text_embeds"]).abs().max().item()
    processor = AutoImageProcessor.from_pretrained(path, trust_remote_code=True)
    print(f"{path}: {type(model).__name__}, {type(tokenizer).__name__}, {type(processor).__name__}")
    print(f"  tokenizer ids equal otclip's: {same_ids}")
    for name, diff in diffs.items():
        print(f"  {name}: max abs diff {diff:.3e}")
    if not same_ids or max(diffs.values()) > TOLERANCE:
        sys.exit("  FAILED")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", metavar="DIR", help="compare a kept export of a trained run with otclip's embeddings")
    args = parser.parse_args()
    if args.check:
        check(args.check)
        return
    cases = sorted(d for d in os.listdir(ROOT) if os.path.isfile(os.path.join(ROOT, d, "config.json")))
    if not cases:
        sys.exit(f"no exports under {ROOT}; write them with OTCLIP_BLESS_EXPORTS=1 (tests/suite/export_hf.rs)")
    for case in cases:
        reference(case, os.path.join(ROOT, case))


if __name__ == "__main__":
    main()
