"""Model and attack names as the tables print them, in the paper's order.

A job's run carries its model's and its attack's labels (the registries', tags model_label and
attack_label); the report learns the labels from the runs it reads, so it needs no model or attack
code. Runs logged before the tags existed get the labels below.
"""

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
_models: dict[str, str] = {}
_attacks: dict[str, str] = {}


def learn_labels(jobs) -> None:
    """Remember the labels each job's run gives its model and its attack."""
    _models.update({j.model: j.model_label for j in jobs if j.model_label})
    _attacks.update({j.attack: j.attack_label for j in jobs if j.attack_label})


def model_label(model: str) -> str:
    return _models.get(model) or PAPER_MODELS.get(model, model)


def attack_label(attack: str) -> str:
    return _attacks.get(attack) or ATTACKS.get(attack, attack.upper())


def model_order(models) -> list[str]:
    """The paper's column order, then any model it did not have."""
    return [m for m in PAPER_MODELS if m in models] + sorted(set(models) - set(PAPER_MODELS))
