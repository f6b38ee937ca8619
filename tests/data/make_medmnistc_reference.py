"""Write tests/data/medmnistc_reference.npz: what the real MedMNIST-C v0.1.0 makes of a few fixed images.

Run it with a scratch virtualenv that has the reference installed, never with the project's:

    python3 -m venv /tmp/mcref
    /tmp/mcref/bin/pip install medmnistc==0.1.0     # pulls torch, torchvision, scikit-image 0.23.2, pillow, ...
    /tmp/mcref/bin/python tests/data/make_medmnistc_reference.py

(Where only a CUDA build of torchvision can be installed beside a CPU torch, the two do not load together;
then uninstall both from the scratch venv and let it borrow the project's with a .pth file holding the path
of the project's site-packages: appended after the venv's own, it supplies only what the venv lacks.)
`wand` (ImageMagick) is imported by medmnistc for motion blur, which the chest X-ray tables do not use: when
ImageMagick is missing it is stubbed here.

The images go through exactly what medmnistc's dataset_manager does to a grayscale dataset: the uint8 gray
image becomes a PIL RGB image (`Image.fromarray(img).convert('RGB')`, the gray value in all three channels),
`corruptor.apply(img, severity - 1)`, then `Image.fromarray(out).convert('L')`. So the noise corruptions draw
independent noise in each of the three channels and the saved image is their luma (ITU-R 601 weights).

Contents (uint8 images are H x W):
- images (2, 48, 48), odd_image (37, 53): the inputs, made from a seeded numpy generator; ramp (16, 16): every
  gray level 0..255 once.
- det__{benchmark}__{name} (5, 2, 48, 48) and det_odd__{benchmark}__{name} (5, 37, 53): each spatial corruption
  (gaussian_blur, pixelate, jpeg) and contrast (which depends on the image's mean) at severities 1..5; for
  pneumoniamnist only where its parameters differ from chestmnist's.
- ramp__{benchmark}__{name} (5, 16, 16): each deterministic corruption on the ramp. For the pixel-wise ones
  (gamma, brightness) that is every input value, a complete check; they are stored on nothing else.
- noise_image (24, 24), noise_seed (2, 4, 5), noise__{benchmark}__{name} (5, 24, 24): each random corruption
  at each severity on noise_image, with numpy's global generator seeded (np.random.seed) and, for impulse
  noise, `corruptor.rng = np.random.default_rng(seed)`, so a test can redraw the very same noise.
- stats_mean / stats_sd (2, 4, 5, 4) over stats_draws draws of images[0]: the mean and standard deviation
  across draws of four per-draw statistics of d = corrupted - clean (in uint8 levels): mean(d), mean(|d|),
  mean(d**2) and the fraction of pixels changed.
- luma_rgb (512, 3), luma_l (512,): random RGB pixels and PIL's convert('L') of them.
- params_json: the registry's severity_params of the 13 chest corruptions, for both benchmarks.
"""

import json
import sys
import types
from pathlib import Path

import numpy as np
from PIL import Image

try:
    import wand.image  # noqa: F401
except ImportError:  # ImageMagick is missing: medmnistc's motion blur is the only user, and is not used here.
    for name in ("wand", "wand.image", "wand.api"):
        sys.modules[name] = types.ModuleType(name)
    sys.modules["wand.image"].Image = object
    sys.modules["wand.api"].library = None

from medmnistc.corruptions.registry import CORRUPTIONS_DS  # noqa: E402

OUT = Path(__file__).with_name("medmnistc_reference.npz")
BENCHMARKS = ("chestmnist", "pneumoniamnist")
# ours -> medmnistc's registry key
NAMES = {
    "gamma_up": "gamma_corr_up",
    "gamma_down": "gamma_corr_down",
    "contrast_up": "contrast_up",
    "contrast_down": "contrast_down",
    "brightness_up": "brightness_up",
    "brightness_down": "brightness_down",
    "gaussian_blur": "gaussian_blur",
    "pixelate": "pixelate",
    "jpeg": "jpeg_compression",
    "gaussian_noise": "gaussian_noise",
    "shot_noise": "shot_noise",
    "impulse_noise": "impulse_noise",
    "speckle_noise": "speckle_noise",
}
NOISES = ("gaussian_noise", "shot_noise", "impulse_noise", "speckle_noise")
DETERMINISTIC = tuple(n for n in NAMES if n not in NOISES)
PIXELWISE = ("gamma_up", "gamma_down", "brightness_up", "brightness_down")
STATS_DRAWS = 200


def make_image(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Smooth structure (blobs and a ramp) plus texture, with dark and bright saturated patches and pixels."""
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    img = 110 + rng.uniform(-70, 70) * xx + rng.uniform(-70, 70) * yy
    for _ in range(4):
        cy, cx, s, a = rng.uniform(0, 1), rng.uniform(0, 1), rng.uniform(0.1, 0.3), rng.uniform(-140, 160)
        img = img + a * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * s * s))
    img = img + rng.normal(0, 12, (h, w))
    img[2:6, 2:8] = 255  # saturated patches, and single saturated pixels, where the noise crop sees them too
    img[14:18, 9:12] = 0
    img[rng.integers(0, h, 6), rng.integers(0, w, 6)] = 255
    img[rng.integers(0, h, 6), rng.integers(0, w, 6)] = 0
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def medmnistc(gray: np.ndarray, corruptor, severity: int) -> np.ndarray:
    """dataset_manager.create_single_dataset's path for a grayscale dataset (DATASET_RGB False)."""
    rgb = Image.fromarray(gray).convert("RGB")
    out = corruptor.apply(rgb, severity - 1)
    return np.array(Image.fromarray(out).convert("L"))


def corruptor(benchmark: str, name: str):
    return CORRUPTIONS_DS[benchmark][NAMES[name]]


def main() -> None:
    rng = np.random.default_rng(20240601)
    images = np.stack([make_image(rng, 48, 48) for _ in range(2)])
    odd_image = make_image(rng, 37, 53)
    noise_image = images[0, :24, :24].copy()
    ramp = np.arange(256, dtype=np.uint8).reshape(16, 16)
    out: dict[str, np.ndarray] = {"images": images, "odd_image": odd_image, "noise_image": noise_image, "ramp": ramp}

    params = {b: {n: [float(p) for p in corruptor(b, n).severity_params] for n in NAMES} for b in BENCHMARKS}
    out["params_json"] = np.array(json.dumps(params))

    for b in BENCHMARKS:
        for name in DETERMINISTIC:
            if b != "chestmnist" and params[b][name] == params["chestmnist"][name]:
                continue
            c = corruptor(b, name)
            rgb = Image.fromarray(images[0]).convert("RGB")
            raw = np.asarray(c.apply(rgb, 2))
            assert (raw[..., 0] == raw[..., 1]).all() and (raw[..., 0] == raw[..., 2]).all(), name  # gray in, gray out
            out[f"ramp__{b}__{name}"] = np.stack([medmnistc(ramp, c, s) for s in range(1, 6)])
            if name in PIXELWISE:
                continue
            out[f"det__{b}__{name}"] = np.stack([np.stack([medmnistc(i, c, s) for i in images]) for s in range(1, 6)])
            out[f"det_odd__{b}__{name}"] = np.stack([medmnistc(odd_image, c, s) for s in range(1, 6)])

    seeds = np.arange(2 * 4 * 5).reshape(2, 4, 5) + 1000
    out["noise_seed"] = seeds
    stats_mean = np.zeros((2, 4, 5, 4))
    stats_sd = np.zeros((2, 4, 5, 4))
    clean = images[0].astype(np.int64)
    for bi, b in enumerate(BENCHMARKS):
        for ni, name in enumerate(NOISES):
            c = corruptor(b, name)
            noisy = []
            for s in range(1, 6):
                seed = int(seeds[bi, ni, s - 1])
                np.random.seed(seed)
                c.rng = np.random.default_rng(seed)  # only impulse noise (skimage) reads it, as in dataset_manager
                noisy.append(medmnistc(noise_image, c, s))
                np.random.seed(seed + 10_000)
                c.rng = np.random.default_rng(seed + 10_000)
                per_draw = []
                for _ in range(STATS_DRAWS):
                    d = medmnistc(images[0], c, s).astype(np.int64) - clean
                    per_draw.append([d.mean(), np.abs(d).mean(), (d * d).mean(), (d != 0).mean()])
                per_draw = np.array(per_draw)
                stats_mean[bi, ni, s - 1] = per_draw.mean(0)
                stats_sd[bi, ni, s - 1] = per_draw.std(0, ddof=1)
            out[f"noise__{b}__{name}"] = np.stack(noisy)
    out["stats_mean"], out["stats_sd"], out["stats_draws"] = stats_mean, stats_sd, np.array(STATS_DRAWS)

    luma_rgb = rng.integers(0, 256, (512, 3), dtype=np.uint8)
    out["luma_rgb"] = luma_rgb
    out["luma_l"] = np.array(Image.fromarray(luma_rgb[:, None, :]).convert("L"))[:, 0]

    np.savez_compressed(OUT, **out)
    print(f"wrote {OUT} ({OUT.stat().st_size / 1024:.0f} KiB)")


if __name__ == "__main__":
    main()
