# Written by `otclip export`: an otclip dual encoder in plain torch for Hugging Face transformers
# (5.x), loaded with `trust_remote_code=True`. Module names are the keys of `model.safetensors`;
# the computation is otclip's (`encode_image`, `encode_text`).
"""otclip dual encoder: `get_image_features` and `get_text_features` return the projected,
L2-normalised embeddings otclip computes; `forward` returns CLIP-style logits."""

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedModel
from transformers.utils import ModelOutput

from .configuration_otclip import OtclipConfig

POOLINGS = ("cls", "mean", "pooler")
HEADS = ("linear", "mlp", "none")


def _need(config: dict, key: str, section: str):
    if key not in config:
        raise ValueError(f"config.json: `{section}.{key}` is missing")
    return config[key]


def _choice(config: dict, key: str, section: str, allowed):
    value = _need(config, key, section)
    if value not in allowed:
        raise ValueError(f"config.json: `{section}.{key}` = {value!r}; expected one of {', '.join(allowed)}")
    return value


def _activation(name: str, section: str):
    if name == "gelu":
        return F.gelu
    if name == "quick_gelu":
        return lambda x: x * torch.sigmoid(1.702 * x)
    raise ValueError(f"config.json: `{section}.hidden_act` = {name!r}; expected gelu or quick_gelu")


class Dense(nn.Module):
    """One `dense` linear layer, as HF nests them (`intermediate.dense`)."""

    def __init__(self, d_in, d_out, bias=True):
        super().__init__()
        self.dense = nn.Linear(d_in, d_out, bias=bias)


class SelfAttention(nn.Module):
    """`attention.attention` (ViT) and `attention.self` (BERT): scaled dot-product attention."""

    def __init__(self, hidden, heads, bias=True):
        super().__init__()
        self.heads = heads
        self.query = nn.Linear(hidden, hidden, bias=bias)
        self.key = nn.Linear(hidden, hidden, bias=bias)
        self.value = nn.Linear(hidden, hidden, bias=bias)

    def forward(self, x, mask_bias=None, rope=None):
        batch, tokens, hidden = x.shape
        head_dim = hidden // self.heads
        split = lambda t: t.view(batch, tokens, self.heads, head_dim).transpose(1, 2)
        q, k, v = split(self.query(x)), split(self.key(x)), split(self.value(x))
        if rope is not None:
            q, k = rope.apply(q), rope.apply(k)
        scores = q @ k.transpose(2, 3) / math.sqrt(head_dim)
        if mask_bias is not None:
            scores = scores + mask_bias[:, None, None, :]
        return (scores.softmax(-1) @ v).transpose(1, 2).reshape(batch, tokens, hidden)


class Rope:
    """DINOv3's rotary table as timm builds it, applied to the patch tokens after the prefix."""

    def __init__(self, head_dim, theta, rows, cols, prefix, device):
        quarter = head_dim // 4
        i = torch.arange(quarter, dtype=torch.float32, device=device)
        periods = torch.tensor(theta, dtype=torch.float32, device=device) ** (2.0 * i / (head_dim // 2))
        y = 2.0 * ((torch.arange(rows, dtype=torch.float32, device=device) + 0.5) / rows) - 1.0
        x = 2.0 * ((torch.arange(cols, dtype=torch.float32, device=device) + 0.5) / cols) - 1.0
        yy, xx = torch.meshgrid(y, x, indexing="ij")
        coords = torch.stack([yy.reshape(-1), xx.reshape(-1)], -1)  # [patches, 2], rows first
        angles = (2.0 * math.pi * coords[:, :, None] / periods).reshape(rows * cols, 2 * quarter)
        angles = torch.cat([angles, angles], -1)
        self.sin, self.cos, self.prefix = angles.sin(), angles.cos(), prefix

    def apply(self, x):
        prefix, patches = x[:, :, : self.prefix], x[:, :, self.prefix :]
        half = x.shape[-1] // 2
        rotated = torch.cat([-patches[..., half:], patches[..., :half]], -1)
        cos, sin = self.cos.to(x.dtype), self.sin.to(x.dtype)
        return torch.cat([prefix, patches * cos + rotated * sin], 2)


class LayerScale(nn.Module):
    def __init__(self, hidden):
        super().__init__()
        self.lambda1 = nn.Parameter(torch.ones(hidden))


class PatchEmbeddings(nn.Module):
    def __init__(self, channels, hidden, patch, bias):
        super().__init__()
        self.projection = nn.Conv2d(channels, hidden, patch, stride=patch, bias=bias)


class VisionEmbeddings(nn.Module):
    def __init__(self, c):
        super().__init__()
        d = c["hidden_size"]
        self.cls_token = nn.Parameter(torch.zeros(1, 1, d))
        registers = c.get("num_register_tokens", 0)
        self.register_tokens = nn.Parameter(torch.zeros(1, registers, d)) if registers > 0 else None
        grid = (c["image_size"] // c["patch_size"]) ** 2
        self.position_embeddings = nn.Parameter(torch.zeros(1, grid + 1, d)) if c["use_position_embeddings"] else None
        self.patch_embeddings = PatchEmbeddings(c.get("num_channels", 3), d, c["patch_size"], c["patch_bias"])
        self.dropout = nn.Dropout(c.get("hidden_dropout_prob", 0.0))

    def forward(self, pixel_values):
        patches = self.patch_embeddings.projection(pixel_values)
        batch, dim, rows, cols = patches.shape
        tokens = torch.cat([self.cls_token.expand(batch, 1, dim), patches.flatten(2).transpose(1, 2)], 1)
        if self.position_embeddings is not None:
            tokens = tokens + resize_positions(self.position_embeddings, rows, cols)
        if self.register_tokens is not None:
            registers = self.register_tokens.expand(batch, -1, -1)
            tokens = torch.cat([tokens[:, :1], registers, tokens[:, 1:]], 1)
        return self.dropout(tokens)


def resize_positions(positions, rows, cols):
    """The learned positions for a `rows x cols` grid: bicubic (half-pixel) when it is not the trained one."""
    n, dim = positions.shape[1], positions.shape[2]
    side = round(math.sqrt(n - 1))
    if side == rows and side == cols:
        return positions
    grid = positions[:, 1:].reshape(1, side, side, dim).permute(0, 3, 1, 2)
    grid = F.interpolate(grid, size=(rows, cols), mode="bicubic", align_corners=False)
    return torch.cat([positions[:, :1], grid.permute(0, 2, 3, 1).reshape(1, rows * cols, dim)], 1)


class VisionAttention(nn.Module):
    def __init__(self, c):
        super().__init__()
        d = c["hidden_size"]
        self.attention = SelfAttention(d, c["num_attention_heads"], c.get("qkv_bias", True))
        self.output = Dense(d, d)


class VisionLayer(nn.Module):
    """A pre-norm block, with layer scale on both residual branches when the tower has it."""

    def __init__(self, c, act):
        super().__init__()
        d, eps = c["hidden_size"], c["layer_norm_eps"]
        self.act = act
        self.layernorm_before = nn.LayerNorm(d, eps=eps)
        self.attention = VisionAttention(c)
        self.layer_scale1 = LayerScale(d) if c["layer_scale"] else None
        self.layernorm_after = nn.LayerNorm(d, eps=eps)
        self.intermediate = Dense(d, c["intermediate_size"])
        self.output = Dense(c["intermediate_size"], d)
        self.layer_scale2 = LayerScale(d) if c["layer_scale"] else None
        self.dropout = nn.Dropout(c.get("hidden_dropout_prob", 0.0))

    def forward(self, x, rope=None):
        scaled = lambda s, t: t if s is None else t * s.lambda1
        attended = self.attention.attention(self.layernorm_before(x), rope=rope)
        x = x + self.dropout(scaled(self.layer_scale1, self.attention.output.dense(attended)))
        hidden = self.act(self.intermediate.dense(self.layernorm_after(x)))
        return x + self.dropout(scaled(self.layer_scale2, self.output.dense(hidden)))


class Encoder(nn.Module):
    def __init__(self, layers):
        super().__init__()
        self.layer = nn.ModuleList(layers)


class VisionTower(nn.Module):
    """The ViT family with otclip's switches: CLIP (QuickGELU, pre-norm, the final norm on the pooled
    token only), DINOv2 (layer scale), DINOv3 (rotary positions, register tokens), a pooler."""

    def __init__(self, c):
        super().__init__()
        d, eps = c["hidden_size"], c["layer_norm_eps"]
        self.pooling = _choice(c, "pooling", "vision_config", POOLINGS)
        act = _activation(c.get("hidden_act", "gelu"), "vision_config")
        self.patch_size, self.heads = c["patch_size"], c["num_attention_heads"]
        self.rope_theta = c.get("rope_theta")
        self.norm_pooled_only = c["norm_pooled_only"]
        self.num_prefix_tokens = 1 + c.get("num_register_tokens", 0)
        self.embeddings = VisionEmbeddings(c)
        self.pre_layernorm = nn.LayerNorm(d, eps=eps) if c["pre_layernorm"] else None
        self.encoder = Encoder([VisionLayer(c, act) for _ in range(c["num_hidden_layers"])])
        self.layernorm = nn.LayerNorm(d, eps=eps)
        self.pooler = Dense(d, d) if c["add_pooling_layer"] else None
        projection = c.get("projection_dim")
        # The tower's own projection (CLIP's `visual_projection`), kept but not used by the embeddings.
        self.projection = nn.Linear(d, projection, bias=False) if projection else None

    def forward(self, pixel_values):
        """The last hidden state; after the final norm unless it applies to the pooled token only."""
        rows, cols = pixel_values.shape[2] // self.patch_size, pixel_values.shape[3] // self.patch_size
        rope = None
        if self.rope_theta is not None:
            head_dim = self.layernorm.normalized_shape[0] // self.heads
            rope = Rope(head_dim, self.rope_theta, rows, cols, self.num_prefix_tokens, pixel_values.device)
        x = self.embeddings(pixel_values)
        if self.pre_layernorm is not None:
            x = self.pre_layernorm(x)
        for layer in self.encoder.layer:
            x = layer(x, rope)
        return x if self.norm_pooled_only else self.layernorm(x)

    def embed(self, pixel_values):
        hidden = self.forward(pixel_values)
        pooled = hidden[:, self.num_prefix_tokens :].mean(1) if self.pooling == "mean" else hidden[:, 0]
        if self.norm_pooled_only:
            pooled = self.layernorm(pooled)
        # `pooler` is transformers' pooler_output: the dense + tanh pooler where the tower has one,
        # else the class token after the final norm (CLIP, DINOv2, DINOv3).
        if self.pooling == "pooler" and self.pooler is not None:
            pooled = torch.tanh(self.pooler.dense(pooled))
        return pooled


class DenseNorm(nn.Module):
    """`dense` then a residual `LayerNorm` (BERT's self-output and output)."""

    def __init__(self, d_in, d_out, eps):
        super().__init__()
        self.dense = nn.Linear(d_in, d_out)
        self.LayerNorm = nn.LayerNorm(d_out, eps=eps)


class TextAttention(nn.Module):
    def __init__(self, c):
        super().__init__()
        d = c["hidden_size"]
        # `self` is the checkpoint's name; the attribute is set through the module registry.
        self.add_module("self", SelfAttention(d, c["num_attention_heads"]))
        self.output = DenseNorm(d, d, c["layer_norm_eps"])


class TextLayer(nn.Module):
    """A post-norm BERT block."""

    def __init__(self, c):
        super().__init__()
        d, eps = c["hidden_size"], c["layer_norm_eps"]
        self.attention = TextAttention(c)
        self.intermediate = Dense(d, c["intermediate_size"])
        self.output = DenseNorm(c["intermediate_size"], d, eps)
        self.dropout = nn.Dropout(c.get("hidden_dropout_prob", 0.0))

    def forward(self, x, mask_bias):
        attended = self.attention._modules["self"](x, mask_bias)
        out = self.attention.output
        x = out.LayerNorm(x + self.dropout(out.dense(attended)))
        hidden = F.gelu(self.intermediate.dense(x))
        return self.output.LayerNorm(x + self.dropout(self.output.dense(hidden)))


class TextEmbeddings(nn.Module):
    def __init__(self, c):
        super().__init__()
        d = c["hidden_size"]
        self.word_embeddings = nn.Embedding(c["vocab_size"], d)
        self.position_embeddings = nn.Embedding(c["max_position_embeddings"], d)
        self.token_type_embeddings = nn.Embedding(c["type_vocab_size"], d)
        self.LayerNorm = nn.LayerNorm(d, eps=c["layer_norm_eps"])
        self.dropout = nn.Dropout(c.get("hidden_dropout_prob", 0.0))


class TextTower(nn.Module):
    """The BERT family; RoBERTa and XLM-R count positions from after the padding index."""

    def __init__(self, c):
        super().__init__()
        self.pooling = _choice(c, "pooling", "text_config", POOLINGS)
        _activation(c.get("hidden_act", "gelu"), "text_config")
        if c.get("position_embedding_type", "absolute") != "absolute":
            raise ValueError("config.json: `text_config.position_embedding_type`: expected absolute")
        self.roberta_positions = c["roberta_positions"]
        self.pad_token_id = c["pad_token_id"]
        self.embeddings = TextEmbeddings(c)
        self.encoder = Encoder([TextLayer(c) for _ in range(c["num_hidden_layers"])])
        self.pooler = Dense(c["hidden_size"], c["hidden_size"]) if c["add_pooling_layer"] else None
        if self.pooling == "pooler" and self.pooler is None:
            raise ValueError("config.json: text_config.pooling = pooler, but the tower has no pooler layer")

    def forward(self, input_ids, attention_mask, token_type_ids=None):
        if self.roberta_positions:
            real = (input_ids != self.pad_token_id).long()
            positions = real.cumsum(1) * real + self.pad_token_id
        else:
            positions = torch.arange(input_ids.shape[1], device=input_ids.device).expand_as(input_ids)
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        e = self.embeddings
        x = e.word_embeddings(input_ids) + e.position_embeddings(positions) + e.token_type_embeddings(token_type_ids)
        x = e.dropout(e.LayerNorm(x))
        mask_bias = (1.0 - attention_mask.to(x.dtype)) * -1e9
        for layer in self.encoder.layer:
            x = layer(x, mask_bias)
        return x

    def embed(self, input_ids, attention_mask, token_type_ids=None):
        hidden = self.forward(input_ids, attention_mask, token_type_ids)
        if self.pooling == "pooler":
            return torch.tanh(self.pooler.dense(hidden[:, 0]))
        if self.pooling == "cls":
            return hidden[:, 0]
        keep = attention_mask.to(hidden.dtype)[:, :, None]
        return (hidden * keep).sum(1) / keep.sum(1).clamp_min(1e-9)


class MlpHead(nn.Module):
    """open_clip's MLP head: `fc1`, exact GELU, `fc2`."""

    def __init__(self, width, hidden, out, bias):
        super().__init__()
        self.fc1 = nn.Linear(width, hidden, bias=bias)
        self.fc2 = nn.Linear(hidden, out, bias=bias)

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(x)))


def _head(head: dict, section: str, width: int, out: int):
    """The head's layer (`None` for kind none) and its dropout."""
    kind = _choice(head, "kind", section, HEADS)
    bias, dropout = head.get("bias", False), nn.Dropout(head.get("dropout", 0.0))
    if kind == "linear":
        return nn.Linear(width, out, bias=bias), None, dropout
    if kind == "mlp":
        return None, MlpHead(width, (width + out) // 2, out, bias), dropout
    if width != out:
        raise ValueError(f"config.json: {section}.kind = none needs the tower's width {width} to equal projection_dim {out}")
    return None, None, dropout


@dataclass
class OtclipOutput(ModelOutput):
    """CLIP-style outputs: logits are exp(logit_scale) times the cosine similarities."""

    loss: torch.Tensor | None = None
    logits_per_image: torch.Tensor | None = None
    logits_per_text: torch.Tensor | None = None
    text_embeds: torch.Tensor | None = None
    image_embeds: torch.Tensor | None = None


class OtclipPreTrainedModel(PreTrainedModel):
    config_class = OtclipConfig
    base_model_prefix = "otclip"
    input_modalities = ("image", "text")

    @torch.no_grad()
    def _init_weights(self, module):
        super()._init_weights(module)
        std = self.config.initializer_range
        if isinstance(module, VisionEmbeddings):
            for p in (module.cls_token, module.register_tokens, module.position_embeddings):
                if p is not None:
                    p.normal_(0.0, std)
        elif isinstance(module, LayerScale):
            module.lambda1.fill_(1e-5)
        elif isinstance(module, OtclipModel):
            module.logit_scale.fill_(self.config.logit_scale_init_value)
            module.logit_bias.fill_(self.config.logit_bias_init_value)


class OtclipModel(OtclipPreTrainedModel):
    def __init__(self, config: OtclipConfig):
        super().__init__(config)
        vision, text, dim = config.vision_config, config.text_config, config.projection_dim
        if vision is None or text is None:
            raise ValueError("config.json: `vision_config` and `text_config` are required")
        self.vision_model = VisionTower(vision)
        self.text_model = TextTower(text)
        self.visual_projection, self.visual_mlp, self.visual_dropout = _head(config.image_head or {"kind": "linear"}, "image_head", vision["hidden_size"], dim)
        self.text_projection, self.text_mlp, self.text_dropout = _head(config.text_head or {"kind": "linear"}, "text_head", text["hidden_size"], dim)
        self.logit_scale = nn.Parameter(torch.tensor(config.logit_scale_init_value))
        self.logit_bias = nn.Parameter(torch.tensor(config.logit_bias_init_value))
        self.post_init()

    @staticmethod
    def _project(pooled, dropout, linear, mlp):
        x = dropout(pooled)
        if linear is not None:
            x = linear(x)
        elif mlp is not None:
            x = mlp(x)
        return x / x.norm(dim=-1, keepdim=True).clamp_min(1e-12)

    def get_image_features(self, pixel_values: torch.Tensor, **kwargs) -> torch.Tensor:
        """L2-normalised image embeddings `[batch, projection_dim]` (otclip's `encode_image`)."""
        pooled = self.vision_model.embed(pixel_values.to(self.logit_scale.dtype))
        return self._project(pooled, self.visual_dropout, self.visual_projection, self.visual_mlp)

    def get_text_features(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, token_type_ids: torch.Tensor | None = None, **kwargs) -> torch.Tensor:
        """L2-normalised text embeddings `[batch, projection_dim]` (otclip's `encode_text`)."""
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        pooled = self.text_model.embed(input_ids, attention_mask, token_type_ids)
        return self._project(pooled, self.text_dropout, self.text_projection, self.text_mlp)

    def forward(self, input_ids=None, pixel_values=None, attention_mask=None, token_type_ids=None, return_loss=None, return_dict=None, **kwargs):
        image_embeds = self.get_image_features(pixel_values)
        text_embeds = self.get_text_features(input_ids, attention_mask, token_type_ids)
        logits_per_text = self.logit_scale.exp() * text_embeds @ image_embeds.t()
        logits_per_image = logits_per_text.t()
        loss = None
        if return_loss:
            target = torch.arange(logits_per_text.shape[0], device=logits_per_text.device)
            loss = (F.cross_entropy(logits_per_text, target) + F.cross_entropy(logits_per_image, target)) / 2
        output = OtclipOutput(loss=loss, logits_per_image=logits_per_image, logits_per_text=logits_per_text, text_embeds=text_embeds, image_embeds=image_embeds)
        return output if return_dict is not False else output.to_tuple()


__all__ = ["OtclipModel", "OtclipPreTrainedModel"]
