"""The evaluation callback: after a Lightning test loop, attack the model's test split (evaluate), or
the split corrupted at each severity of the job's corruption (evaluate_corrupted)."""

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace

import pytorch_lightning as pl

from ..record import Metrics
from .corrupted import NONE, evaluate_corrupted
from .evaluate import EvaluationResult, evaluate
from .options import EvaluationOptions


@contextmanager
def sigterm_ends_the_process() -> Iterator[None]:
    """SIGTERM's default action (the process ends) while the block runs, the handler before it afterwards.

    Lightning's trainer replaces SIGTERM's handler with one that only takes note, for its loops to stop at
    the next batch; an attack runs after the test loop's last batch, so `kill` (or scancel) would go
    unheeded for the whole attack, and the sweep would go on. A job ended there is marked interrupted and
    run again by the next launch (job/cell.py).
    """
    if threading.current_thread() is not threading.main_thread():  # handlers are set in the main thread only
        yield
        return
    before = signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, before)


class AdversarialEvaluation(pl.Callback):
    """Runs `evaluate` on the test split when the test loop ends; the result waits in `.result`.

    It writes nothing: the caller decides where the result goes (a job logs it to its MLflow run).
    """

    def __init__(self, options: EvaluationOptions):
        self.options = options
        self.result: EvaluationResult | None = None

    def on_test_end(self, trainer, pl_module):
        accuracy = trainer.callback_metrics.get(Metrics.TEST_ACCURACY)
        progress = bool(trainer.progress_bar_callback) if self.options.progress is None else self.options.progress
        options = replace(self.options, test_accuracy=None if accuracy is None else float(accuracy), progress=progress)
        corruption = options.corruption
        test_set = trainer.test_dataloaders.dataset
        with sigterm_ends_the_process():
            if corruption and corruption.get("name", NONE) != NONE:  # the test split corrupted at each severity
                self.result = evaluate_corrupted(pl_module.net, test_set, options)
            else:
                self.result = evaluate(pl_module.net, test_set, options)
