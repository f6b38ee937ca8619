"""Decode once: the folder source's images as one uint8 array on disk, keyed by what went into it.

The key hashes the image size, the class mapping, the skip setting, the perceptual hash's name and
every file's path, size and modification time, so a changed, added or removed file makes a new entry
instead of a stale hit. Each entry holds the images' perceptual hashes and the files' statistics
(data/filestats.py) too: a warm run hashes nothing and reads no file. An entry written before the
statistics existed (or with other statistics) is decoded and written again.
"""

import hashlib
import json
import os
from pathlib import Path

import numpy as np

from ..files import written_aside
from .duplicates import HASH_NAME, image_hashes
from .filestats import FILE_STATS
from .folder import TRAINING_FOLDER, list_images, read_folder


def default_cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "covid-robustness"


def cache_key(
    root: Path, paths: list[Path], size: int, classes, class_dirs: dict, skip: bool, harmonise: bool = False
) -> str:
    files = [(str(p.relative_to(root)), p.stat().st_size, p.stat().st_mtime_ns) for p in paths]
    # harmonise joins the key only when on: the entries of plain decoding keep their keys.
    blob = json.dumps(
        [size, list(classes), sorted(class_dirs.items()), skip, HASH_NAME, files, *["harmonise"] * harmonise]
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def read_folder_cached(
    root,
    classes,
    class_dirs: dict,
    size: int,
    skip_unreadable: bool = False,
    cache_dir: str | Path | None = None,
    settings: tuple[str, str] = TRAINING_FOLDER,
    harmonise: bool = False,
):
    """(images, labels, perceptual hashes, skipped, file statistics), decoded and hashed only when no entry
    with these statistics matches."""
    root = Path(root)
    paths, _ = list_images(root, tuple(classes), dict(class_dirs), settings)
    path = (
        Path(cache_dir or default_cache_dir())
        / f"{cache_key(root, paths, size, classes, class_dirs, skip_unreadable, harmonise)}.npz"
    )
    if path.is_file():
        with np.load(path) as f:
            if "stats" in f.files and tuple(f["stats_names"].tolist()) == FILE_STATS:
                return f["images"], f["labels"], f["hashes"], int(f["skipped"]), f["stats"]
    images, labels, _, skipped, stats = read_folder(
        root, classes, class_dirs, size, skip_unreadable, settings, stats=True, harmonise=harmonise
    )
    hashes = image_hashes(images)
    with written_aside(path) as tmp, open(tmp, "wb") as f:  # np.savez would add .npz to a name
        np.savez(
            f,
            images=images,
            labels=labels,
            hashes=hashes,
            skipped=skipped,
            stats=stats,
            stats_names=np.array(FILE_STATS),
        )
    return images, labels, hashes, skipped, stats
