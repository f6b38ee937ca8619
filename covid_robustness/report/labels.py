"""Model and attack names as the tables print them, in the paper's order.

A job's run carries its model's and its attack's labels (the registries', tags model_label and
attack_label); a study's Labels are read from its runs (collect.py), so the report needs no model or
attack code. Runs logged before the tags existed get the paper's names below.
"""

from dataclasses import dataclass, field

# The paper's columns (Tables I and II), in its order, with its headers.
PAPER_MODELS = {
    "resnet18": "RN-18",
    "resnet50": "RN-50",
    "wrn16_8": "WRN-16-8",
    "vgg19": "VGG-19",
    "inception_v3": "Inc-v3",
}
# The attacks in the order rows list them.
ATTACKS = {"fgsm": "FGSM", "pgd": "PGD", "apgd": "APGD", "autoattack_binary": "AutoAttack-2", "cw": "C&W", "st": "ST"}


@dataclass(frozen=True)
class Labels:
    """The labels a study's runs give their models and attacks; a name they give none gets the paper's."""

    models: dict[str, str] = field(default_factory=dict)
    attacks: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, jobs) -> "Labels":
        """The labels the jobs' runs carry (tags model_label, attack_label)."""
        jobs = list(jobs)
        return cls(
            {j.model: j.model_label for j in jobs if j.model_label},
            # an L2 job's label says so ("PGD-L2"); its evaluation set's budget says it too ("L2 eps=0.5")
            {j.attack: j.attack_label.removesuffix("-L2") for j in jobs if j.attack_label},
        )

    def model(self, model: str) -> str:
        return self.models.get(model) or PAPER_MODELS.get(model, model)

    def attack(self, attack: str) -> str:
        return self.attacks.get(attack) or ATTACKS.get(attack, attack.upper())


def model_order(models) -> list[str]:
    """The paper's column order, then any model it did not have."""
    return [m for m in PAPER_MODELS if m in models] + sorted(set(models) - set(PAPER_MODELS))
