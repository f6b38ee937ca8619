"""Adversarial examples for training: PGD (Madry et al. 2018) and FGSM with a random start (Wong et al. 2020);
and Gaussian noise, the training of randomized smoothing's base classifier (Cohen et al. 2019).

Written here rather than taken from ART: ART's attacks query the model through PyTorchClassifier, which
switches the model to eval mode for every gradient, and its trainers train with BatchNorm in eval mode
(AdversarialTrainerFBFPyTorch) or take eps on another scale (AdversarialTrainerMadryPGD). Here the model
stays in whatever mode the caller holds it in (train mode during training: BatchNorm normalises with the
statistics of the batch being attacked, as in Madry's and Wong's code). tests/test_defenses.py checks the
PGD steps against ART's ProjectedGradientDescent on a model in eval mode.

The attack steps normalise with batch statistics but leave BatchNorm's running statistics alone: only
the update step (on the final examples) feeds them, as one batch per training step. Otherwise each
attack step would also move running_mean/var, and the eval-mode model would use statistics of partial
iterates.
"""

from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from ..registry import Registry

# defense.training.method -> a function (net, x, y, **params) -> examples; meta params: the keys it takes.
METHODS = Registry("adversarial-training method", key="defense.training.method")


def _logits(net: nn.Module, x: torch.Tensor) -> torch.Tensor:
    out = net(x)
    return out[0] if isinstance(out, (tuple, list)) else out  # Inception v3's auxiliary output in training


def _input_gradient(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """d loss / d x only: autograd.grad leaves the weights' .grad untouched."""
    x = x.detach().requires_grad_(True)
    loss = F.cross_entropy(_logits(net, x), y)
    return torch.autograd.grad(loss, x)[0]


def _project(x_adv: torch.Tensor, x: torch.Tensor, eps: float) -> torch.Tensor:
    return torch.clamp(torch.min(torch.max(x_adv, x - eps), x + eps), 0.0, 1.0)


@METHODS.register("pgd", params=("eps", "step", "iterations", "random_start"))
def pgd(
    net: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    eps: float,
    step: float | None = None,
    iterations: int = 7,
    random_start: bool = True,
) -> torch.Tensor:
    """L-inf PGD on the cross-entropy; step null is 2.5 * eps / iterations."""
    step = 2.5 * eps / iterations if step is None else step
    x_adv = x.clone()
    if random_start:
        x_adv = _project(x + torch.empty_like(x).uniform_(-eps, eps), x, eps)
    for _ in range(iterations):
        x_adv = _project(x_adv + step * _input_gradient(net, x_adv, y).sign(), x, eps)
    return x_adv.detach()


@METHODS.register("fgsm_rs", params=("eps", "step"))
def fgsm_rs(net: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, step: float | None = None) -> torch.Tensor:
    """One signed-gradient step of size step (null: 1.25 * eps) from a uniform random start in the ball."""
    step = 1.25 * eps if step is None else step
    x_adv = _project(x + torch.empty_like(x).uniform_(-eps, eps), x, eps)
    return _project(x_adv + step * _input_gradient(net, x_adv, y).sign(), x, eps).detach()


@METHODS.register("gaussian", params=("sigma",))
def gaussian(net: nn.Module, x: torch.Tensor, y: torch.Tensor, sigma: float) -> torch.Tensor:
    """Gaussian noise of standard deviation sigma on the [0, 1] pixels, not clipped: the training of a base
    classifier for randomized smoothing (Cohen et al. 2019), which sees the same noise when certified."""
    return x + sigma * torch.randn_like(x)


def validate_training(cfg: dict | None) -> None:
    if cfg is None:
        return
    method = METHODS.get(cfg.get("method"))
    if "sigma" in method.params:
        sigma = cfg.get("sigma")
        if isinstance(sigma, bool) or not isinstance(sigma, (int, float)) or not sigma > 0:
            raise ConfigError(f"defense.training.sigma={sigma!r} must be a positive noise level on [0, 1] pixels.")
    eps = cfg.get("eps")
    if "eps" in method.params and (not isinstance(eps, (int, float)) or not 0 < eps <= 1):
        raise ConfigError(f"defense.training.eps={eps!r} must lie in (0, 1] on [0, 1] pixels (8/255 = 0.0314).")
    if "iterations" in method.params and (not isinstance(cfg.get("iterations"), int) or cfg["iterations"] < 1):
        raise ConfigError(f"defense.training.iterations={cfg.get('iterations')!r} must be a positive number of steps.")
    allowed = {"method", *method.params}
    if unknown := set(cfg) - allowed:
        raise ConfigError(
            f"defense.training for {method.name} does not take {sorted(unknown)}; it takes {sorted(allowed)}."
        )


@contextmanager
def running_stats_frozen(net: nn.Module):
    """BatchNorm in train mode normalises with the batch's statistics without updating the running ones.

    With track_running_stats off, a BatchNorm layer in training mode neither passes its buffers to
    F.batch_norm nor counts the batch (torch's and timm's BatchNorm layers alike).
    """
    layers = [m for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    for m in layers:
        m.track_running_stats = False
    try:
        yield
    finally:
        for m in layers:
            m.track_running_stats = True


def adversarial_batch(net: nn.Module, x: torch.Tensor, y: torch.Tensor, cfg: dict) -> torch.Tensor:
    params = {k: v for k, v in cfg.items() if k != "method"}
    # Crafted in fp32 like every attack, also when training runs under bf16 autocast on a GPU.
    with running_stats_frozen(net), torch.autocast(x.device.type, enabled=False):
        return METHODS.get(cfg["method"]).obj(net, x.float(), y, **params)
