"""The evaluation callback: after a Lightning test loop, attack the model's test split (evaluate), or
the split corrupted at each severity of the job's corruption (evaluate_corrupted)."""

import pytorch_lightning as pl

from .corrupted import NONE, evaluate_corrupted
from .evaluate import EvaluationResult, evaluate


class AdversarialEvaluation(pl.Callback):
    """Runs `evaluate` on the test split when the test loop ends; the result waits in `.result`.

    It writes nothing: the caller decides where the result goes (a job logs it to its MLflow run).
    """

    def __init__(self, attack: dict, num_classes: int, positive_class: int, corruption: dict | None = None, **options):
        self.attack, self.num_classes, self.positive_class = dict(attack), num_classes, positive_class
        self.corruption = corruption if corruption and corruption.get("name", NONE) != NONE else None
        self.options = options  # evaluate's keyword arguments: defense, source, max_images, batch_size, ...
        self.result: EvaluationResult | None = None

    def on_test_end(self, trainer, pl_module):
        accuracy = trainer.callback_metrics.get("test/acc")
        options = {"progress": bool(trainer.progress_bar_callback), **self.options}
        if self.corruption is not None:  # the test split corrupted at each severity, then attacked
            self.result = evaluate_corrupted(
                pl_module.net,
                trainer.test_dataloaders.dataset,
                self.corruption,
                self.attack,
                self.num_classes,
                self.positive_class,
                test_accuracy=None if accuracy is None else float(accuracy),
                **options,
            )
            return
        self.result = evaluate(
            pl_module.net,
            trainer.test_dataloaders.dataset,
            self.attack,
            self.num_classes,
            self.positive_class,
            test_accuracy=None if accuracy is None else float(accuracy),
            **options,
        )
