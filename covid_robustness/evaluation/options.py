"""What one evaluation is asked to do, as one value: evaluate(), evaluate_corrupted(), external_evaluation()
and the Lightning callback all take an EvaluationOptions, so an option is declared once here instead of
being threaded through each of their signatures."""

from dataclasses import dataclass, field

from torch import nn

from ..defenses.transforms import Defense


@dataclass
class EvaluationOptions:
    """The attack config as conf/attack/*.yaml resolves it (with_target applied), the task's number of
    classes and its COVID-19 class index, and how the evaluation runs."""

    attack: dict
    num_classes: int
    positive_class: int
    defense: Defense | None = field(default_factory=Defense)  # None: no defense
    source: nn.Module | None = None  # the network a transfer attack crafts its examples on
    max_images: int | None = None  # attack the first max_images test images; None: all of them
    first_image: int = 0  # ... counted from this one: a slice of the split (a long evaluation cut into jobs)
    batch_size: int = 64
    n_examples: int = 6  # images kept for the example grid
    seed: int = 0  # the random state is seeded with it right before the attack
    progress: bool | None = None  # a progress bar; None: shown, unless the callback's trainer shows none
    # The operating points' thresholds (operating_point.py), chosen on the validation split.
    thresholds: dict[str, float] | None = None
    # The model's accuracy on the whole test split, if measured: it feeds the untrained-model check.
    test_accuracy: float | None = None
    # The corruption config the callback evaluates the test split under (corrupted.py); evaluate() itself
    # attacks the images it is given.
    corruption: dict | None = None
    # Escalation (escalation.py): the images the attack leaves standing go through a ladder of stronger and
    # different attacks at the same budget; on the first attacked images holding escalate_max_images of them.
    escalate: bool = False
    escalate_max_images: int | None = None
    escalate_max_iter: int = 100  # steps of each APGD run
    escalate_restarts: int = 3  # random starts of APGD on the margin loss
    escalate_square_queries: int = 5000
    escalation_sources: dict[str, nn.Module] | None = None  # the study's other models, for the transfer stage

    def __post_init__(self):
        self.attack = dict(self.attack)  # the caller's config stays as it was
        if self.defense is None:
            self.defense = Defense()
