#!/usr/bin/env python3
"""Reference outputs of the evaluation transform: torchvision's
Resize(256, BICUBIC) + CenterCrop(224) + ToTensor + Normalize on PIL images.

Run by hand (never in CI): /work/pyenv/bin/python tools/gen_transform_fixtures.py
Writes tests/fixtures/transforms/<name>.png (inputs) and <name>.<norm>.npy (float32 [3, 224, 224]).
"""
from pathlib import Path

import numpy as np
import torchvision
from PIL import Image
from torchvision import transforms as T

OUT = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "transforms"
NORMS = {
    "imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    "clip": ((0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)),
}


def photo_like(width, height, seed):
    """Smooth gradients, hard edges and fine noise: what stresses a resampling filter."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    img = np.stack([
        128 + 100 * np.sin(x / 17.0 + seed) * np.cos(y / 23.0),
        128 + 90 * np.cos((x + y) / 31.0),
        255 * (x / width),
    ], axis=-1)
    img[(x // 40 + y // 40) % 2 == 0] *= 0.6  # a checkerboard of hard edges
    img += rng.normal(0, 12, img.shape)
    return Image.fromarray(np.clip(img, 0, 255).astype(np.uint8), "RGB")


CASES = {"landscape_400x300": (400, 300, 1), "portrait_241x379": (241, 379, 2), "small_150x200": (150, 200, 3)}

if __name__ == "__main__":
    OUT.mkdir(parents=True, exist_ok=True)
    for name, (w, h, seed) in CASES.items():
        image = photo_like(w, h, seed)
        image.save(OUT / f"{name}.png")
        image = Image.open(OUT / f"{name}.png").convert("RGB")
        for norm, (mean, std) in NORMS.items():
            if norm == "clip" and name != "landscape_400x300":
                continue  # one CLIP case is enough; the geometry is the same
            pipeline = T.Compose([T.Resize(256, interpolation=T.InterpolationMode.BICUBIC), T.CenterCrop(224),
                                  T.ToTensor(), T.Normalize(mean, std)])
            np.save(OUT / f"{name}.{norm}.npy", pipeline(image).numpy().astype(np.float32))
    print("torchvision", torchvision.__version__, "→", OUT)
