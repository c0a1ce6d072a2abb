#!/usr/bin/env python3
"""Reference fixtures for the pretrained towers (tests/towers_*.rs).

Builds tiny random BERT, XLM-R, CLIP vision, DINOv2 (transformers) and DINOv3 ViT (timm) models,
perturbs every parameter (layer norms and layer scales included) away from its initial value,
and saves, under tests/fixtures/towers/<name>/:
  - the checkpoint as the original library writes it (HF: config.json + model.safetensors;
    timm: its hub layout, config.json + model.safetensors),
  - tokenizer files (BERT: WordPiece tokenizer.json; XLM-R: Unigram tokenizer.json),
  - reference.safetensors: the inputs and the reference outputs.
Also a PhoBERT-style fastBPE vocabulary (vocab.txt + bpe.codes) and the token ids that
transformers' PhobertTokenizer (the reference fastBPE algorithm) gives for a few sentences.

Run by hand with the versions in tools/requirements.txt:  python3 tools/gen_encoder_fixtures.py
"""
import collections
import json
import os
import shutil

import numpy as np
import torch
from safetensors.torch import save_file

OUT = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "towers")
torch.manual_seed(0)
np.random.seed(0)


def perturb(model):
    """Moves every parameter away from its init: weights get noise, norms and scales become ~N(1, .3)."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 1 and ("norm" in name.lower() or "gamma" in name or "lambda" in name or "layer_scale" in name) and name.endswith(("weight", "gamma_1", "gamma_2", "lambda1", "gamma")):
                p.copy_(1.0 + 0.3 * torch.randn_like(p))
            else:
                p.add_(0.1 * torch.randn_like(p))
    model.eval()
    return model


def fresh(name):
    path = os.path.join(OUT, name)
    shutil.rmtree(path, ignore_errors=True)
    os.makedirs(path)
    return path


def save_ref(path, tensors):
    save_file({k: v.detach().contiguous().float() if v.is_floating_point() else v.contiguous().to(torch.int64) for k, v in tensors.items()}, os.path.join(path, "reference.safetensors"))


CORPUS = [
    "a small red bicycle leans against the wall",
    "two dogs run across the green field",
    "the old man reads a newspaper in the park",
    "một con mèo đang ngủ trên ghế sofa",
    "hai đứa trẻ chơi bóng trên bãi biển",
    "chiếc xe buýt màu vàng dừng ở bến",
]
SENTENCES = ["a red bicycle in the park", "hai con chó chạy trên bãi biển xanh"]


def bert():
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import BertConfig, BertModel

    path = fresh("bert")
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.train_from_iterator(CORPUS, trainers.WordPieceTrainer(vocab_size=120, special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]))
    tok.post_processor = processors.TemplateProcessing(single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1", special_tokens=[("[CLS]", tok.token_to_id("[CLS]")), ("[SEP]", tok.token_to_id("[SEP]"))])
    tok.save(os.path.join(path, "tokenizer.json"))
    config = BertConfig(vocab_size=tok.get_vocab_size(), hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64, max_position_embeddings=40, type_vocab_size=2)
    model = perturb(BertModel(config))
    model.save_pretrained(path, safe_serialization=True)
    enc = [tok.encode(s) for s in SENTENCES]
    n = max(len(e.ids) for e in enc)
    ids = torch.tensor([e.ids + [0] * (n - len(e.ids)) for e in enc])
    mask = torch.tensor([[1] * len(e.ids) + [0] * (n - len(e.ids)) for e in enc])
    types = torch.zeros_like(ids)
    types[:, n // 2:] = 1
    types = types * mask
    with torch.no_grad():
        out = model(input_ids=ids, attention_mask=mask, token_type_ids=types)
        out0 = model(input_ids=ids, attention_mask=mask)
    m = mask.unsqueeze(-1).float()
    save_ref(path, dict(input_ids=ids, attention_mask=mask, token_type_ids=types,
                        last_hidden_state=out.last_hidden_state, pooler_output=out.pooler_output,
                        last_hidden_state_no_types=out0.last_hidden_state,
                        mean_pooled=(out0.last_hidden_state * m).sum(1) / m.sum(1)))


def xlmr():
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import XLMRobertaConfig, XLMRobertaModel

    path = fresh("xlmr")
    tok = Tokenizer(models.Unigram())
    tok.normalizer = normalizers.NFKC()
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.train_from_iterator(CORPUS, trainers.UnigramTrainer(vocab_size=100, special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"], unk_token="<unk>"))
    tok.post_processor = processors.TemplateProcessing(single="<s> $A </s>", special_tokens=[("<s>", 0), ("</s>", 2)])
    tok.save(os.path.join(path, "tokenizer.json"))
    config = XLMRobertaConfig(vocab_size=tok.get_vocab_size(), hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64, max_position_embeddings=42, type_vocab_size=1, pad_token_id=1, bos_token_id=0, eos_token_id=2)
    model = perturb(XLMRobertaModel(config))
    model.save_pretrained(path, safe_serialization=True)
    enc = [tok.encode(s) for s in SENTENCES]
    n = max(len(e.ids) for e in enc)
    ids = torch.tensor([e.ids + [1] * (n - len(e.ids)) for e in enc])
    mask = torch.tensor([[1] * len(e.ids) + [0] * (n - len(e.ids)) for e in enc])
    with torch.no_grad():
        out = model(input_ids=ids, attention_mask=mask)
    m = mask.unsqueeze(-1).float()
    save_ref(path, dict(input_ids=ids, attention_mask=mask, last_hidden_state=out.last_hidden_state,
                        pooler_output=out.pooler_output, mean_pooled=(out.last_hidden_state * m).sum(1) / m.sum(1)))


def pixels(size):
    return torch.randn(2, 3, size, size)


def clip_vision():
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    path = fresh("clip_vision")
    config = CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, image_size=32, patch_size=8, projection_dim=16, hidden_act="quick_gelu")
    model = perturb(CLIPVisionModelWithProjection(config))
    model.save_pretrained(path, safe_serialization=True)
    x = pixels(32)
    with torch.no_grad():
        out = model(pixel_values=x, output_hidden_states=True)
        inner = model.vision_model(pixel_values=x)
    save_ref(path, dict(pixel_values=x, last_hidden_state=inner.last_hidden_state, pooler_output=inner.pooler_output, image_embeds=out.image_embeds))


def dinov2():
    from transformers import Dinov2Config, Dinov2Model

    path = fresh("dinov2")
    config = Dinov2Config(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, mlp_ratio=2, image_size=32, patch_size=8, layerscale_value=1.0)
    model = perturb(Dinov2Model(config))
    model.save_pretrained(path, safe_serialization=True)
    x, big = pixels(32), pixels(48)
    with torch.no_grad():
        out = model(pixel_values=x)
        out_big = model(pixel_values=big)
    save_ref(path, dict(pixel_values=x, last_hidden_state=out.last_hidden_state, pooler_output=out.pooler_output,
                        pixel_values_48=big, last_hidden_state_48=out_big.last_hidden_state))


def dinov3_timm():
    import timm
    from timm.models import save_for_hf

    path = fresh("dinov3_timm")
    model = timm.create_model("vit_base_patch16_dinov3", pretrained=False, img_size=32, patch_size=8, embed_dim=32, depth=2, num_heads=4, num_classes=0)
    model = perturb(model)
    save_for_hf(model, path, safe_serialization=True, model_args=dict(img_size=32, patch_size=8, embed_dim=32, depth=2, num_heads=4))
    x = pixels(32)
    with torch.no_grad():
        features = model.forward_features(x)
        pooled = model.forward_head(features, pre_logits=True)
    save_ref(path, dict(pixel_values=x, last_hidden_state=features, pooled=pooled))


def phobert():
    """A fastBPE vocabulary learned on CORPUS (merges of the most frequent pairs, fastBPE's format)
    and PhobertTokenizer's ids for a few sentences, including out-of-vocabulary pieces."""
    from transformers import PhobertTokenizer

    path = fresh("phobert")
    words = collections.Counter(w for line in CORPUS for w in line.split())
    vocab = {tuple(w[:-1]) + (w[-1] + "</w>",): c for w, c in words.items()}
    merges = []
    for _ in range(60):
        pairs = collections.Counter()
        for word, c in vocab.items():
            for a, b in zip(word, word[1:]):
                pairs[(a, b)] += c
        if not pairs:
            break
        (a, b), count = max(pairs.items(), key=lambda kv: (kv[1], kv[0]))
        merges.append((a, b, count))
        new = {}
        for word, c in vocab.items():
            out, i = [], 0
            while i < len(word):
                if i < len(word) - 1 and word[i] == a and word[i + 1] == b:
                    out.append(a + b)
                    i += 2
                else:
                    out.append(word[i])
                    i += 1
            new[tuple(out)] = c
        vocab = new
    tokens = collections.Counter()
    for word, c in vocab.items():
        for i, piece in enumerate(word):
            tokens[piece[:-4] if piece.endswith("</w>") else piece + "@@"] += c
    # Drop a few rare pieces, as fastBPE vocabularies do, so that some merges produce unknown tokens.
    kept = [t for t, c in tokens.most_common() if c > 1 or len(t) < 4]
    with open(os.path.join(path, "vocab.txt"), "w", encoding="utf-8") as f:
        f.writelines(f"{t} {tokens[t]}\n" for t in kept)
    with open(os.path.join(path, "bpe.codes"), "w", encoding="utf-8") as f:
        f.writelines(f"{a} {b} {c}\n" for a, b, c in merges)
    tokenizer = PhobertTokenizer(os.path.join(path, "vocab.txt"), os.path.join(path, "bpe.codes"))
    texts = SENTENCES + ["chiếc xe_buýt màu đỏ chạy trên đường", "Một con mèo", "a", "xyz qqq"]
    cases = [{"text": t, "ids": tokenizer(t)["input_ids"], "tokens": tokenizer.tokenize(t)} for t in texts]
    with open(os.path.join(path, "expected.json"), "w", encoding="utf-8") as f:
        json.dump(cases, f, ensure_ascii=False, indent=1)


if __name__ == "__main__":
    bert()
    xlmr()
    clip_vision()
    dinov2()
    dinov3_timm()
    phobert()
    print("wrote", os.path.abspath(OUT))
