"""The chest X-ray corruptions of MedMNIST-C, batched in torch on the images' own device.

MedMNIST-C (Di Salvo et al. 2024, package `medmnistc` 0.1.0) corrupts the test sets of MedMNIST+ at five
severities; ChestMNIST and PneumoniaMNIST get the same 13 corruptions with their own parameters. `corrupt`
reproduces what medmnistc's dataset_manager writes for these grayscale datasets: the uint8 gray image is
copied into the three channels of an RGB image, corrupted, and saved as its luma (PIL's convert('L')).

- Deterministic corruptions (gamma, brightness, contrast, gaussian_blur, pixelate, jpeg) treat the three
  equal channels alike, so they run on the one gray channel; on the CPU they equal the reference on every
  pixel (tests/test_corruptions.py checks each severity against outputs of the real package).
- The noises draw independent noise in each of the three channels, truncate each to uint8 and take the
  luma; so MedMNIST-C's noise is about 0.7 times as strong (rms) as the same noise on one channel would be,
  and impulse noise mostly makes partly bright or dark pixels (pure black or white needs all three channels
  hit alike). Given the same draws they equal the reference on every pixel; drawing from torch's generator
  they match it in distribution.

Randomness comes only from `generator` (torch's default generator for the device when None), so a seeded
job is reproducible. JPEG runs on the CPU with libjpeg whatever the device: torchvision's GPU codec (nvJPEG)
is another encoder, not checked against the reference, whose output could depend on the machine.
"""

import functools
import numbers

import torch
import torchvision.transforms.v2.functional as TF
from torchvision.io import ImageReadMode, decode_jpeg, encode_jpeg

from ..errors import ConfigError

# severity_params of MedMNIST-C v0.1.0, medmnistc/corruptions/registry.py, CORRUPTIONS_DS["chestmnist"] and
# CORRUPTIONS_DS["pneumoniamnist"], copied exactly; severity s uses index s - 1 (dataset_manager loops over
# range(0, 5)). gaussian_blur lists six kernel sizes: the sixth (13) is reached only by medmnistc's training
# augmentation, which draws between the first and the last.
DATASETS = ("chestmnist", "pneumoniamnist")
# The parameters that differ between them, in DATASETS' order.
_OWN: dict[str, tuple[tuple[float, ...], ...]] = {
    "pixelate": ((0.30, 0.25, 0.20, 0.15, 0.10), (0.8, 0.7, 0.6, 0.5, 0.40)),
    "gaussian_noise": ((0.04, 0.08, 0.12, 0.18, 0.26), (0.04, 0.05, 0.06, 0.07, 0.08)),
    "speckle_noise": ((0.05, 0.15, 0.2, 0.35, 0.45), (0.05, 0.07, 0.10, 0.15, 0.20)),
    "impulse_noise": ((0.01, 0.03, 0.06, 0.09, 0.17), (0.005, 0.01, 0.013, 0.017, 0.02)),
    "shot_noise": ((60, 25, 18, 10, 5), (300, 200, 150, 100, 80)),
}
# The parameters both datasets share.
_SHARED: dict[str, tuple[float, ...]] = {
    "jpeg": (50, 30, 15, 10, 7),
    "gaussian_blur": (3, 5, 7, 9, 11, 13),
    "brightness_up": (1.1, 1.2, 1.3, 1.4, 1.5),
    "brightness_down": (0.9, 0.8, 0.7, 0.6, 0.5),
    "contrast_up": (1.1, 1.2, 1.3, 1.4, 1.6),
    "contrast_down": (0.9, 0.8, 0.7, 0.6, 0.4),
    "gamma_up": (1.1, 1.2, 1.3, 1.4, 1.6),
    "gamma_down": (0.9, 0.8, 0.7, 0.6, 0.4),
}
# In the registry's order, which follows MedMNIST-C's groups: digital, noise, blur, color, task-specific.
CORRUPTIONS: tuple[str, ...] = (
    "pixelate",
    "jpeg",
    "gaussian_noise",
    "speckle_noise",
    "impulse_noise",
    "shot_noise",
    "gaussian_blur",
    "brightness_up",
    "brightness_down",
    "contrast_up",
    "contrast_down",
    "gamma_up",
    "gamma_down",
)
BENCHMARKS: dict[str, dict[str, tuple[float, ...]]] = {
    name: {c: _OWN[c][i] if c in _OWN else _SHARED[c] for c in CORRUPTIONS} for i, name in enumerate(DATASETS)
}
SEVERITIES = range(1, 6)
NOISES = ("gaussian_noise", "speckle_noise", "impulse_noise", "shot_noise")

_PRECISION_BITS = 22  # PIL's fixed-point resampling of 8-bit images (libImaging/Resample.c: 32 - 8 - 2)


def corrupt(
    x: torch.Tensor,
    name: str,
    severity: int,
    *,
    benchmark: str = "chestmnist",
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """`x` (N x 1 x H x W, floating point in [0, 1], any device) corrupted by MedMNIST-C's `name` at
    `severity` (1..5) with `benchmark`'s parameters. The result has x's shape, device and dtype, and values
    k / 255, as MedMNIST-C saves uint8 images. x is first rounded to the nearest of those levels (an image read
    from uint8 is already on them). Random corruptions draw from `generator`, on x's device."""
    param = severity_param(name, severity, benchmark)
    if x.ndim != 4 or x.shape[1] != 1 or not x.is_floating_point():
        raise ValueError(f"corrupt takes a floating-point batch N x 1 x H x W, not {x.dtype} {tuple(x.shape)}.")
    if generator is not None and generator.device.type != x.device.type:
        raise ValueError(f"the generator is on {generator.device}, the images on {x.device}: use one on theirs.")
    if x.numel() == 0:
        return x.clone()
    u8 = x.detach().clamp(0, 1).mul(255).round_().to(torch.uint8)
    if name in NOISES:
        out = _luma(_NOISES[name](u8.expand(-1, 3, -1, -1), param, generator))
    else:
        out = _DETERMINISTIC[name](u8, param)
    return out.to(x.dtype).div_(255)


def severity_param(name: str, severity: int, benchmark: str = "chestmnist") -> float:
    """The MedMNIST-C parameter of `name` at `severity` in `benchmark`; ConfigError on any unknown one."""
    if benchmark not in BENCHMARKS:
        raise ConfigError(f"unknown corruption benchmark {benchmark!r}; choose from {list(BENCHMARKS)}.")
    if name not in CORRUPTIONS:
        raise ConfigError(f"unknown corruption {name!r}; choose from {list(CORRUPTIONS)}.")
    if isinstance(severity, bool) or not isinstance(severity, numbers.Integral) or severity not in SEVERITIES:
        raise ConfigError(f"corruption severity {severity!r} is not one of {list(SEVERITIES)}.")
    return BENCHMARKS[benchmark][name][severity - 1]


# --- deterministic corruptions: uint8 N x 1 x H x W in and out --------------------------------------------


def _brightness(u8: torch.Tensor, factor: float) -> torch.Tensor:
    # PIL's ImageEnhance.Brightness blends with black: (uint8)(factor * v) in float32, as torchvision computes it.
    return TF.adjust_brightness(u8, factor)


def _contrast(u8: torch.Tensor, factor: float) -> torch.Tensor:
    # PIL's ImageEnhance.Contrast blends with a flat image of the grayscale mean rounded to an integer,
    # int(mean + 0.5), as m + factor * (v - m) in float32, clipped and truncated (Image.blend). torchvision's
    # adjust_contrast blends with the float mean as factor * v + (1 - factor) * mean, one level off on many
    # pixels, so this follows PIL.
    total = u8.sum(dim=(1, 2, 3), dtype=torch.int64)
    mean = torch.floor(total.double() / u8[0].numel() + 0.5).float().view(-1, 1, 1, 1)
    out = (u8.float() - mean).mul_(factor).add_(mean)
    return out.clamp_(0, 255).to(torch.uint8)


@functools.cache
def _gamma_table(gamma: float) -> tuple[int, ...]:
    # torchvision's adjust_gamma on a PIL image (medmnistc's GammaCorrection), gain 1: a lookup table in float64.
    return tuple(int((255 + 1 - 1e-3) * 1.0 * pow(v / 255.0, gamma)) for v in range(256))


def _gamma(u8: torch.Tensor, gamma: float) -> torch.Tensor:
    # adjust_gamma on a uint8 tensor gives the same on the CPU, but in float32 pow, which another device may
    # round differently at a level boundary; the reference's own table is exact everywhere.
    table = torch.tensor(_gamma_table(gamma), dtype=torch.uint8, device=u8.device)
    return table[u8.long()]


def _gaussian_blur(u8: torch.Tensor, kernel: float) -> torch.Tensor:
    # medmnistc calls torchvision's gaussian_blur with the kernel size alone (sigma 0.15 k + 0.35, reflected
    # edges), which convolves uint8 in float32 and rounds. The same call in float64 gave the same pixels on
    # every test image (only a sum within float32's error of a half could round otherwise), and cannot be
    # coarsened by a GPU's TF32 convolutions (on by default in cuDNN) as float32 would be.
    k = int(kernel)
    return TF.gaussian_blur(u8.double(), [k, k]).round_().to(torch.uint8)


@functools.cache
def _box_coefficients(in_size: int, out_size: int) -> torch.Tensor:
    """PIL's BOX resampling from in_size to out_size pixels as an out_size x in_size float64 matrix of
    fixed-point weights: libImaging/Resample.c's precompute_coeffs and normalize_coeffs_8bpc, same steps."""
    scale = in_size / out_size
    filterscale = max(scale, 1.0)
    support = 0.5 * filterscale  # the box filter's support is 0.5
    ss = 1.0 / filterscale
    rows = []
    for xx in range(out_size):
        center = (xx + 0.5) * scale
        xmin = max(int(center - support + 0.5), 0)
        xmax = min(int(center + support + 0.5), in_size) - xmin
        # box_filter(t) is 1 for -0.5 < t <= 0.5: the pixels whose centres fall in the output pixel's window
        w = [1.0 if -0.5 < (x + xmin - center + 0.5) * ss <= 0.5 else 0.0 for x in range(xmax)]
        total = sum(w)
        row = [0] * in_size
        for x, wx in enumerate(w):
            row[xmin + x] = int(0.5 + (wx / total if total else wx) * (1 << _PRECISION_BITS))
        rows.append(row)
    return torch.tensor(rows, dtype=torch.float64)


def _box_pass(x: torch.Tensor, out_size: int, dim: int) -> torch.Tensor:
    """One of PIL's two resampling passes along dim (-1: horizontal, -2: vertical) of float64 uint8 values,
    rounded back to uint8 values as PIL's clip8 does. float64 holds the integer sums exactly."""
    in_size = x.shape[dim]
    if in_size == out_size:
        return x
    k = _box_coefficients(in_size, out_size).to(x.device)
    s = x @ k.T if dim == -1 else k @ x
    return torch.floor((s + (1 << (_PRECISION_BITS - 1))) / (1 << _PRECISION_BITS)).clamp_(0, 255)


def _pixelate(u8: torch.Tensor, factor: float) -> torch.Tensor:
    # medmnistc: img.resize((int(w * f), int(h * f)), BOX) then back to (w, h) with BOX. PIL's BOX averages
    # the pixels whose centres fall in each output pixel, with fixed-point weights, horizontal pass first, and
    # rounds to uint8 after each pass. F.interpolate(mode="area") bins differently for non-integer ratios
    # (floor/ceil edges) and keeps floats; down with it and up with "nearest-exact" (PIL's BOX upscaling is
    # floor((i + 0.5) * scale); "nearest" is floor(i * scale)) was up to 140 levels off on most pixels for
    # the non-integer ratios, and one level off on a quarter of them for the integer ones. So both passes are
    # written out here. (PIL refuses a size 0, where an image is under 1 / f pixels; here it becomes 1.)
    h, w = u8.shape[-2:]
    small_h, small_w = max(int(h * factor), 1), max(int(w * factor), 1)
    x = u8.double()
    x = _box_pass(_box_pass(x, small_w, -1), small_h, -2)
    x = _box_pass(_box_pass(x, w, -1), h, -2)
    return x.to(torch.uint8)


def _jpeg(u8: torch.Tensor, quality: float) -> torch.Tensor:
    # medmnistc saves the RGB copy with PIL (libjpeg, 4:2:0): its chroma is flat 128 and its luma is the gray
    # image, so a grayscale JPEG at the same quality decodes to the same pixels. One image at a time on the CPU.
    cpu = u8.cpu()
    encoded = encode_jpeg(list(cpu), quality=int(quality))
    decoded = decode_jpeg(encoded, mode=ImageReadMode.GRAY)
    return torch.stack(decoded).to(u8.device)


_DETERMINISTIC = {
    "pixelate": _pixelate,
    "jpeg": _jpeg,
    "gaussian_blur": _gaussian_blur,
    "brightness_up": _brightness,
    "brightness_down": _brightness,
    "contrast_up": _contrast,
    "contrast_down": _contrast,
    "gamma_up": _gamma,
    "gamma_down": _gamma,
}


# --- noises: the uint8 RGB copy (N x 3 x H x W) in, uint8 RGB out; medmnistc's arithmetic in float64 --------


def _to_uint8(img: torch.Tensor) -> torch.Tensor:
    """(np.clip(img, 0, 1) * 255).astype(np.uint8): truncated, as every medmnistc noise ends."""
    return img.clamp(0, 1).mul_(255).to(torch.uint8)


def _add_noise(rgb: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """GaussianNoise.apply given its draw noise = np.random.normal(size=img.shape, scale=c)."""
    return _to_uint8(rgb.double() / 255 + noise)


def _speckle(rgb: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """SpeckleNoise.apply given its draw noise = np.random.normal(size=img.shape, scale=c)."""
    img = rgb.double() / 255
    return _to_uint8(img + img * noise)


def _shot(counts: torch.Tensor, mult: float) -> torch.Tensor:
    """ShotNoise.apply given its draw counts = np.random.poisson(img * mult)."""
    return _to_uint8(counts.double() / mult)


def _salt_pepper(rgb: torch.Tensor, flipped: torch.Tensor, salted: torch.Tensor) -> torch.Tensor:
    """ImpulseNoise.apply, skimage.util.random_noise(mode='s&p', salt_vs_pepper=0.5), given its draws: a pixel
    is replaced where flipped (probability `amount`), by 1 where salted (probability 0.5), else by 0."""
    img = rgb.double() / 255
    return _to_uint8(torch.where(flipped, salted.double(), img))


def _gaussian_noise(rgb: torch.Tensor, c: float, g: torch.Generator | None) -> torch.Tensor:
    return _add_noise(rgb, _randn(rgb, g) * c)


def _speckle_noise(rgb: torch.Tensor, c: float, g: torch.Generator | None) -> torch.Tensor:
    return _speckle(rgb, _randn(rgb, g) * c)


def _shot_noise(rgb: torch.Tensor, mult: float, g: torch.Generator | None) -> torch.Tensor:
    return _shot(torch.poisson(rgb.double() / 255 * mult, generator=g), mult)


def _impulse_noise(rgb: torch.Tensor, amount: float, g: torch.Generator | None) -> torch.Tensor:
    flipped = torch.rand(rgb.shape, generator=g, device=rgb.device, dtype=torch.float64) <= amount
    salted = torch.rand(rgb.shape, generator=g, device=rgb.device, dtype=torch.float64) <= 0.5
    return _salt_pepper(rgb, flipped, salted)


def _randn(like: torch.Tensor, g: torch.Generator | None) -> torch.Tensor:
    return torch.randn(like.shape, generator=g, device=like.device, dtype=torch.float64)


_NOISES = {
    "gaussian_noise": _gaussian_noise,
    "speckle_noise": _speckle_noise,
    "impulse_noise": _impulse_noise,
    "shot_noise": _shot_noise,
}


def _luma(rgb: torch.Tensor) -> torch.Tensor:
    """PIL's convert('L') of uint8 RGB (N x 3 x H x W): (19595 R + 38470 G + 7471 B + 2**15) >> 16, the
    ITU-R 601-2 luma in 16-bit fixed point; the gray value itself where the three channels are equal."""
    r, g, b = rgb.int().unbind(1)
    return ((r * 19595 + g * 38470 + b * 7471 + (1 << 15)) >> 16).to(torch.uint8).unsqueeze(1)
