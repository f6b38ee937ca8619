"""covid-robustness: how far a chest X-ray classifier can be trusted when its input is perturbed."""

from omegaconf import OmegaConf

# ${px:8} in a config is 8/255: budgets read as intensity levels, stored on [0, 1] pixels.
if not OmegaConf.has_resolver("px"):
    OmegaConf.register_new_resolver("px", lambda levels: float(levels) / 255)
