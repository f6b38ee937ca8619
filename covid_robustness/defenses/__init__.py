"""Defenses: adversarial training (how a model is trained) and input transformations (how it is queried)."""
