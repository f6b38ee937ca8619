"""APGD (Croce & Hein 2020; L-inf or L2) in which an image fooled at any iterate stays fooled.

ART's AutoProjectedGradientDescent judges success at the final iterate only: an image that an
intermediate iterate misclassified and the final one did not comes back as its random start and counts
as robust. The reference (fra31/auto-attack, autopgd_base.py) keeps, per image, an iterate that
misclassified it. ART's loop keeps its state in the locals of one generate() and never looks at the
predictions of its iterates, so a subclass cannot record them without replaying that loop; this
generate() replays it instead, with ART's step-size schedule, momentum and projections (a test checks
the iterates against ART's), and differs in:
- the loss and the prediction of each iterate come from one forward pass (ART computes the loss only),
  through the classifier's predict and loss_gradient, so preprocessing defences (BPDA, EOT) apply;
- it returns, per image, the first iterate that misclassified it, else the point of highest loss;
- an image is followed no further once fooled (images do not interact: per-image steps, eval mode);
- each restart starts from a fresh random point around the clean image (reference; ART's restarts
  start from its previous output).
Targeted (y the targets), it descends the loss toward the target as ART's does, and an image counts as
fooled at the first iterate the model assigns to its target.

`one_pass=True` (impl fast) reads an iterate's loss and prediction off the pass that computes its gradient,
which the next step needs anyway (the gradient at an image's best point is kept for a restart there), so
a step costs one forward+backward pass instead of that and a forward pass; the last iterate gets a forward
pass only. The iterates are the same (a test compares them). Where a gradient takes several passes (EOT
over a random defence) the loss is their mean and an image counts as fooled when every draw misclassifies
it, where the two-pass version reads one prediction.
"""

import math

import numpy as np
import torch
from art.attacks.evasion import AutoProjectedGradientDescent
from art.config import ART_NUMPY_DTYPE
from art.estimators.classification import PyTorchClassifier
from art.utils import check_and_transform_label_format, get_labels_np_array, projection, random_sphere

from .own import model_outputs
from .registry import register_attack
from .validation import checked_norm


def checkpoints(max_iter: int) -> list[int]:
    """Iterations at which a step size may halve: ART's float expression.

    At 100 steps ART halves at 58 where the reference has 57.
    """
    w = [0, 0.22]
    while (p := w[-1] + max(w[-1] - w[-2] - 0.03, 0.06)) <= 1:
        w.append(p)
    return sorted({math.ceil(p * max_iter) for p in w})


class APGD(AutoProjectedGradientDescent):
    """ART's AutoProjectedGradientDescent (same parameters) whose generate() keeps fooling iterates;
    one_pass: one forward+backward pass per step (module docstring)."""

    _estimator_requirements = (PyTorchClassifier,)  # the loss of an iterate is read from its logits

    def __init__(self, *args, one_pass: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self.one_pass = one_pass

    @classmethod
    def from_config(cls, clf, eps, params, one_pass: bool = False) -> "APGD":
        """APGD-CE on the classifier's own loss. loss_type=None keeps the classifier given, defenses and
        EOT included; ART's loss_type options would rebuild a plain PyTorchClassifier around the model."""
        if params.get("eps_step") is None:
            params["eps_step"] = 2 * eps  # AutoAttack's initial step
        norm = checked_norm(params.pop("norm", np.inf))
        return cls(clf, norm=norm, eps=eps, loss_type=None, verbose=False, one_pass=one_pass, **params)

    def generate(self, x: np.ndarray, y: np.ndarray | None = None, **kwargs) -> np.ndarray:
        if self.norm not in (np.inf, "inf", 2) or kwargs.get("mask") is not None:
            raise NotImplementedError("APGD here is L-inf or L2, and without a mask")
        if self.targeted and y is None:
            raise ValueError("Target labels `y` need to be provided for a targeted attack.")
        clf = self.estimator
        x = x.astype(ART_NUMPY_DTYPE)
        clean = clf.predict(x, batch_size=self.batch_size)
        y = get_labels_np_array(clean) if y is None else check_and_transform_label_format(y, clf.nb_classes)
        # Still to attack: the images the model classifies right (untargeted), or not as the target.
        x_adv, robust = x.copy(), (clean.argmax(1) == y.argmax(1)) != self.targeted
        for _ in range(max(1, self.nb_random_init)):
            for start in range(0, len(x), self.batch_size):
                rows = start + np.flatnonzero(robust[start : start + self.batch_size])
                if len(rows):
                    x_adv[rows], fooled = self._run(x[rows], y[rows])
                    robust[rows] = ~fooled
        return x_adv

    def _evaluate(self, x: np.ndarray, y: np.ndarray, gradient: bool = False):
        """Per image, the objective (the loss; targeted, minus the loss toward the target) and whether the
        attack succeeds there, from one forward pass; and with `gradient`, from the passes of the loss
        gradient at x, which is returned too (else None)."""
        clf = self.estimator
        labels = torch.from_numpy(clf.reduce_labels(y)).to(clf.device)
        if gradient:
            with model_outputs(clf) as outputs:
                grad = clf.loss_gradient(x, y)
        else:
            grad, outputs = None, [torch.from_numpy(clf.predict(x, batch_size=len(x))).to(clf.device)]
        loss, reduction = clf.loss, clf.loss.reduction
        loss.reduction = "none"
        try:
            f = torch.stack([loss(logits, labels) for logits in outputs]).mean(0).cpu().numpy()
        finally:
            loss.reduction = reduction
        classes = torch.from_numpy(y.argmax(1)).to(clf.device)  # labels: one-hot for a loss ART does not know
        hits = [(logits.argmax(1) == classes) if self.targeted else (logits.argmax(1) != classes) for logits in outputs]
        wrong = torch.stack(hits).all(0).cpu().numpy()
        return (-f if self.targeted else f), wrong, grad

    def _direction(self, grad: np.ndarray) -> np.ndarray:
        """ART's step direction: sign(grad) in L-inf, grad / (||grad||_2 + 1e-7) in L2."""
        if self.norm in (np.inf, "inf"):
            return np.sign(grad)
        axes = tuple(range(1, grad.ndim))
        return grad / (np.sqrt(np.sum(np.square(grad), axis=axes, keepdims=True)) + 10e-8)

    def _run(self, x0: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One run on correctly classified images: per image the point to return, and whether it fools."""
        lo, hi = self.estimator.clip_values
        n, shape = len(x0), (-1,) + (1,) * (x0.ndim - 1)

        def project(z):
            return x0 + projection(np.clip(z, lo, hi) - x0, self.eps, self.norm)

        noise = random_sphere(n, x0[0].size, self.eps, self.norm).reshape(x0.shape).astype(ART_NUMPY_DTYPE)
        x = project(x0 + noise)
        f_best, wrong, g = self._evaluate(x, y, gradient=self.one_pass and self.max_iter > 0)
        out, fooled = x.copy(), wrong.copy()
        idx = np.arange(n)
        # ART's state per image; best_prev (the iterate before the best) starts at the clean image as in ART.
        prev, best, best_prev = x, x.copy(), x0.copy()
        # one_pass: g is the gradient at x, g_best the one at best (a halving restarts x there).
        g_best = None if g is None else g.copy()
        eta = np.full(n, self.eps_step, dtype=ART_NUMPY_DTYPE)
        count, eta_check, f_check = np.zeros(n), eta.copy(), f_best.copy()
        checks = checkpoints(self.max_iter)
        for k in range(self.max_iter):
            if wrong.any():  # follow only the images no iterate has fooled yet
                keep = ~wrong
                x0, y, x, prev, best, best_prev, f_best, eta, count, eta_check, f_check, idx, wrong = (
                    a[keep]
                    for a in (x0, y, x, prev, best, best_prev, f_best, eta, count, eta_check, f_check, idx, wrong)
                )
                if g is not None:
                    g, g_best = g[keep], g_best[keep]
            if not len(idx):
                break
            grad = self.estimator.loss_gradient(x, y) if g is None else g
            z = project(x + eta.reshape(shape) * self._direction(-grad if self.targeted else grad))
            if k:  # momentum; ART's first step has none
                z = project(x + 0.75 * (z - x) + 0.25 * (x - prev))
            f, wrong, g = self._evaluate(z, y, gradient=self.one_pass and k + 1 < self.max_iter)
            out[idx[wrong]], fooled[idx[wrong]] = z[wrong], True
            better = f >= f_best if k == 0 else f > f_best
            count += better
            best[better], f_best[better] = z[better], f[better]
            if g is not None:
                g_best[better] = g[better]
            if k:
                best_prev[better] = x[better]
            prev, x = x, z
            if k and k in checks:
                # Halve the step of an image whose loss rose in under 75 % of the steps since the last
                # check, or whose best loss did not move with an unchanged step; restart it at its best.
                last = checks[checks.index(k) - 1]
                halve = (count < 0.75 * (k - last)) | ((eta_check == eta) & (f_check == f_best))
                eta[halve] /= 2
                x[halve], prev[halve] = best[halve], best_prev[halve]
                if g is not None:
                    g[halve] = g_best[halve]
                count[:], eta_check, f_check = 0, eta.copy(), f_best.copy()
        out[idx[~wrong]] = best[~wrong]
        return out, fooled


@register_attack("apgd", "fast", needs_eps=True, takes_eps=True, label="APGD")
def _build(classifier, eps, params):
    """APGD with one forward+backward pass per step (APGD one_pass); impl art: two passes, as ART."""
    return APGD.from_config(classifier, eps, params, one_pass=True)
