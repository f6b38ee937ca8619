"""Deterministic chest-X-ray-like images, so the whole pipeline runs with no dataset on disk.

Every image has a thorax, two dark lung fields, a heart shadow, ribs, exposure and noise that vary
from image to image. The classes differ in what lies in the lungs: COVID-19 shows several diffuse,
peripheral, mostly lower-zone opacities (ground glass); Normal shows at most a faint one; viral
pneumonia shows streaky interstitial texture on both sides; bacterial pneumonia one dense lobar
consolidation. Amplitudes overlap between classes and exposure varies more than the opacities add,
so the classes are learnable but not separable by mean brightness or in one epoch.

Image i of a dataset depends only on (seed, i), never on how many images are asked for.
"""

import numpy as np

from .classes import BACTERIAL, COVID, NORMAL, VIRAL


def _blob(u, v, cu, cv, su, sv):
    return np.exp(-(((u - cu) / su) ** 2 + ((v - cv) / sv) ** 2))


def _opacities(rng, u, v, lungs, count, amp, sigma, lower_bias):
    """Sum of Gaussian opacities placed inside the lung fields."""
    out = np.zeros_like(u)
    for _ in range(count):
        side = rng.choice((-1.0, 1.0))
        cu = side * rng.uniform(0.22, 0.62)
        cv = np.clip(rng.normal(lower_bias, 0.3), -0.5, 0.55)
        s = rng.uniform(*sigma)
        out += rng.uniform(*amp) * _blob(u, v, cu, cv, s, s * rng.uniform(0.7, 1.4))
    return out * lungs


def _lesions(rng, cls, u, v, lungs):
    if cls == COVID:
        return _opacities(rng, u, v, lungs, 3 + rng.poisson(2.0), (0.08, 0.22), (0.1, 0.22), 0.3)
    if cls == NORMAL:
        return _opacities(rng, u, v, lungs, rng.poisson(0.6), (0.03, 0.1), (0.06, 0.15), 0.0)
    if cls == VIRAL:
        freq, phase = rng.uniform(18, 30), rng.uniform(0, 2 * np.pi)
        streaks = np.maximum(np.sin(freq * (u * 0.6 + v) + phase), 0) ** 3
        return rng.uniform(0.06, 0.14) * streaks * lungs * _blob(u, v, 0, 0.2, 0.9, 0.7)
    if cls == BACTERIAL:
        return _opacities(rng, u, v, lungs, 1, (0.15, 0.3), (0.15, 0.25), 0.35)
    raise ValueError(f"no synthetic generator for class {cls!r}")


def synthetic_image(seed: int, index: int, cls: str, size: int) -> np.ndarray:
    """One grayscale image, uint8, size x size."""
    rng = np.random.default_rng([seed, index])
    axis = np.linspace(-1, 1, size)
    v, u = np.meshgrid(axis, axis, indexing="ij")
    # Patient pose and size vary: scale and shift the coordinate frame.
    scale = rng.uniform(0.85, 1.1)
    u = (u - rng.uniform(-0.06, 0.06)) / scale
    v = (v - rng.uniform(-0.06, 0.06)) / scale

    body = 1 / (1 + np.exp(((u / 0.88) ** 2 + (v / 1.05) ** 2 - 1) * 12))
    # Flat-topped ellipses (a squared exponent) fill the thorax the way lung fields do.
    lungs = sum(np.exp(-((((u - s * 0.4) / 0.28) ** 2 + ((v + 0.05) / 0.58) ** 2) ** 2)) for s in (-1.0, 1.0))
    heart = _blob(u, v, 0.1, 0.32, 0.22, 0.2)
    ribs = np.maximum(np.sin(16 * (v + 0.35 * u**2) + rng.uniform(0, 2 * np.pi)), 0) ** 2
    spine = _blob(u, v, 0.0, 0.0, 0.07, 2.0)

    img = 0.5 * body - 0.32 * lungs + 0.2 * heart + 0.18 * spine + 0.08 * ribs * body
    img += _lesions(rng, cls, u, v, lungs)
    exposure = rng.uniform(0.7, 1.25)
    img = np.clip(img * exposure + rng.uniform(-0.08, 0.1), 0, 1) ** rng.uniform(0.8, 1.2)
    img += rng.normal(0, 0.03, img.shape)
    return (np.clip(img, 0, 1) * 255).round().astype(np.uint8)


def synthetic_dataset(n: int, classes: tuple[str, ...], size: int, seed: int):
    """n images with balanced labels; returns (uint8 N x H x W, int64 labels)."""
    labels = np.arange(n) % len(classes)
    images = np.stack([synthetic_image(seed, i, classes[c], size) for i, c in enumerate(labels)])
    return images, labels.astype(np.int64)
