"""One DataModule for both sources: seeded stratified train/val/test splits of in-memory images.

Images stay uint8 in memory and become float [0, 1] tensors of shape 1 x H x W; normalisation is
the model's job, so attacks and their epsilons live in pixel space.
"""

from dataclasses import dataclass, field

import numpy as np
import pytorch_lightning as pl
import torch
from sklearn.model_selection import train_test_split
from torch.utils.data import DataLoader, TensorDataset

from ..errors import ConfigError
from .classes import COVID, task_classes
from .cache import read_folder_cached
from .folder import read_folder
from .synthetic import synthetic_dataset

SOURCES = ("synthetic", "folder")


@dataclass
class Split:
    images: np.ndarray  # uint8 N x H x W
    labels: np.ndarray  # int64 N

    def tensors(self) -> TensorDataset:
        x = torch.from_numpy(self.images).unsqueeze(1).float().div_(255)
        return TensorDataset(x, torch.from_numpy(self.labels))


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

    def __post_init__(self):
        super().__init__()
        self.classes = task_classes(self.task)
        if self.source not in SOURCES:
            raise ConfigError(f"data.source={self.source!r} is not a data source; choose one of {list(SOURCES)}.")
        for name in ("test_fraction", "val_fraction"):
            if not 0 < getattr(self, name) < 1:
                raise ConfigError(f"data.{name}={getattr(self, name)} must lie strictly between 0 and 1.")
        self.splits: dict[str, Split] = {}
        self.skipped = 0

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def positive_class(self) -> int:
        return self.classes.index(COVID)

    def _load(self) -> tuple[np.ndarray, np.ndarray]:
        if self.source == "synthetic":
            return synthetic_dataset(self.n_images, self.classes, self.image_size, self.seed)
        if self.root is None:
            raise ConfigError("data.root is not set; give the folder that holds the class folders, e.g. data.root=../shared/data/cxr.")
        if not self.cache:
            images, labels, _, self.skipped = read_folder(
                self.root, self.classes, self.class_dirs, self.image_size, self.skip_unreadable)
            return images, labels
        images, labels, self.skipped = read_folder_cached(
            self.root, self.classes, self.class_dirs, self.image_size, self.skip_unreadable, self.cache_dir)
        return images, labels

    def setup(self, stage: str | None = None):
        if self.splits:
            return
        images, labels = self._load()
        idx = np.arange(len(labels))
        try:
            train, test = train_test_split(idx, test_size=self.test_fraction, stratify=labels, random_state=self.seed)
            train, val = train_test_split(train, test_size=self.val_fraction, stratify=labels[train], random_state=self.seed)
        except ValueError as err:
            counts = dict(zip(self.classes, np.bincount(labels, minlength=self.num_classes).tolist()))
            raise ConfigError(
                f"{len(labels)} images {counts} are too few to split with test_fraction={self.test_fraction} and "
                f"val_fraction={self.val_fraction}: every split needs images of every class ({err})."
            ) from err
        self.splits = {name: Split(images[i], labels[i]) for name, i in (("train", train), ("val", val), ("test", test))}

    def pixel_stats(self) -> tuple[float, float]:
        """Mean and std of training pixels in [0, 1]: the model's built-in normalisation."""
        x = self.splits["train"].images.astype(np.float64) / 255
        return float(x.mean()), float(x.std())

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        gen = torch.Generator().manual_seed(self.seed)
        data = self.splits[split].tensors()
        return DataLoader(
            data, batch_size=self.batch_size, shuffle=shuffle, num_workers=self.num_workers,
            generator=gen if shuffle else None,
            # A last training batch of one image breaks BatchNorm; the shuffle moves it every epoch.
            drop_last=shuffle and len(data) > self.batch_size,
        )

    def train_dataloader(self):
        return self._loader("train", shuffle=True)

    def val_dataloader(self):
        return self._loader("val", shuffle=False)

    def test_dataloader(self):
        return self._loader("test", shuffle=False)
