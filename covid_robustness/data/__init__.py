"""Chest X-ray images: a synthetic generator, a curated-dataset folder reader, one DataModule."""
