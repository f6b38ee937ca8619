"""FGSM and PGD (L-inf or L2) that spend gradient passes only on the images the model still classifies correctly.

ART's ProjectedGradientDescent and FastGradientMethod step every image of a batch max_iter times and
return the last iterate, however early an image fell. Here, per batch of `batch_size` images:

    x_0 = x (or, with num_random_init > 0, ART's random start in the ball)
    for k = 0 .. max_iter - 1:
        one classifier.loss_gradient pass at x_k over the images still attacked; its logits (read off the
        model by a hook) also say whether x_k fools the model: with early_stop, those images leave the
        batch and return x_k
        x_{k+1} = ART's step: clip(x_k + eps_step * d) to the clip values, projected onto the ball, where d is
        sign(grad) in L-inf and grad / ||grad||_2 in L2 (norm=2: eps and eps_step are L2 lengths)
    the others return x_max_iter (ART's result)

So an image whose iterate j first fools the model costs j + 1 gradient passes instead of max_iter, an
image misclassified at the start returns its start (the clean image, without random start) after the
one pass that saw it, an image whose step does not move it (a fixed point: a zero gradient, as on a
model whose softmax saturates, or every pixel pinned at an edge) leaves with that point, which every
later step would repeat (with early_stop, and only where the gradient is deterministic: no
preprocessing defence), and no pass is spent on anything else (ART also predicts the clean and the final
images to log its success rate). "Fools" is the untargeted test pred != y; targeted, pred == y (the
target). With several passes per gradient (EOT averages random preprocessing draws) every draw must agree.

With early_stop=False the steps are ART's PGD, float32 operation for operation (the tests compare the
images to 1e-6): the same loss_gradient calls on the same batches (tensors, as ART's PyTorch path; arrays
where numpy preprocessing defences such as BPDA send ART to its numpy path), so preprocessing defences,
BPDA and EOT act as in ART's attacks. FGSM is one step of eps, which is what ART's FastGradientMethod
computes (in numpy, with the same float32 roundings). A restart (num_random_init > 1) replaces an
image's result only where its own fools the model, as ART's PGD does (ART judges against the clean
predictions, here against y); with early_stop it attacks only the images no earlier restart fooled.
The random starts are ART's draws from numpy's global generator, not in ART's order.

Pass accounting (`self.passes`, reset by each generate() call): image-passes, as in cw.py: "backward"
counts forward+backward passes, "forward" forward-only ones (predictions when y is None, and the check
of the last iterates between restarts); `self.calls` counts model calls.
"""

import numpy as np
import torch
from art.attacks.attack import EvasionAttack
from art.config import ART_NUMPY_DTYPE
from art.estimators.classification import PyTorchClassifier
from art.utils import check_and_transform_label_format, get_labels_np_array, random_sphere
from tqdm.auto import tqdm

from .own import OwnEvasionAttack, model_outputs
from .registry import register_attack
from .validation import checked_norm


def pgd_step(eps: float, max_iter) -> float:
    """The step when eps_step is null. Madry et al.: 2.5 eps / iterations lets an iterate cross the ball
    and come back. Without a positive number of iterations, eps (max_iter is then checked by the attack)."""
    return 2.5 * eps / max_iter if isinstance(max_iter, int) and max_iter > 0 else eps


class PGD(OwnEvasionAttack):
    """ART's L-inf ProjectedGradientDescent (same parameters), in which an image that falls leaves the batch."""

    attack_params = EvasionAttack.attack_params + [
        "norm",
        "eps",
        "eps_step",
        "max_iter",
        "num_random_init",
        "batch_size",
        "targeted",
        "early_stop",
        "verbose",
    ]
    _estimator_requirements = (PyTorchClassifier,)
    # True: the last iterates of the images still standing are predicted too (a forward pass each), so
    # `fooled` (set by generate) says of every image whether its example fools the model.
    judge_last = False

    def __init__(
        self,
        classifier,
        eps=0.3,
        eps_step=0.1,
        max_iter=100,
        num_random_init=0,
        batch_size=32,
        targeted=False,
        early_stop=True,
        verbose=True,
        norm=np.inf,
    ) -> None:
        """Parameters as ART's ProjectedGradientDescent with norm np.inf ("inf") or 2; early_stop: an image
        leaves at the first iterate that fools the model (False: every image takes every step, as in ART)."""
        super().__init__(classifier, locals())

    def _check_params(self) -> None:
        self.norm = checked_norm(self.norm)
        for name, positive in (("eps", False), ("eps_step", True)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0 or (positive and value == 0):
                raise ValueError(f"`{name}` must be a {'positive' if positive else 'non-negative'} number.")
        for name, low in (("max_iter", 0), ("num_random_init", 0), ("batch_size", 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"`{name}` must be an integer >= {low}.")
        for name in ("targeted", "early_stop", "verbose"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"`{name}` must be a bool.")

    def _count(self, kind: str, outputs: list[torch.Tensor]) -> None:
        self.passes[kind] += sum(len(o) for o in outputs)
        self.calls[kind] += len(outputs)

    def generate(self, x: np.ndarray, y: np.ndarray | None = None, **kwargs) -> np.ndarray:
        """Adversarial examples for `x` (N x C x H x W), float32.

        :param y: labels (indices or one-hot): the true classes, or the targets if `targeted`. Without
                  labels the model's predictions on `x` are the true classes (ART).
        """
        if kwargs.get("mask") is not None:
            raise ValueError("this attack perturbs every pixel; ART's `mask` is not supported")
        self.reset_counts()
        clf = self.estimator
        x = x.astype(ART_NUMPY_DTYPE)
        if y is None:
            if self.targeted:
                raise ValueError("Target labels `y` need to be provided for a targeted attack.")
            with model_outputs(clf) as outputs:
                y = get_labels_np_array(clf.predict(x, batch_size=self.batch_size))
            self._count("forward", outputs)
        targets = check_and_transform_label_format(y, nb_classes=clf.nb_classes).astype(ART_NUMPY_DTYPE)
        adv, self.fooled = x.copy(), np.zeros(len(x), dtype=bool)
        starts = range(0, len(x), self.batch_size)
        for start in tqdm(starts, desc=f"{type(self).__name__} - Batches", leave=False, disable=not self.verbose):
            stop = start + self.batch_size
            xb, yb = (torch.from_numpy(a[start:stop]).to(clf.device) for a in (x, targets))
            out, fooled = self._attack_batch(xb, yb)
            adv[start:stop], self.fooled[start:stop] = out.cpu().numpy(), fooled.cpu().numpy()
        return adv

    def _attack_batch(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The batch's examples, and which of them fool the model: every one where several restarts or
        `judge_last` had the last iterates predicted, else only those that left early."""
        restarts = max(1, self.num_random_init)
        out, fooled = x.clone(), torch.zeros(len(x), dtype=torch.bool, device=x.device)
        for restart in range(restarts):
            rows = torch.arange(len(x), device=x.device)
            if restart and self.early_stop:
                rows = rows[~fooled]
            if not len(rows):
                break
            adv, hit = self._run(x[rows], y[rows], judge_last=restarts > 1 or self.judge_last)
            take = hit if restart else torch.ones_like(hit)
            out[rows[take]] = adv[take]
            fooled[rows[hit]] = True
        return out, fooled

    def _run(self, x_init: torch.Tensor, y: torch.Tensor, judge_last: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """One run from x_init: per image the point to return, and whether it fools the model (known for
        the images that left; for the others only if judge_last, at the cost of a forward pass)."""
        labels = y.argmax(1)
        out, hit = x_init.clone(), torch.zeros(len(x_init), dtype=torch.bool, device=x_init.device)
        idx = torch.arange(len(x_init), device=x_init.device)
        x = x_init
        for k in range(self.max_iter):
            if k == 0 and self.num_random_init > 0:
                x = self._random_start(x_init)  # as ART, drawn where the first step is taken
            grad, wrong = self._gradient(x, y, labels)
            if self.early_stop and wrong.any():
                out[idx[wrong]], hit[idx[wrong]] = x[wrong], True
                keep = ~wrong
                idx, x, x_init, y, labels, grad = (a[keep] for a in (idx, x, x_init, y, labels, grad))
                if not len(idx):
                    return out, hit
            stepped = self._step(x, x_init, grad)
            if self.early_stop and self._deterministic():
                # An image whose step left it where it was (a zero gradient, or every pixel pinned at
                # the ball's or the pixel range's edge) is at a fixed point: the same gradient would
                # repeat the same step to max_iter, so it leaves now with the point ART would return.
                moved = (stepped != x).flatten(1).any(1)
                if not moved.all():
                    out[idx[~moved]] = x[~moved]
                    idx, stepped, x_init, y, labels = (a[moved] for a in (idx, stepped, x_init, y, labels))
                    if not len(idx):
                        return out, hit
            x = stepped
        out[idx] = x
        if judge_last and len(idx):
            with model_outputs(self.estimator) as outputs:
                self.estimator.predict(x.cpu().numpy(), batch_size=len(x))
            self._count("forward", outputs)
            hit[idx] = self._fools(outputs, labels)
        return out, hit

    def _deterministic(self) -> bool:
        """Whether a point's gradient is the same at every call: no preprocessing defence (a random one,
        or EOT, draws anew each time), and the model in eval mode (checked by the evaluation)."""
        return not self.estimator.preprocessing_defences

    def _fools(self, outputs: list[torch.Tensor], labels: torch.Tensor) -> torch.Tensor:
        """Whether every pass in outputs (one, or one per EOT draw) fools the model on each image."""
        if not outputs:  # an estimator that bypasses its model wrapper: nothing is known
            return torch.zeros(len(labels), dtype=torch.bool, device=labels.device)
        pred = torch.stack([o.argmax(1) for o in outputs]).to(labels.device)
        return ((pred == labels) if self.targeted else (pred != labels)).all(0)

    def _gradient(self, x: torch.Tensor, y: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The classifier's loss gradient at x (ART's PyTorch path: tensors in and out; with numpy
        preprocessing defences such as BPDA, ART's numpy path), and which images x fools, from the same pass."""
        clf = self.estimator
        with model_outputs(clf) as outputs:
            if clf.all_framework_preprocessing:
                grad = clf.loss_gradient(x, y)
            else:
                grad = torch.from_numpy(clf.loss_gradient(x.cpu().numpy(), y.cpu().numpy())).to(x.device)
        self._count("backward", outputs)
        return grad, self._fools(outputs, labels)

    def _random_start(self, x: torch.Tensor) -> torch.Tensor:
        """ART's random start: uniform in the ball (numpy's global generator), then clipped."""
        noise = random_sphere(len(x), x[0].numel(), self.eps, self.norm).reshape(x.shape).astype(ART_NUMPY_DTYPE)
        return self._clip(x + torch.from_numpy(noise).to(x.device))

    def _clip(self, x: torch.Tensor) -> torch.Tensor:
        if self.estimator.clip_values is None:
            return x
        lo, hi = (torch.tensor(v).to(x.device) for v in self.estimator.clip_values)
        return torch.max(torch.min(x, hi), lo)

    def _step(self, x: torch.Tensor, x_init: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
        """ART's PGD step in its float32 order: x + eps_step * d (d = sign(grad), or grad / ||grad||_2),
        clipped, then x_init + the difference projected onto the ball."""
        grad = grad * (-1 if self.targeted else 1)
        grad = torch.where(torch.isnan(grad), torch.zeros_like(grad), grad)
        if self.norm == 2:  # ART: |g| * (1 / ||g||_2, or 0 where g = 0), times sign(g)
            flat = grad.reshape(len(grad), -1)
            q = torch.linalg.norm(flat, ord=2, dim=1, keepdim=True)
            direction = ((flat.abs() * q.where(q == 0, 1 / q)) * flat.sign()).reshape(grad.shape)
        else:
            direction = grad.sign()
        step = torch.tensor(np.array(self.eps_step, dtype=ART_NUMPY_DTYPE)).to(x.device) * direction
        x = self._clip(x + step)
        if self.norm == 2:
            # ART scales d by min(1, eps / ||d||_2) with eps in float64 and rounds to float32.
            d = (x - x_init).reshape(len(x), -1)
            length = torch.linalg.norm(d, ord=2, dim=1, keepdim=True)
            scale = length.where(
                length == 0,
                torch.clamp(torch.tensor(float(self.eps), dtype=torch.float64).to(x.device) / length, max=1.0),
            )
            return (d * scale).to(x.dtype).reshape(x.shape) + x_init
        # ART projects with sign(d) * min(|d|, eps) in float64 and rounds to float32: for a float32 d that
        # is d clamped to [-e, e] with e = float32(eps), which needs no float64 (absent on some devices).
        eps = torch.tensor(np.float32(self.eps)).to(x.device)
        return torch.max(torch.min(x - x_init, eps), -eps) + x_init


class FGSM(PGD):
    """ART's FastGradientMethod (minimal=False), L-inf or L2: one step of eps, where an image misclassified
    at the start (with early_stop) returns unchanged."""

    attack_params = EvasionAttack.attack_params + ["norm", "eps", "batch_size", "targeted", "minimal", "early_stop"]
    max_iter, num_random_init, verbose = 1, 0, False

    def __init__(
        self, classifier, eps=0.3, targeted=False, batch_size=32, minimal=False, early_stop=True, norm=np.inf
    ) -> None:
        OwnEvasionAttack.__init__(self, classifier, locals())

    @property
    def eps_step(self) -> float:
        return self.eps

    def _check_params(self) -> None:
        self.norm = checked_norm(self.norm)
        if self.minimal is not False:
            raise ValueError("`minimal` (ART's search for the smallest eps) needs impl art; here it must be False.")
        if isinstance(self.eps, bool) or not isinstance(self.eps, (int, float)) or self.eps < 0:
            raise ValueError("`eps` must be a non-negative number.")
        if isinstance(self.batch_size, bool) or not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise ValueError("`batch_size` must be an integer >= 1.")
        for name in ("targeted", "early_stop"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"`{name}` must be a bool.")


@register_attack("fgsm", "fast", needs_eps=True, takes_eps=True, label="FGSM")
def _fgsm(classifier, eps, params):
    return FGSM(classifier, eps=eps, **params)


@register_attack("pgd", "fast", needs_eps=True, takes_eps=True, label="PGD")
def _pgd(classifier, eps, params):
    if params.get("eps_step") is None:
        params["eps_step"] = pgd_step(eps, params.get("max_iter", 100))
    return PGD(classifier, eps=eps, verbose=False, **params)
