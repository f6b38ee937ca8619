"""The evaluation callback: after a Lightning test loop, attack the model's test split (evaluate), or
the split corrupted at each severity of the job's corruption (evaluate_corrupted)."""

from dataclasses import replace

import pytorch_lightning as pl

from ..record import Metrics
from .corrupted import NONE, evaluate_corrupted
from .evaluate import EvaluationResult, evaluate
from .options import EvaluationOptions


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
        if corruption and corruption.get("name", NONE) != NONE:  # the test split corrupted at each severity
            self.result = evaluate_corrupted(pl_module.net, test_set, options)
        else:
            self.result = evaluate(pl_module.net, test_set, options)
