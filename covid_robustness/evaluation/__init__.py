"""Attacking a trained model and measuring what the attack did: evaluate() and its options, the Lightning
callback around it, the corrupted and external readings, the checks on every adversarial batch, figures."""
