#!/usr/bin/env python3
"""The PyTorch side of tools/bench_train.sh: a faithful replica of otclip's preset dual encoder,
timed the way `examples/bench_train_step.rs` times otclip, printing the same JSON line.

The replica has otclip's shapes and layers: a ViT (patch convolution, class token, learned
positions, pre-norm layers, exact GELU, final LayerNorm, class-token pooling) and a BERT (word,
position and type embeddings, post-norm layers, exact GELU, masked mean pooling), bias-free
linear heads, the learnable temperature, the multi-positive CLIP loss with five captions per image,
and AdamW in otclip's four parameter groups (backbone or head, with or without weight decay;
lr 1e-3, betas (0.9, 0.98), eps 1e-6, decay 0.05, as configs/synthetic_vi.toml). Dropout is the
preset's (0 for tiny, 0.1 for base).

    python3 tools/bench_train_torch.py --preset tiny --batch 128 --what train [--threads 2]
"""

import argparse
import json
import math
import resource
import time

import torch
from torch import nn
import torch.nn.functional as F

VOCAB = 1000
PRESETS = {
    # image size, patch, width, layers, heads, mlp, dropout, text width, layers, heads, mlp, positions, projection
    "tiny": dict(image=48, patch=8, vit=(96, 3, 3, 384), text=(96, 2, 3, 384), positions=64, dropout=0.0, projection=128),
    "base": dict(image=224, patch=16, vit=(768, 12, 12, 3072), text=(768, 12, 12, 3072), positions=512, dropout=0.1, projection=768),
}
LAYER_NORM_EPS = 1e-12


class SelfAttention(nn.Module):
    def __init__(self, width, heads):
        super().__init__()
        self.heads = heads
        self.query, self.key, self.value = nn.Linear(width, width), nn.Linear(width, width), nn.Linear(width, width)

    def forward(self, x, bias=None):
        batch, tokens, width = x.shape
        split = lambda t: t.view(batch, tokens, self.heads, width // self.heads).transpose(1, 2)
        q, k, v = split(self.query(x)), split(self.key(x)), split(self.value(x))
        scores = q @ k.transpose(2, 3) / math.sqrt(width // self.heads)
        if bias is not None:
            scores = scores + bias[:, None, None, :]
        return (scores.softmax(-1) @ v).transpose(1, 2).reshape(batch, tokens, width)


class VitLayer(nn.Module):
    def __init__(self, width, heads, mlp, dropout):
        super().__init__()
        self.layernorm_before, self.layernorm_after = nn.LayerNorm(width, eps=LAYER_NORM_EPS), nn.LayerNorm(width, eps=LAYER_NORM_EPS)
        self.attention, self.attention_output = SelfAttention(width, heads), nn.Linear(width, width)
        self.intermediate, self.output = nn.Linear(width, mlp), nn.Linear(mlp, width)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x):
        x = x + self.dropout(self.attention_output(self.attention(self.layernorm_before(x))))
        return x + self.dropout(self.output(F.gelu(self.intermediate(self.layernorm_after(x)))))


class Vit(nn.Module):
    def __init__(self, image, patch, width, layers, heads, mlp, dropout):
        super().__init__()
        self.projection = nn.Conv2d(3, width, patch, stride=patch)
        self.cls_token = nn.Parameter(torch.randn(1, 1, width) * 0.02)
        self.position_embeddings = nn.Parameter(torch.randn(1, (image // patch) ** 2 + 1, width) * 0.02)
        self.dropout = nn.Dropout(dropout)
        self.layers = nn.ModuleList(VitLayer(width, heads, mlp, dropout) for _ in range(layers))
        self.layernorm = nn.LayerNorm(width, eps=LAYER_NORM_EPS)

    def forward(self, pixels):
        patches = self.projection(pixels).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls_token.expand(len(pixels), -1, -1), patches], 1) + self.position_embeddings
        x = self.dropout(x)
        for layer in self.layers:
            x = layer(x)
        return self.layernorm(x)[:, 0]


class BertLayer(nn.Module):
    def __init__(self, width, heads, mlp, dropout):
        super().__init__()
        self.attention, self.attention_output = SelfAttention(width, heads), nn.Linear(width, width)
        self.attention_norm, self.output_norm = nn.LayerNorm(width, eps=LAYER_NORM_EPS), nn.LayerNorm(width, eps=LAYER_NORM_EPS)
        self.intermediate, self.output = nn.Linear(width, mlp), nn.Linear(mlp, width)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x, bias):
        x = self.attention_norm(x + self.dropout(self.attention_output(self.attention(x, bias))))
        return self.output_norm(x + self.dropout(self.output(F.gelu(self.intermediate(x)))))


class Bert(nn.Module):
    def __init__(self, width, layers, heads, mlp, positions, dropout):
        super().__init__()
        self.word_embeddings, self.position_embeddings = nn.Embedding(VOCAB, width), nn.Embedding(positions, width)
        self.token_type_embeddings = nn.Embedding(2, width)
        self.layer_norm, self.dropout = nn.LayerNorm(width, eps=LAYER_NORM_EPS), nn.Dropout(dropout)
        self.layers = nn.ModuleList(BertLayer(width, heads, mlp, dropout) for _ in range(layers))

    def forward(self, ids, mask):
        positions = torch.arange(ids.shape[1])[None, :]
        x = self.word_embeddings(ids) + self.position_embeddings(positions) + self.token_type_embeddings(torch.zeros_like(ids))
        x = self.dropout(self.layer_norm(x))
        bias = (1.0 - mask.float()) * -1e9
        for layer in self.layers:
            x = layer(x, bias)
        keep = mask.float()[:, :, None]
        return (x * keep).sum(1) / keep.sum(1)


class DualEncoder(nn.Module):
    def __init__(self, p):
        super().__init__()
        self.vision_model = Vit(p["image"], p["patch"], *p["vit"], p["dropout"])
        self.text_model = Bert(*p["text"], p["positions"], p["dropout"])
        self.visual_projection = nn.Linear(p["vit"][0], p["projection"], bias=False)
        self.text_projection = nn.Linear(p["text"][0], p["projection"], bias=False)
        self.logit_scale = nn.Parameter(torch.tensor([2.6592601]))
        self.logit_bias = nn.Parameter(torch.tensor([-10.0]))

    def encode_image(self, pixels):
        return F.normalize(self.visual_projection(self.vision_model(pixels)), dim=-1)

    def encode_text(self, ids, mask):
        return F.normalize(self.text_projection(self.text_model(ids, mask)), dim=-1)


def clip_loss(image, text, scale, image_ids):
    same = (image_ids[:, None] == image_ids[None, :]).float()
    targets = same / same.sum(1, keepdim=True)
    logits = scale * image @ text.T
    rows = -(targets * logits.log_softmax(1)).sum(1).mean()
    columns = -(targets * logits.T.log_softmax(1)).sum(1).mean()
    return (rows + columns) / 2


def param_groups(model):
    """otclip's classes: backbone (the towers) or head, decay for tensors of rank >= 2 except
    embedding tables, learned tokens and position embeddings."""
    groups = {}
    for name, param in model.named_parameters():
        head = not name.startswith(("vision_model.", "text_model."))
        learned = name.endswith(("cls_token", "position_embeddings")) or "embeddings.weight" in name
        decay = param.dim() >= 2 and not learned
        groups.setdefault((head, decay), []).append(param)
    return [{"params": params, "weight_decay": 0.05 if decay else 0.0} for (_, decay), params in sorted(groups.items())]


def timed(steps, run):
    run()
    seconds = []
    for _ in range(steps):
        start = time.perf_counter()
        run()
        seconds.append(time.perf_counter() - start)
    seconds.sort()
    return seconds[len(seconds) // 2], seconds[0]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", choices=sorted(PRESETS), default="tiny")
    parser.add_argument("--what", choices=["train", "embed"], default="train")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--tokens", type=int, default=24)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(1)
    p = PRESETS[args.preset]
    model = DualEncoder(p)
    n = args.batch
    pixels = lambda: torch.randn(n, 3, p["image"], p["image"])
    ids = ((torch.arange(n * args.tokens) * 7 + 3) % (VOCAB - 1) + 1).view(n, args.tokens)
    mask = torch.ones_like(ids)
    line = {"impl": "torch", "what": args.what, "preset": args.preset, "batch": n, "tokens": args.tokens, "torch": torch.__version__}
    if args.what == "train":
        model.train()
        optimizer = torch.optim.AdamW(param_groups(model), lr=1e-3, betas=(0.9, 0.98), eps=1e-6)
        image_ids = torch.arange(n) // 5

        def step():
            optimizer.zero_grad(set_to_none=True)
            loss = clip_loss(model.encode_image(pixels()), model.encode_text(ids, mask), model.logit_scale.exp(), image_ids)
            loss.backward()
            optimizer.step()

        line["median_s"], line["best_s"] = timed(args.steps, step)
    else:
        model.eval()
        batch = pixels()
        with torch.inference_mode():
            images, _ = timed(args.steps, lambda: model.encode_image(batch))
            texts, _ = timed(args.steps, lambda: model.encode_text(ids, mask))
        line["images_per_s"], line["captions_per_s"] = n / images, n / texts
    line["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(line))


if __name__ == "__main__":
    main()
