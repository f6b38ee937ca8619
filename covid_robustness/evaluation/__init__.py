"""Attacking a trained model: the Lightning callback, the checks on every adversarial batch, figures."""
