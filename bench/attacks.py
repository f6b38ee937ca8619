"""Time the attacks against the cost of the model passes they use.

    .venv/bin/python bench/attacks.py [--model resnet18 --image-size 64 --batch 32 --device cpu]

One model (trained for --train-steps SGD steps on synthetic images, 0: randomly initialised) and one
batch of synthetic chest X-rays. For FGSM, PGD and APGD (ART and ours), C&W L-inf (ART and ours) and
the spatial transformation (ART and ours) and randomized smoothing's CERTIFY (ART and ours) it measures
(--attacks picks some):

- wall: seconds for attack.generate(x, y) on the batch;
- fwd, fwd+bwd: image-passes the attack made through the model (a pass on n images counts n), counted
  by the project's PassCounter (evaluation/passes.py, hooks on the network): fwd = forward-only passes,
  fwd+bwd = forward passes whose output was back-propagated;
- floor: fwd * (one forward per image) + fwd+bwd * (one forward + backward to the input per image),
  both measured on the bare model at batch --batch (median of 5 after a warm-up): the time the same
  passes would take as plain batched torch calls. "x floor w/ weight grads" prices a fwd+bwd pass as
  forward + loss.backward() that also fills the weights' gradients, which is what ART's classifier does
  when the model's parameters require gradients. The evaluation callback freezes the weights while it
  attacks, and so does this bench, so the plain floor is the one to meet;
- x floor: wall / floor; speedup vs ART: ART's wall / ours (per image where ART's C&W ran on fewer images);
  ART/ours passes: ART's fwd+bwd passes / ours, and ART's passes of both kinds / ours.

ART's C&W attacks one image at a time (~10 s per image for ResNet-18 at 64 px on a 2-core CPU), so it
runs on the first --cw-art-images images and its wall and passes are scaled to the batch, as the
output says. FGSM, PGD and APGD run at two budgets: one where most images fall, ART's PGD defaults read
in std units as the paper's PGD row (eps 0.3 std of the model's normalisation, steps of 0.1 std, 100
iterations), and one where most stand (1/255, 10 steps of 2.5 eps / 10); APGD takes as many steps as
PGD. Ours stop on an image at its first fooling iterate (early_stop, apgd.py); ART's FGSM and PGD step
every image to the end, ART's own AutoProjectedGradientDescent too (our impl art is its algorithm with
fooled images leaving, two passes a step; impl fast one). C&W at ART's defaults with no budget, ST on the
paper's grid (rotations -30..30 by 10 degrees, translations -10 %, 0, 10 %). Ours: ST per image with
vertical translations too (3 x 3 x 7 = 63 transforms against ART's 3 x 7 = 21).
"""

import argparse
import inspect
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from art.attacks.evasion import AutoProjectedGradientDescent, CarliniLInfMethod
from art.estimators.classification import PyTorchClassifier
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from covid_robustness.attacks.build import build_attack  # noqa: E402
from covid_robustness.data.classes import COVID, NORMAL  # noqa: E402
from covid_robustness.data.synthetic import synthetic_dataset  # noqa: E402
from covid_robustness.evaluation.passes import PassCounter  # noqa: E402
from covid_robustness.models.module import Normalized  # noqa: E402
from covid_robustness.models.registry import create  # noqa: E402

GROUPS = ("fgsm", "pgd", "apgd", "cw", "st", "certify")
CERTIFY = dict(sigma=0.25, n0=100, n=1000, alpha=0.001, noise_batch=256)  # attack=certify's defaults
NORMALISATION = (0.5, 0.25)  # the bench model's mean and std: eps_unit std is in units of this std
ST_GRID = dict(max_rotation=30.0, num_rotations=7, max_translation=10.0, num_translations=3)
# ART's own defaults, read from its signature, given to both implementations.
CW_ART_DEFAULTS = {
    name: p.default
    for name, p in inspect.signature(CarliniLInfMethod).parameters.items()
    if name not in ("classifier", "targeted", "batch_size", "verbose")
}


def median_time(fn, repeats=5, device: torch.device | None = None) -> float:
    """Median seconds of fn over `repeats` calls after a warm-up call, waiting for a CUDA device's work."""

    def sync():
        if device is not None and device.type == "cuda":
            torch.cuda.synchronize(device)

    fn()
    times = []
    for _ in range(repeats):
        sync()
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def input_pass_costs(net, x, y, repeats=5, device=None) -> tuple[float, float]:
    """Seconds per image at batch len(x) of a forward pass and of a forward pass + backward to the input
    only (torch.autograd.grad, what our attacks do)."""

    def forward():
        with torch.no_grad():
            net(x)

    def forward_backward_input():
        xg = x.clone().requires_grad_(True)
        torch.autograd.grad(F.cross_entropy(net(xg), y), xg)

    return tuple(median_time(f, repeats, device) / len(x) for f in (forward, forward_backward_input))


def pass_costs(net, x, y) -> tuple[float, float, float]:
    """input_pass_costs, and a forward pass + loss.backward() that also fills the weights' gradients (what
    ART's PyTorchClassifier.loss_gradient / class_gradient do when the model's parameters require
    gradients, as a trained model's do)."""

    def forward_backward_full():
        xg = x.clone().requires_grad_(True)
        net.zero_grad()
        F.cross_entropy(net(xg), y).backward()

    return (*input_pass_costs(net, x, y), median_time(forward_backward_full) / len(x))


def train(net, x, y, steps, batch):
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
    net.train()
    gen = torch.Generator().manual_seed(0)
    for _ in range(steps):
        idx = torch.randint(0, len(x), (batch,), generator=gen)
        loss = F.cross_entropy(net(x[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    net.eval()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="resnet18")
    ap.add_argument("--image-size", type=int, default=64)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch CPU threads (0: torch's default). 1 by default: on a shared 2-core machine two "
        "OpenMP threads spin against any other load and make batch-of-one passes (ART's C&W "
        "and ST) erratically slow, which would flatter our speedups",
    )
    ap.add_argument(
        "--train-steps",
        type=int,
        default=40,
        help="SGD steps on synthetic images before attacking (0: the randomly initialised model, "
        "whose near-constant outputs C&W cannot flip)",
    )
    ap.add_argument("--cw-art-images", type=int, default=4, help="images ART's C&W runs on (scaled to the batch)")
    ap.add_argument(
        "--attacks", default=",".join(GROUPS), help=f"comma-separated attacks to time, of {', '.join(GROUPS)}"
    )
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    groups = set(args.attacks.split(","))
    if unknown := groups - set(GROUPS):
        ap.error(f"--attacks: unknown {sorted(unknown)}; choose from {', '.join(GROUPS)}")

    if args.threads and args.device == "cpu":
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    device = torch.device(args.device)
    b, size = args.batch, args.image_size

    # the first b images are attacked; the next 256 train the model
    images, labels = synthetic_dataset(b + (256 if args.train_steps else 0), (NORMAL, COVID), size, args.seed)
    x_all = torch.from_numpy(images[:, None].astype(np.float32) / 255).to(device)
    y_all = torch.from_numpy(labels).to(device)
    net = Normalized(create(args.model, 2), *NORMALISATION).to(device)
    if args.train_steps:
        train(net, x_all[b:], y_all[b:], args.train_steps, b)
    net.eval()
    for p in net.parameters():
        p.requires_grad_(True)
    clf = PyTorchClassifier(
        model=net,
        loss=nn.CrossEntropyLoss(),
        input_shape=(1, size, size),
        nb_classes=2,
        clip_values=(0.0, 1.0),
        device_type="gpu" if args.device == "cuda" else "cpu",
    )

    x_t, y_t = x_all[:b], y_all[:b]
    x, y = x_t.cpu().numpy(), y_t.cpu().numpy()
    t_fwd, t_fb, t_fb_full = pass_costs(net, x_t, y_t)
    for p in net.parameters():  # as the evaluation callback does while it attacks
        p.requires_grad_(False)

    def accuracy(xa):
        with torch.no_grad():
            return float((net(torch.from_numpy(xa).to(device)).argmax(1).cpu().numpy() == y).mean())

    def run(cfg, n_images=b):
        attack = build_attack(dict(cfg), clf) if isinstance(cfg, dict) else cfg
        np.random.seed(args.seed)  # the same random starts for ART's APGD and ours
        with PassCounter(net) as counter:  # the project's counter (evaluation/passes.py)
            start = time.perf_counter()
            adv = attack.generate(x[:n_images], y[:n_images])
            wall = time.perf_counter() - start
        return adv, wall, counter.forward - counter.backward, counter.backward, attack

    print(
        f"# {args.model} at {size} px, batch {b}, device {args.device}, torch threads {torch.get_num_threads()}, "
        f"{'randomly initialised' if not args.train_steps else f'trained {args.train_steps} SGD steps'}; "
        f"load average before: {os.getloadavg()[0]:.2f}"
    )
    print(
        f"# one pass per image at batch {b}: forward {t_fwd * 1e3:.2f} ms, forward+backward to the input "
        f"{t_fb * 1e3:.2f} ms, forward+backward with weight gradients {t_fb_full * 1e3:.2f} ms; "
        f"clean accuracy {accuracy(x):.3f}"
    )

    rows = []

    def add(name, impl, wall, fwd, fb, acc, note="", art_wall=None, art_passes=None):
        floor, floor_full = fwd * t_fwd + fb * t_fb, fwd * t_fwd + fb * t_fb_full
        ratio = ""
        if art_passes:  # fwd counts forward-only passes: all passes = fwd + fwd+bwd
            ratio = f"{art_passes[1] / max(fb, 1):.1f}x, {sum(art_passes) / max(fwd + fb, 1):.1f}x"
        rows.append(
            (
                name,
                impl,
                wall,
                fwd,
                fb,
                fb / b,
                floor,
                wall / floor,
                wall / floor_full,
                (art_wall / wall) if art_wall else None,
                ratio,
                acc,
                note,
            )
        )

    std = NORMALISATION[1]
    budgets = (  # (label, eps, PGD eps_step, iterations): most images fall; most stand
        ("eps 0.3 std", 0.3 * std, 0.1 * std, 100),
        ("eps 1/255", 1 / 255, 2.5 / 255 / 10, 10),
    )
    for label, eps, step, iters in budgets:
        note = f"{label} = {eps * 255:.1f}/255"
        attacks = []
        if "fgsm" in groups:
            attacks.append(("FGSM", {"name": "fgsm", "eps": eps, "batch_size": b}))
        if "pgd" in groups:
            pgd = {"name": "pgd", "eps": eps, "eps_step": step, "max_iter": iters, "num_random_init": 0}
            attacks.append((f"PGD-{iters}", {**pgd, "batch_size": b}))
        for name, cfg in attacks:
            adv, art_wall, fwd, fb, _ = run({**cfg, "impl": "art"})
            art = (fwd, fb)
            add(name, "art", art_wall, fwd, fb, accuracy(adv), note)
            adv, wall, fwd, fb, ours = run({**cfg, "impl": "fast", "early_stop": True})
            assert (fwd, fb) == (ours.passes["forward"], ours.passes["backward"]), "pass counts disagree"
            add(name, "fast", wall, fwd, fb, accuracy(adv), "early_stop", art_wall, art)
        if "apgd" in groups:
            kw = dict(norm=np.inf, eps=eps, eps_step=2 * eps, max_iter=iters, nb_random_init=1, batch_size=b)
            adv, art_wall, fwd, fb, _ = run(AutoProjectedGradientDescent(clf, verbose=False, **kw))
            art = (fwd, fb)
            add(f"APGD-{iters}", "ART's class", art_wall, fwd, fb, accuracy(adv), f"{note}; judges the last iterate")
            apgd = {"name": "apgd", "eps": eps, "max_iter": iters, "nb_random_init": 1, "batch_size": b}
            for impl, what in (("art", "fooled leave, 2 passes a step"), ("fast", "fooled leave, 1 pass a step")):
                adv, wall, fwd, fb, _ = run({**apgd, "impl": impl})
                add(f"APGD-{iters}", impl, wall, fwd, fb, accuracy(adv), what, art_wall, art)

    notes = []
    if "cw" in groups:
        # C&W L-inf, unbounded, ART's defaults: ART on a few images, scaled; ours on the batch
        k = min(args.cw_art_images, b)
        art_adv, art_wall, fwd, fb, _ = run(
            {"name": "cw", "impl": "art", "eps": None, "batch_size": 1, **CW_ART_DEFAULTS}, n_images=k
        )
        scale = b / k
        add(
            "C&W-Linf",
            "art",
            art_wall * scale,
            round(fwd * scale),
            round(fb * scale),
            None,
            f"timed on {k} images, wall and passes x{scale:g}",
        )
        adv, wall, fwd, fb, ours = run({"name": "cw", "impl": "fast", "eps": None, "batch_size": b, **CW_ART_DEFAULTS})
        add("C&W-Linf", "ours", wall, fwd, fb, accuracy(adv), art_wall=art_wall * scale)
        assert (fwd, fb) == (ours.passes["forward"], ours.passes["backward"]), "pass counts disagree"
        linf = np.abs(adv - x).reshape(b, -1).max(1).astype(np.float64)
        art_linf = np.abs(art_adv - x[:k]).reshape(k, -1).max(1).astype(np.float64)
        off = np.abs(adv[:k] - art_adv)
        notes.append(
            f"C&W on the {k} images both ran: max |ours - ART| = {off.max():.2e}, {int((off > 1e-4).sum())} of "
            f"{off.size} pixels off by more than 1e-4 (rounding that Adam amplifies: cw.py, 'Floating point'); "
            f"L-inf ours {np.round(linf[:k], 4).tolist()} ART {np.round(art_linf, 4).tolist()}; "
            f"ours on all {b}: median L-inf {np.median(linf[linf > 0]) if (linf > 0).any() else 0:.4f}, "
            f"{int((linf > 0).sum())} images changed"
        )

    if "certify" in groups:
        # Randomized smoothing's CERTIFY on the batch: ART's PyTorchRandomizedSmoothing (one image at a time,
        # numpy noise) and ours (evaluation/certify.py: the batch's noisy copies together, noise drawn on the
        # device), same n0, n, alpha and copies per forward pass.
        from art.estimators.certification.randomized_smoothing import PyTorchRandomizedSmoothing

        from covid_robustness.evaluation.certify import certify

        c = CERTIFY
        smoothed = PyTorchRandomizedSmoothing(
            model=net,
            loss=nn.CrossEntropyLoss(),
            input_shape=(1, size, size),
            nb_classes=2,
            sample_size=c["n0"],
            scale=c["sigma"],
            alpha=c["alpha"],
            device_type="gpu" if args.device == "cuda" else "cpu",
        )
        np.random.seed(args.seed)
        with PassCounter(net) as counter:
            start = time.perf_counter()
            art_pred, art_radius = smoothed.certify(x, n=c["n"], batch_size=c["noise_batch"])
            art_wall = time.perf_counter() - start
        add("CERTIFY", "art", art_wall, counter.forward, 0, float((art_pred == y).mean()), "one image at a time")
        generator = torch.Generator(device=device).manual_seed(args.seed)
        with PassCounter(net) as counter:
            start = time.perf_counter()
            cert = certify(net, x_t, c["sigma"], c["n0"], c["n"], c["alpha"], 2, c["noise_batch"], generator)
            wall = time.perf_counter() - start
        same = int((cert.prediction == art_pred).sum())
        gap = float(np.abs(cert.radius - art_radius).mean())
        note = f"the batch at once; same answer as ART on {same} of {b}, mean |radius - ART's| {gap:.3f}"
        add("CERTIFY", "ours", wall, counter.forward, 0, float((cert.prediction == y).mean()), note, art_wall=art_wall)
        notes.append(
            f"CERTIFY: sigma {c['sigma']}, n0 {c['n0']}, n {c['n']}, alpha {c['alpha']}, {c['noise_batch']} noisy "
            f"copies per forward pass; 'acc after' is the share certified with the true class; seconds per image: "
            f"ART {art_wall / b:.3f}, ours {wall / b:.3f}"
        )

    if "st" in groups:
        # Spatial transformation, the paper's grid
        art_adv, art_st_wall, fwd, fb, _ = run({"name": "st", "impl": "art", "eps": None, **ST_GRID})
        add("ST", "art", art_st_wall, fwd, fb, accuracy(art_adv), "one transform for the batch, 21 transforms")
        adv, wall, fwd, fb, st = run({"name": "st", "impl": "fast", "eps": None, "batch_size": b, **ST_GRID})
        add("ST", "ours", wall, fwd, fb, accuracy(adv), "per image, 63 transforms (vertical too)", art_wall=art_st_wall)
        n_grid = len(st.grid(size, size))
        worst = (n_grid + 1) * b * t_fwd
        notes.append(
            f"ST ours stops on an image at its first misclassifying transform: {fwd} passes here; with no image "
            f"fooled it would make {(n_grid + 1) * b} ({n_grid} transforms + the clean pass), floor {worst:.2f} s, "
            f"then only about {art_st_wall / worst:.1f}x faster than ART's wall here"
        )
        adv, wall, fwd, fb, _ = run(
            {
                "name": "st",
                "impl": "fast",
                "eps": None,
                "batch_size": b,
                "per_image": False,
                "vertical_translation": False,
                **ST_GRID,
            }
        )
        joint = "ART's rule and grid (21 transforms)"
        add("ST", "ours-joint", wall, fwd, fb, accuracy(adv), joint, art_wall=art_st_wall)

    header = (
        "attack",
        "impl",
        "wall s",
        "fwd",
        "fwd+bwd",
        "fwd+bwd/img",
        "floor s",
        "x floor",
        "x floor w/ weight grads",
        "speedup vs ART",
        "ART/ours passes (fwd+bwd, all)",
        "acc after",
        "note",
    )
    print()
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("---" for _ in header) + "|")
    for name, impl, wall, fwd, fb, fb_per_image, floor, ratio, ratio_full, speedup, passes, acc, note in rows:
        cells = (
            name,
            impl,
            f"{wall:.2f}",
            str(fwd),
            str(fb),
            f"{fb_per_image:.1f}",
            f"{floor:.2f}",
            f"{ratio:.2f}",
            f"{ratio_full:.2f}",
            f"{speedup:.1f}x" if speedup else "",
            passes,
            "" if acc is None else f"{acc:.3f}",
            note,
        )
        print("| " + " | ".join(cells) + " |")
    print()
    for note in notes:
        print(note)
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
