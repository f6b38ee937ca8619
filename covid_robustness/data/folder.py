"""Read a directory in the curated COVID-19 chest X-ray layout: one sub-folder of images per class."""

import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError
from tqdm import tqdm

from ..errors import ConfigError
from .filestats import file_statistics

EXTENSIONS = {".jpeg", ".jpg", ".jfif", ".png", ".webp"}
# data.harmonise: every image through one look before the resize (see harmonised).
HARMONISE_SIZE = 256
HARMONISE_QUALITY = 90


# The settings that name a folder and its class folders, for the error messages.
TRAINING_FOLDER = ("data.root", "data.class_dirs")
EXTERNAL_FOLDER = ("data.external_root", "data.external_class_dirs")


def list_images(
    root: Path, classes: tuple[str, ...], class_dirs: dict, settings: tuple[str, str] = TRAINING_FOLDER
) -> tuple[list[Path], np.ndarray]:
    """Image paths in a fixed (sorted) order and their labels; stops on a missing or empty class."""
    if not root.is_dir():
        raise ConfigError(
            f"{settings[0]}={str(root)!r} is not a directory; point it at a folder with one sub-folder per class."
        )
    paths, labels = [], []
    for label, cls in enumerate(classes):
        folder = root / class_dirs.get(cls, cls)
        if not folder.is_dir():
            raise ConfigError(
                f"class folder {str(folder)!r} for class {cls!r} does not exist; "
                f"set {settings[1]}.{cls} to its name "
                f"(found: {sorted(p.name for p in root.iterdir() if p.is_dir())})."
            )
        files = sorted(p for p in folder.iterdir() if p.suffix.lower() in EXTENSIONS and p.is_file())
        if not files:
            raise ConfigError(f"class folder {str(folder)!r} holds no images with extensions {sorted(EXTENSIONS)}.")
        paths += files
        labels += [label] * len(files)
    return paths, np.asarray(labels, dtype=np.int64)


def harmonised(gray: Image.Image) -> Image.Image:
    """A grayscale image as every source would look alike: histogram-equalised, resized to 256 x 256 and
    saved once as a JPEG of quality 90, so that exposure, contrast, pixel size, file format and compression
    stop telling the sources apart (data.harmonise, a remedy against source shortcuts; what the anatomy
    shows, a child's chest or an adult's, stays)."""
    img = ImageOps.equalize(gray).resize((HARMONISE_SIZE, HARMONISE_SIZE), Image.Resampling.BILINEAR)
    buffer = io.BytesIO()
    img.save(buffer, "JPEG", quality=HARMONISE_QUALITY)
    with Image.open(buffer) as jpeg:
        return jpeg.convert("L")


def decode(path: Path, size: int, stats: bool = False, harmonise: bool = False):
    """Grayscale uint8 size x size; the aspect ratio is not kept, as in the paper's 255 x 255 resize.
    With harmonise, the image goes through `harmonised` first.

    With stats, also the file's statistics (data/filestats.py: its size, mode and format as stored, its
    bytes, the mean and std of the grayscale pixels before the resize), read while the file is open.
    """
    with Image.open(path) as original:
        original.load()
        img = original
        if img.mode in ("RGBA", "LA", "P"):
            img = img.convert("RGBA")
            background = Image.new("RGBA", img.size, (0, 0, 0, 255))
            img = Image.alpha_composite(background, img)
        gray = img.convert("L")
        shown = harmonised(gray) if harmonise else gray
        pixels = np.asarray(shown.resize((size, size), Image.Resampling.BILINEAR), dtype=np.uint8)
        if not stats:
            return pixels
        return pixels, file_statistics(original, path.stat().st_size, gray)


def read_folder(
    root: Path,
    classes,
    class_dirs: dict,
    size: int,
    skip_unreadable: bool = False,
    settings=TRAINING_FOLDER,
    stats: bool = False,
    harmonise: bool = False,
):
    """Decode every image; returns (uint8 N x size x size, labels, the paths kept, skipped), and with
    stats the files' statistics (N x len(FILE_STATS), float64) as a fifth item."""
    paths, labels = list_images(Path(root), tuple(classes), dict(class_dirs), settings)
    images, keep, bad, rows = [], [], [], []
    for i, path in enumerate(tqdm(paths, desc=f"decoding {Path(root).name}", unit="img", leave=False)):
        try:
            if stats:
                pixels, row = decode(path, size, stats=True, harmonise=harmonise)
                rows.append(row)
            else:
                pixels = decode(path, size, harmonise=harmonise)
            images.append(pixels)
            keep.append(i)
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
            bad.append((path, err))
    if bad and not skip_unreadable:
        names = ", ".join(str(p) for p, _ in bad[:5]) + (" ..." if len(bad) > 5 else "")
        raise ConfigError(
            f"{len(bad)} image(s) could not be read ({names}); fix or remove them, "
            "or set data.skip_unreadable=true to leave them out."
        )
    decoded = np.stack(images), labels[keep], [paths[i] for i in keep], len(bad)
    return (*decoded, np.stack(rows)) if stats else decoded
