"""Decode once: time the folder source cold (decoding) and warm (cache), against one training epoch.

    .venv/bin/python bench/data_loading.py --root ../shared/data/cxr --image-size 64

Prints the three times and the ratio of the warm load to the epoch (target: under 5%).
"""

import argparse
import tempfile
import time

import pytorch_lightning as pl
import torch

from covid_robustness.data.datamodule import CXRDataModule
from covid_robustness.models.module import CXRClassifier


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", default="../shared/data/cxr")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--model", default="resnet18")
    parser.add_argument("--task", default="binary")
    args = parser.parse_args()
    torch.set_num_threads(torch.get_num_threads())

    with tempfile.TemporaryDirectory() as cache_dir:

        def load():
            dm = CXRDataModule(
                source="folder",
                root=args.root,
                task=args.task,
                image_size=args.image_size,
                cache_dir=cache_dir,
                batch_size=32,
            )
            dm.setup()
            return dm

        dm, cold = timed(load)
        _, warm = timed(load)
    module = CXRClassifier(args.model, dm.num_classes, dm.positive_class, *dm.pixel_stats())
    trainer = pl.Trainer(
        max_epochs=1,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
    )
    _, epoch = timed(lambda: trainer.fit(module, datamodule=dm))
    n = sum(len(s.labels) for s in dm.splits.values())
    print(f"{n} images at {args.image_size} px, {args.model}, {torch.get_num_threads()} threads")
    print(f"{'cold load (decode + cache write)':<36}{cold:>9.2f} s")
    print(f"{'warm load (cache hit)':<36}{warm:>9.2f} s")
    print(f"{'one training epoch':<36}{epoch:>9.2f} s")
    print(f"{'warm load / epoch':<36}{warm / epoch:>9.1%}   (target < 5%)")
    print(f"{'cold load / warm load':<36}{cold / warm:>9.1f}x")


if __name__ == "__main__":
    main()
