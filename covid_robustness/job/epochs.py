"""A training's last finished epoch, kept in the store so that a training killed part-way (SIGKILL, a
SLURM time limit, a preemption) goes on from it at the next launch instead of from epoch 0.

Lightning's checkpoint holds the weights, the optimizer, the schedule, the loop's counters and the
DataModule's state (the training loader's shuffle: data/datamodule.py); it does not hold the global
random states behind random starts and noise. EpochCheckpoint adds them, so the resumed training draws
what the uninterrupted one would have drawn and ends with the same weights (on a CPU; a GPU's
nondeterministic kernels differ between any two runs). Lightning's own ModelCheckpoint writes in place;
a kill during its write would leave half a file under the name, so this one writes aside and renames.
"""

import random
import time
from pathlib import Path

import numpy as np
import torch
from pytorch_lightning.callbacks import Callback

from ..files import written_aside


def random_states() -> dict:
    """The global generators a training epoch may draw from: torch's (CPU and CUDA), numpy's, Python's."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        # as plain values: Lightning reads checkpoints with torch.load(weights_only=True)
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached],
        "python": random.getstate(),
    }


def set_random_states(states: dict) -> None:
    torch.set_rng_state(states["torch"])
    if states["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])
    kind, keys, pos, has_gauss, cached = states["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    version, internal, gauss = states["python"]
    random.setstate((version, tuple(internal), gauss))


class EpochCheckpoint(Callback):
    """Writes the trainer's state after each training epoch to `path`; fit(ckpt_path=path) resumes it.

    `run_id` (the training's MLflow run) and `seconds` (training time before this process) travel with it,
    so the resumed training logs into the same run and reports its whole time.
    """

    def __init__(self, path: Path, run_id: str, seconds: float = 0.0):
        self.path = Path(path)
        self.run_id = run_id
        self.seconds = seconds  # before this process started training
        self._started = 0.0
        self._restore: dict | None = None
        self._pending: dict | None = None  # the last finished epoch's state, until the next epoch starts

    def state_dict(self) -> dict:
        return {
            "run_id": self.run_id,
            "seconds": self.elapsed(),
            "random": random_states(),
        }

    def load_state_dict(self, state: dict) -> None:
        self._restore = state["random"]  # set once the training loader exists (on_train_start)

    def elapsed(self) -> float:
        return self.seconds + (time.perf_counter() - self._started if self._started else 0.0)

    def on_train_start(self, trainer, pl_module):
        self._started = time.perf_counter()
        if self._restore is not None:
            set_random_states(self._restore)
            self._restore = None

    def on_train_epoch_end(self, trainer, pl_module):
        # The state to resume from is the epoch's end (Lightning resumes a checkpoint of an epoch's start by
        # skipping that epoch's batches), but the epoch's metrics reach the logger only after its end hooks:
        # the state is taken here and written when the next epoch starts, so a resumed run's history holds
        # every epoch's metrics once. Nothing changes the weights or the optimizer in between.
        self._pending = trainer._checkpoint_connector.dump_checkpoint(weights_only=False)

    def on_train_epoch_start(self, trainer, pl_module):
        if self._pending is None:
            return
        with written_aside(self.path) as tmp:
            trainer.strategy.save_checkpoint(self._pending, tmp)
        self._pending = None


def saved_progress(path: Path) -> dict | None:
    """What the epoch checkpoint at path says of its training (run_id, seconds, epochs done), without
    reading its tensors; None when there is none or it cannot be read."""
    if not Path(path).is_file():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        ours = next(v for k, v in state["callbacks"].items() if k.startswith(EpochCheckpoint.__qualname__))
        return {"run_id": ours["run_id"], "seconds": float(ours["seconds"]), "epochs": int(state["epoch"]) + 1}
    except Exception:  # a checkpoint from another version or a damaged file: train from the start
        return None
