"""A few global statistics of each ORIGINAL image file: what a classifier can read without the lungs.

The statistics probe (covid_robustness/probe.py) fits a classifier on these alone. In the curated COVID-19
sets every Normal image is a 224 x 224 JPEG of a child while the COVID-19 images are adults of mixed size
and format, so size, mode and format can give the class away. They are computed while a folder is
decoded (the file is open then anyway) and kept in the decode cache beside the images.
"""

import numpy as np
from PIL import Image

MODES = ("L", "RGB", "RGBA", "P", "I;16")  # and "other"; I;16B and I;16L count as I;16
FORMATS = ("JPEG", "PNG")  # and "other" (WEBP, none for a generated image)
FILE_STATS = (
    "width",
    "height",
    "aspect_ratio",
    *(f"mode_{m}" for m in (*MODES, "other")),
    *(f"format_{f}" for f in (*FORMATS, "other")),
    "file_bytes",
    "gray_mean",
    "gray_std",
)


def statistics_row(
    width: int, height: int, mode: str, file_format: str | None, file_bytes: int, gray: np.ndarray
) -> np.ndarray:
    """One image's FILE_STATS (float64); gray is the original-size grayscale image the decoder resizes."""
    mode = "I;16" if mode.startswith("I;16") else mode
    modes = [float(mode == m) for m in MODES] + [float(mode not in MODES)]
    formats = [float(file_format == f) for f in FORMATS] + [float(file_format not in FORMATS)]
    pixels = np.asarray(gray, dtype=np.float64)
    return np.array(
        [width, height, width / height, *modes, *formats, file_bytes, pixels.mean(), pixels.std()], dtype=np.float64
    )


def file_statistics(img: Image.Image, file_bytes: int, gray: Image.Image) -> np.ndarray:
    """The FILE_STATS of an opened file (its size, mode and format as stored) and its grayscale pixels."""
    return statistics_row(img.width, img.height, img.mode, img.format, file_bytes, np.asarray(gray))


def array_statistics(images: np.ndarray) -> np.ndarray:
    """N x FILE_STATS of generated uint8 images (the synthetic source): their size, mode L, format none,
    no file (0 bytes), mean and std."""
    if len(images) == 0:
        return np.zeros((0, len(FILE_STATS)))
    _, h, w = images.shape
    return np.stack([statistics_row(w, h, "L", None, 0, image) for image in images])
