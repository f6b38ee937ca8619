"""One DataModule for both sources: seeded stratified train/val/test splits of in-memory images.

The folder source hashes every image; with dedupe on, near-duplicates (re-posts, re-encoded copies)
share a split, so no test image has a copy in the training set.

Images stay uint8 in memory and become float [0, 1] tensors of shape 1 x H x W; normalisation is
the model's job, so attacks and their epsilons live in pixel space.
"""

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch
from sklearn.model_selection import train_test_split
from torch.utils.data import DataLoader, TensorDataset

from ..accelerator import DeviceLoader
from ..errors import ConfigError
from ..record import Metrics
from .cache import read_folder_cached
from .classes import COVID, task_classes
from .duplicates import (
    HASH_BITS,
    count_leaked,
    group_labels,
    group_members,
    image_hashes,
    mixed_label_groups,
    near_duplicate_groups,
    within,
)
from .filestats import array_statistics
from .folder import EXTERNAL_FOLDER, TRAINING_FOLDER, read_folder
from .synthetic import synthetic_dataset

SOURCES = ("synthetic", "folder")


@dataclass
class Split:
    images: np.ndarray  # uint8 N x H x W
    labels: np.ndarray  # int64 N

    def tensors(self) -> TensorDataset:
        x = torch.from_numpy(self.images).unsqueeze(1).float().div_(255)
        return TensorDataset(x, torch.from_numpy(self.labels))


def _hash(sha, header: str, *arrays: np.ndarray):
    """sha updated with the header and the arrays' bytes, in order (a digest of data read into memory)."""
    sha.update(header.encode())
    for array in arrays:
        sha.update(np.ascontiguousarray(array).data)
    return sha


@dataclass(eq=False)
class CXRDataModule(pl.LightningDataModule):
    source: str = "synthetic"
    task: str = "binary"
    image_size: int = 64
    batch_size: int = 64
    test_fraction: float = 0.2
    val_fraction: float = 0.1
    seed: int = 0
    num_workers: int = 0
    n_images: int = 1600  # synthetic only
    root: str | None = None  # folder only
    class_dirs: dict = field(default_factory=dict)
    skip_unreadable: bool = False
    cache: bool = True  # folder only: keep decoded images in cache_dir
    cache_dir: str | None = None  # null: $XDG_CACHE_HOME/covid-robustness or ~/.cache/covid-robustness
    dedupe: bool = True  # folder only: keep each group of near-duplicates in one split
    dedupe_distance: int = 28  # folder only: most differing bits (of 256) between near-duplicates
    external_root: str | None = None  # another source's folder in the same layout: evaluated on, never trained on
    external_class_dirs: dict = field(default_factory=dict)  # class -> folder name under external_root
    harmonise: bool = False  # folder only: every image (and the external set's) through folder.harmonised

    def __post_init__(self):
        super().__init__()
        self.classes = task_classes(self.task)
        if self.source not in SOURCES:
            raise ConfigError(f"data.source={self.source!r} is not a data source; choose one of {list(SOURCES)}.")
        for name in ("test_fraction", "val_fraction"):
            if not 0 < getattr(self, name) < 1:
                raise ConfigError(f"data.{name}={getattr(self, name)} must lie strictly between 0 and 1.")
        if not 0 <= self.dedupe_distance < HASH_BITS:
            raise ConfigError(
                f"data.dedupe_distance={self.dedupe_distance} must be a number of differing hash bits "
                f"from 0 to {HASH_BITS - 1}; 28 groups re-encoded, brightened or resized copies, not different X-rays."
            )
        self.splits: dict[str, Split] = {}
        self.indices: dict[str, np.ndarray] = {}  # split -> indices into the source's images
        self.hashes: np.ndarray | None = None  # folder only: packed perceptual hash per image
        self.groups: np.ndarray | None = None  # folder only: near-duplicate group id per image
        self.labels: np.ndarray | None = None  # every image's label, in the source's order
        self.file_stats: np.ndarray | None = None  # every image's file statistics (data/filestats.py), same order
        self.skipped = 0
        self.external: Split | None = None  # external_root's images, in a seeded random order
        self.external_hashes: np.ndarray | None = None
        self.external_skipped = 0
        self._digest: str | None = None
        self.device: torch.device | None = None  # on_device: batches sliced from images kept there
        self.channels_last = False
        self._shuffle: torch.Generator | None = None  # the training loader's, as it draws the epochs' orders
        self._resume_shuffle: torch.Tensor | None = None  # its state in a checkpoint a training resumes from

    def on_device(self, device: torch.device, channels_last: bool = False) -> None:
        """Keep every split's uint8 images on `device` and cut the batches there (accelerator.DeviceLoader)."""
        self.device, self.channels_last = device, channels_last

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def positive_class(self) -> int:
        return self.classes.index(COVID)

    def _load(self) -> tuple[np.ndarray, np.ndarray]:
        if self.source == "synthetic":
            images, labels = synthetic_dataset(self.n_images, self.classes, self.image_size, self.seed)
            self.file_stats = array_statistics(images)  # no files: the generated image's size, mode L, mean, std
            return images, labels
        if self.root is None:
            raise ConfigError(
                "data.root is not set; give the folder that holds the class folders, e.g. data.root=../shared/data/cxr."
            )
        images, labels, self.hashes, self.skipped, self.file_stats = self._read(
            self.root, self.class_dirs, self.skip_unreadable, TRAINING_FOLDER
        )
        return images, labels

    def _read(self, root, class_dirs: dict, skip_unreadable: bool, settings: tuple[str, str]):
        """(images, labels, perceptual hashes, skipped, file statistics) of a folder, from the cache when
        data.cache is on."""
        if not self.cache:
            images, labels, _, skipped, stats = read_folder(
                root,
                self.classes,
                class_dirs,
                self.image_size,
                skip_unreadable,
                settings,
                stats=True,
                harmonise=self.harmonise,
            )
            return images, labels, image_hashes(images), skipped, stats
        return read_folder_cached(
            root, self.classes, class_dirs, self.image_size, skip_unreadable, self.cache_dir, settings, self.harmonise
        )

    def _load_external(self) -> None:
        """external_root's images at this image size, shuffled once with the seed: the first N of them
        (eval.max_images) are a random draw of both classes, not the first class folder."""
        images, labels, hashes, self.external_skipped, _ = self._read(
            self.external_root, self.external_class_dirs, self.skip_unreadable, EXTERNAL_FOLDER
        )
        order = np.random.default_rng(self.seed).permutation(len(labels))
        self.external = Split(images[order], labels[order])
        self.external_hashes = hashes[order]

    def setup(self, stage: str | None = None):
        if self.splits:
            return
        if self.external_root is not None:
            self._load_external()
        images, labels = self._load()
        self.labels = labels
        if self.hashes is not None:
            self.groups = near_duplicate_groups(self.hashes, self.dedupe_distance)
        # The split draws units: near-duplicate groups, or single images. Each unit is stratified by its
        # most common label; a group with mixed labels (one image filed under two classes) goes whole to
        # one split and its images keep their own labels. With single images (every group of one, or
        # dedupe off) the units are the image indices and the split is the plain stratified one.
        units = self.groups if self.dedupe and self.groups is not None else np.arange(len(labels))
        members, unit_labels = group_members(units), group_labels(labels, units)
        idx = np.arange(len(members))
        try:
            train, test = train_test_split(
                idx, test_size=self.test_fraction, stratify=unit_labels, random_state=self.seed
            )
            train, val = train_test_split(
                train, test_size=self.val_fraction, stratify=unit_labels[train], random_state=self.seed
            )
        except ValueError as err:
            counts = dict(zip(self.classes, np.bincount(labels, minlength=self.num_classes).tolist()))
            grouped = (
                (
                    f"; near-duplicates make them {len(members)} groups that cannot be parted "
                    "(data.dedupe=false splits single images)"
                )
                if len(members) < len(labels)
                else ""
            )
            raise ConfigError(
                f"{len(labels)} images {counts} are too few to split with test_fraction={self.test_fraction} and "
                f"val_fraction={self.val_fraction}: every split needs images of every class{grouped} ({err})."
            ) from err
        self.indices = {
            name: np.concatenate([members[u] for u in split])
            for name, split in (("train", train), ("val", val), ("test", test))
        }
        self.splits = {name: Split(images[i], labels[i]) for name, i in self.indices.items()}

    def split_metrics(self) -> dict[str, float]:
        """Near-duplicates of the folder source, whatever dedupe is; empty for the synthetic source.

        test_near_duplicates_in_train: test images with a near-duplicate in the training split (leakage);
        near_duplicate_groups / near_duplicate_images: groups of 2+ images and the images in them;
        near_duplicate_groups_mixed_labels: such groups whose images carry different labels.
        """
        self.setup()
        if self.hashes is None:
            return {}
        sizes = np.bincount(self.groups)
        return {
            Metrics.TEST_NEAR_DUPLICATES: float(
                count_leaked(self.hashes, self.indices["test"], self.indices["train"], self.dedupe_distance)
            ),
            Metrics.NEAR_DUPLICATE_GROUPS: float((sizes > 1).sum()),
            Metrics.NEAR_DUPLICATE_IMAGES: float(sizes[sizes > 1].sum()),
            Metrics.NEAR_DUPLICATE_GROUPS_MIXED: float(mixed_label_groups(self.labels, self.groups)),
        }

    def external_metrics(self) -> dict[str, float]:
        """The external test set's size and class counts, and how many of its images have a near-duplicate
        in the training split (a copy of a training image measures memory, not transfer); {} without one.
        """
        self.setup()
        if self.external is None:
            return {}
        counts = np.bincount(self.external.labels, minlength=self.num_classes)
        metrics = {
            Metrics.EXTERNAL_IMAGES: float(len(self.external.labels)),
            Metrics.EXTERNAL_SKIPPED: float(self.external_skipped),
        }
        metrics |= {f"{Metrics.EXTERNAL_IMAGES}_{c}": float(n) for c, n in zip(self.classes, counts)}
        train = self.splits["train"].images if self.hashes is None else None
        train_hashes = image_hashes(train) if train is not None else self.hashes[self.indices["train"]]
        leaked = within(self.external_hashes, train_hashes, self.dedupe_distance).any(1).sum()
        metrics[Metrics.EXTERNAL_NEAR_DUPLICATES] = float(leaked)
        return metrics

    def digest(self) -> str:
        """12 hex digits of a sha256 over the decoded images, their labels and the split each went to.

        Hashes the arrays in memory, once: equal digests mean the same training and test images,
        whatever folder they came from. The split is part of it because MLflow keeps one profile
        (split sizes, class counts) per dataset name and digest.
        """
        self.setup()
        if self._digest is None:
            sha = hashlib.sha256()
            for name, split in self.splits.items():
                header = f"{name} {split.images.shape} {split.images.dtype};"
                _hash(sha, header, self.indices[name].astype(np.int64), split.images, split.labels.astype(np.int64))
            self._digest = sha.hexdigest()[:12]
        return self._digest

    def dataset_info(self) -> dict:
        """What a run saw, for MLflow's dataset input: name, source, digest, classes and split sizes.

        source_type "local" makes the MLflow UI show source as a path; the synthetic source is
        described by the generator settings that determine its images.
        """
        self.setup()
        if self.source == "folder":
            root = Path(self.root).resolve()
            name, source_type, source = f"{root.name}-{self.task}", "local", str(root)
        else:
            name, source_type = f"synthetic-{self.task}", "synthetic"
            source = (
                f"covid_robustness.data.synthetic(n_images={self.n_images}, "
                f"image_size={self.image_size}, seed={self.seed})"
            )
        return {
            "name": name,
            "source_type": source_type,
            "source": source,
            "digest": self.digest(),
            "classes": list(self.classes),
            "image_size": self.image_size,
            "skipped": self.skipped,
            "split_sizes": {k: len(s.labels) for k, s in self.splits.items()},
            "class_counts": {
                k: dict(zip(self.classes, np.bincount(s.labels, minlength=self.num_classes).tolist()))
                for k, s in self.splits.items()
            },
        }

    def external_info(self) -> dict | None:
        """The external test set as dataset_info gives the training data (its own name, source and digest,
        one split "external"), for the runs that evaluate on it; None without one."""
        self.setup()
        if self.external is None:
            return None
        root = Path(self.external_root).resolve()
        images, labels = self.external.images, self.external.labels.astype(np.int64)
        sha = _hash(hashlib.sha256(), f"external {images.shape};", images, labels)
        counts = np.bincount(self.external.labels, minlength=self.num_classes).tolist()
        return {
            "name": f"{root.name}-{self.task}",
            "source_type": "local",
            "source": str(root),
            "digest": sha.hexdigest()[:12],
            "classes": list(self.classes),
            "image_size": self.image_size,
            "skipped": self.external_skipped,
            "split_sizes": {"external": len(self.external.labels)},
            "class_counts": {"external": dict(zip(self.classes, counts))},
        }

    def file_statistics(self, split: str) -> tuple[np.ndarray, np.ndarray]:
        """A split's file statistics (N x len(FILE_STATS), data/filestats.py) and labels."""
        self.setup()
        return self.file_stats[self.indices[split]], self.splits[split].labels

    def pixel_stats(self) -> tuple[float, float]:
        """Mean and std of training pixels in [0, 1]: the model's built-in normalisation."""
        x = self.splits["train"].images.astype(np.float64) / 255
        return float(x.mean()), float(x.std())

    def _loader(self, split: str, shuffle: bool) -> DataLoader | DeviceLoader:
        gen = torch.Generator().manual_seed(self.seed)
        data = self.splits[split]
        # A last training batch of one image breaks BatchNorm; the shuffle moves it every epoch.
        drop_last = shuffle and len(data.labels) > self.batch_size
        if self.device is not None:
            return DeviceLoader(
                data.images,
                data.labels,
                self.batch_size,
                shuffle,
                gen if shuffle else None,
                drop_last,
                self.device,
                self.channels_last,
                dataset=data.tensors() if split == "test" else None,
            )
        return DataLoader(
            data.tensors(),
            batch_size=self.batch_size,
            shuffle=shuffle,
            num_workers=self.num_workers,
            generator=gen if shuffle else None,
            drop_last=drop_last,
        )

    def train_dataloader(self):
        loader = self._loader("train", shuffle=True)
        if self._resume_shuffle is not None:
            loader.generator.set_state(self._resume_shuffle)
        self._shuffle = loader.generator
        return loader

    # The shuffle's state travels in a training's checkpoints (Lightning saves a DataModule's state_dict and
    # restores it before it asks for the training loader), so a training resumed after epoch k draws the
    # orders of epochs k+1... that an uninterrupted one draws. The weights' other random draws are the
    # global generators' (job/epochs.py).
    def state_dict(self) -> dict:
        return {} if self._shuffle is None else {"train_shuffle": self._shuffle.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self._resume_shuffle = state.get("train_shuffle")

    def teardown(self, stage: str) -> None:
        if stage == "fit":  # the next training of this data starts from the seed unless it resumes too
            self._shuffle = self._resume_shuffle = None

    def val_dataloader(self):
        return self._loader("val", shuffle=False)

    def test_dataloader(self):
        return self._loader("test", shuffle=False)
