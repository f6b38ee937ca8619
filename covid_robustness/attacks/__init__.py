"""Attacks as ART EvasionAttacks built from config, whichever library implements them."""
