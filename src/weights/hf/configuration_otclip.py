# Written by `otclip export`: the configuration of an otclip dual encoder for Hugging Face
# transformers (5.x), loaded with `trust_remote_code=True`.
"""Configuration of an otclip dual encoder: an image tower, a text tower, a head on each and a
learnable temperature. Every switch the towers have is spelled out in `vision_config` and
`text_config`; `model_type` in each names the family the tower belongs to."""

from transformers import PreTrainedConfig


class OtclipConfig(PreTrainedConfig):
    """`vision_config`: the ViT family (`vit`, `clip_vision_model`, `dinov2`, `dinov3_vit`);
    `text_config`: the BERT family (`bert`, `roberta`); `image_head` and `text_head`:
    `{"kind": "linear" | "mlp" | "none", "bias": bool, "dropout": float}`. The `otclip` section
    is otclip's own config, which `otclip` reads back."""

    model_type = "otclip"

    vision_config: dict | None = None
    text_config: dict | None = None
    image_head: dict | None = None
    text_head: dict | None = None
    projection_dim: int = 512
    logit_scale_init_value: float = 2.6592
    logit_bias_init_value: float = -10.0
    initializer_range: float = 0.02
