#!/usr/bin/env python3
"""Reference 2-D PCA of image and caption embeddings, for tests/suite/plots.rs.

Run by hand (never in CI): ~/.cache/otclip/py/bin/python tools/gen_pca_fixture.py
Writes tests/fixtures/plots/pca.json: the inputs (float32, L2-normalised rows, images offset from
captions as a modality gap), and NumPy's projection: rows centred on the joint mean, onto the two
eigenvectors of largest eigenvalue of the covariance (numpy.linalg.eigh, in float64), each signed
so its entry of largest magnitude is positive; and each component's share of the variance.
"""
import json
from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "plots" / "pca.json"
DIM, IMAGES, TEXTS = 12, 30, 45


def unit_rows(x):
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def main():
    rng = np.random.default_rng(16)
    # Anisotropic noise, so the components are well separated, plus an offset between modalities.
    scales = np.linspace(2.0, 0.2, DIM)
    gap = rng.normal(size=DIM)
    images = unit_rows(rng.normal(size=(IMAGES, DIM)) * scales + 1.5 * gap)
    texts = unit_rows(rng.normal(size=(TEXTS, DIM)) * scales - 1.5 * gap)
    rows = np.concatenate([images, texts]).astype(np.float64)
    mean = rows.mean(axis=0)
    centred = rows - mean
    cov = centred.T @ centred / (len(rows) - 1)
    values, vectors = np.linalg.eigh(cov)
    order = np.argsort(values)[::-1][:2]
    components = vectors[:, order].T
    for c in components:
        if c[np.argmax(np.abs(c))] < 0:
            c *= -1
    projected = centred @ components.T
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps({
        "dim": DIM,
        "images": images.tolist(),
        "texts": texts.tolist(),
        "image_points": projected[:IMAGES].tolist(),
        "text_points": projected[IMAGES:].tolist(),
        "explained": (values[order] / values.sum()).tolist(),
        "numpy": np.__version__,
    }))
    print(f"wrote {OUT} (eigenvalues {values[order]}, next {np.sort(values)[::-1][2]})")


if __name__ == "__main__":
    main()
