"""What the paper's full study would cost on this machine, measured in one short run.

    .venv/bin/python bench/study.py [--models resnet18,vgg19] [--attacks pgd_art_fast,st] [--json study.json]
    .venv/bin/python bench/study.py --tiny     # CPU smoke run: all five models in well under a minute

The paper's settings are read from conf/experiment/paper.yaml: its models and attacks (the sweeper's
lists), image size (255 px), training batch (64), epochs (200), validation and test fractions (10 %,
20 %) and evaluation batch (eval.batch_size auto, sized as a job sizes it by
accelerator.evaluation_batch_size: 64 on the CPU, what the GPU's free memory holds on a GPU, at most the
attacked images rounded up to a power of two: 64 here, where the study's 911 images may get a larger
one, reported as study_eval_batch). Each job's model, optimiser and attack configs are composed with
Hydra as a job of `experiment=paper` composes them. The images are synthetic (data.source=synthetic): a
step costs the same whatever the pixels show. The device is the one a job gets (accelerator.job_device:
the claimed GPU, else the CPU) and on CUDA everything runs with a job's GPU settings (GpuSettings:
bf16 training, channels_last, cuDNN autotuner, batches cut on the GPU). For each model (--models):

1. Training speed, images per second over the last --steps of --warmup + --steps SGD steps at batch
   --batch, each on a fresh model with the same initial weights (the plain loop's is a copy of
   Lightning's, taken before it trains) and on the same batches (the datamodule's train_dataloader,
   iterated from its start):
   - Lightning: pl.Trainer(max_epochs=1, limit_train_batches=warmup + steps, no validation, logger,
     checkpoint or progress bar, plus accelerator.trainer_options(device, GpuSettings(), training=True)).fit
     of a CXRClassifier with the paper's optimiser config; a callback reads the clock (after a CUDA
     synchronize) at the start of step `warmup` and at the end of the last step;
   - plain: a torch loop on the same class's network (CXRClassifier(...).net): batch to the device,
     forward (bf16 autocast on CUDA, fp32 on the CPU), cross-entropy on the main logits (Inception's
     first output), zero_grad, backward, SGD step with the same lr, momentum, weight decay and nesterov
     (no LR schedule: one multiplication per step), timed over the same steps.
   "overhead" = plain images/s / Lightning images/s: what Lightning's loop, logging, metrics and LR
   schedule cost on top of the bare step (target <= 1.1).
2. Attack cost on the model Lightning trained in step 1 (fp32, eval mode, weights frozen, as a job
   attacks): for each attack (--attacks), `evaluate()` on the first --attack-images test images at
   evaluation batch --eval-batch; per attacked image:
   - s/img: evaluate's attack_seconds / attack_images (the attack's generate() calls only: not the
     clean and adversarial predictions around them, nor the Lightning test loop of a job);
   - fwd, fwd+bwd: the passes per image evaluate's PassCounter saw: forward-only passes
     (attack_forward_passes - attack_backward_passes) and forward passes that were back-propagated;
   - worst s/img: s/img x (worst-case passes / measured passes), at least s/img, both priced at the bare
     model's cost of one pass per image (t_fwd: a forward under no_grad; t_fb: a forward + backward to
     the input with torch.autograd.grad; median of --repeats after a warm-up, at the evaluation batch,
     on test images).
     Worst-case passes: every image stands to the end and one forward judges it: FGSM 1 fwd+bwd + 1 fwd,
     PGD max_iter (x restarts) fwd+bwd + 1 fwd (ART's 100 steps); C&W and ST: the passes measured (their
     count depends on the model, not on early stopping alone), so there worst = s/img. Few images on a
     barely trained model make the measured PGD cost small: the worst case is the bound.
3. Projection of the paper's study, per model: training = epochs x (3,276 training images (3,640 x 0.9)
   / Lightning images/s + 364 validation images x t_fwd); attacks = 911 test images x the sum over the
   attacks of s/img (worst: of worst s/img). Training happens once per model (jobs share its
   checkpoint); the test loop and the predictions around each attack (3 forwards per image and attack)
   are left out. Totals over the models are printed in minutes, with the device.

The cuDNN autotuner is on for training and off for the attacks, as in a job (an attack's batches
shrink as images fall, and each new shape would be tuned again).

--tiny is a smoke run that keeps this script working on a CPU: each model at its smallest size
(max(32, min_size)), batch 4, 1 + 2 steps, 4 attacked images at batch 4, every max_iter cut to 3 (the ST
grid stays), one timing of each bare pass, one torch thread unless --threads says otherwise. Its table
and projection are printed, marked as tiny: they are not the paper's cost.
Progress goes to stderr, one line per model and per attack.
"""

import argparse
import copy
import json
import logging
import math
import os
import sys
import time
import warnings
from pathlib import Path

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from attacks import input_pass_costs  # noqa: E402  (bench/attacks.py)

import covid_robustness  # noqa: E402, F401  (registers the ${px:} resolver)
from covid_robustness.accelerator import (  # noqa: E402
    GpuSettings,
    evaluation_batch_size,
    job_device,
    trainer_options,
)
from covid_robustness.console import quiet  # noqa: E402
from covid_robustness.data.datamodule import CXRDataModule  # noqa: E402
from covid_robustness.evaluation.evaluate import evaluate  # noqa: E402
from covid_robustness.evaluation.options import EvaluationOptions  # noqa: E402
from covid_robustness.models.module import CXRClassifier  # noqa: E402
from covid_robustness.models.registry import model_kwargs, spec  # noqa: E402

CONF = ROOT / "conf"
PAPER = CONF / "experiment" / "paper.yaml"
# The paper's curated set: 3,640 images for training and validation, 911 for the test (its 20 %).
PAPER_TRAIN_VAL_IMAGES = 3640
PAPER_TEST_IMAGES = 911
TINY = dict(batch=4, warmup=1, steps=2, attack_images=4, max_iter=3, repeats=1, threads=1)


def paper_settings() -> dict:
    """The study's grid and sizes as conf/experiment/paper.yaml sets them."""
    cfg = OmegaConf.load(PAPER)
    grid = cfg.hydra.sweeper.params
    return {
        "models": str(grid.model).split(","),
        "attacks": str(grid.attack).split(","),
        "image_size": int(cfg.data.image_size),
        "batch": int(cfg.data.batch_size),
        "test_fraction": float(cfg.data.test_fraction),
        "val_fraction": float(cfg.data.val_fraction),
        "epochs": int(cfg.trainer.max_epochs),
        "eval_batch": str(cfg.eval.batch_size),  # a number, or auto (accelerator.evaluation_batch_size)
    }


def job_config(model: str, attack: str | None = None):
    """The composed config of a paper job (inside initialize_config_dir)."""
    overrides = ["experiment=paper", f"model={model}", *([f"attack={attack}"] if attack else [])]
    return compose("config", overrides=overrides)


def progress(message: str) -> None:
    print(f"[study {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class StepTimer(pl.Callback):
    """The clock at the start of training step `first` and at the end of step `last` (after a CUDA sync)."""

    def __init__(self, first: int, last: int, device: torch.device):
        self.first, self.last, self.device = first, last, device
        self.start = self.stop = None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if batch_idx == self.first:
            sync(self.device)
            self.start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if batch_idx == self.last:
            sync(self.device)
            self.stop = time.perf_counter()


def synthetic_data(size, batch, warmup, steps, attack_images, paper, seed, device, gpu):
    """Synthetic images enough for warmup + steps full training batches and attack_images test images, and
    the training pixels' mean and std (the model's normalisation)."""
    keep = (1 - paper["test_fraction"]) * (1 - paper["val_fraction"])
    n = max(math.ceil((warmup + steps + 1) * batch / keep), math.ceil((attack_images + 2) / paper["test_fraction"]))
    dm = CXRDataModule(
        source="synthetic",
        task="binary",
        image_size=size,
        batch_size=batch,
        n_images=n + 8,
        test_fraction=paper["test_fraction"],
        val_fraction=paper["val_fraction"],
        seed=seed,
    )
    dm.setup()
    assert len(dm.splits["train"].labels) // batch >= warmup + steps, "too few training images"
    assert len(dm.splits["test"].labels) >= attack_images, "too few test images"
    if device.type == "cuda" and gpu.data_on_device:
        dm.on_device(device, channels_last=gpu.channels_last)
    return dm, dm.pixel_stats()


def new_module(name: str, cfg, dm: CXRDataModule, stats, seed: int, device: torch.device, gpu: GpuSettings):
    pl.seed_everything(seed, verbose=False)  # the same initial weights whichever job (or bench) builds it
    optim = OmegaConf.to_container(cfg.optim, resolve=True)
    module = CXRClassifier(name, dm.num_classes, dm.positive_class, *stats, model_kwargs=model_kwargs(cfg), **optim)
    if device.type == "cuda" and gpu.channels_last:
        module = module.to(memory_format=torch.channels_last)  # as run.py does
    return module


def lightning_speed(module, dm, device, gpu, warmup, steps) -> float:
    timer = StepTimer(warmup, warmup + steps - 1, device)
    options = trainer_options(device, gpu, training=True) or {"accelerator": "cpu", "devices": 1}
    trainer = pl.Trainer(
        max_epochs=1,
        limit_train_batches=warmup + steps,
        limit_val_batches=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[timer],
        **options,
    )
    trainer.fit(module, datamodule=dm)
    assert timer.start is not None and timer.stop is not None, "the timed steps did not run"
    return steps * dm.batch_size / (timer.stop - timer.start)


def plain_speed(module, dm, device, gpu, warmup, steps) -> float:
    """The bare training step on module's network, over the same batches as Lightning's."""
    h = module.hparams
    cuda = device.type == "cuda"
    net = module.net.to(device).train()
    if cuda:
        torch.backends.cudnn.benchmark = gpu.cudnn_benchmark
        if gpu.channels_last:
            net = net.to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(
        net.parameters(), lr=h.lr, momentum=h.momentum, weight_decay=h.weight_decay, nesterov=h.nesterov
    )
    start = None
    for i, (x, y) in enumerate(dm.train_dataloader()):
        if i == warmup:
            sync(device)
            start = time.perf_counter()
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cuda and gpu.bf16_training):
            logits = net(x)
            if isinstance(logits, (tuple, list)):  # Inception v3's auxiliary output, as module.py
                logits = logits[0]
            loss = F.cross_entropy(logits, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if i == warmup + steps - 1:
            sync(device)
            return steps * dm.batch_size / (time.perf_counter() - start)
    raise RuntimeError(f"the training split has fewer than {warmup + steps} batches")


def pass_costs(net, x, y, device, repeats) -> tuple[float, float]:
    """Seconds per image of a forward pass and of a forward + backward to the input, at batch len(x),
    with the weights frozen as a job's attacks see them (bench/attacks.py times the passes)."""
    weights = [p for p in net.parameters() if p.requires_grad]
    for p in weights:
        p.requires_grad_(False)
    try:
        net.eval()
        return input_pass_costs(net, x, y, repeats, device)
    finally:
        for p in weights:
            p.requires_grad_(True)


def worst_passes(cfg: dict, fwd: float, fb: float) -> tuple[float, float]:
    """(forward-only, forward+backward) passes per image when no image falls early (see the docstring)."""
    if cfg["name"] == "fgsm":
        return 1.0, 1.0
    if cfg["name"] == "pgd":
        return 1.0, float(cfg.get("max_iter", 100) * max(1, cfg.get("num_random_init") or 0))
    return fwd, fb


def measure_model(name, args, paper, device, gpu, datasets) -> dict:
    size = max(32, spec(name).min_size) if args.tiny else args.image_size
    if size not in datasets:
        started = time.perf_counter()
        datasets[size] = synthetic_data(
            size, args.batch, args.warmup, args.steps, args.attack_images, paper, args.seed, device, gpu
        )
        seconds = time.perf_counter() - started
        progress(f"{len(datasets[size][0].labels)} synthetic images at {size} px in {seconds:.1f} s")
    dm, stats = datasets[size]
    cfg = job_config(name)

    started = time.perf_counter()
    module = new_module(name, cfg, dm, stats, args.seed, device, gpu)
    fresh = copy.deepcopy(module)  # the same initial weights for the plain loop (cheaper than VGG-19's init)
    lightning = lightning_speed(module, dm, device, gpu, args.warmup, args.steps)
    plain = plain_speed(fresh, dm, device, gpu, args.warmup, args.steps)
    progress(
        f"{name} at {size} px, batch {args.batch}: Lightning {lightning:.1f} img/s, plain {plain:.1f} img/s, "
        f"overhead x{plain / lightning:.2f} ({time.perf_counter() - started:.1f} s)"
    )

    net = module.net.to(device).eval()  # Lightning leaves the trained module on the CPU
    torch.backends.cudnn.benchmark = False  # as a job's evaluation Trainer sets it (trainer_options)
    test_set = dm.splits["test"].tensors()
    # As a job sizes it (run.py): a number as given; auto: 64 on the CPU, what the free memory holds on a GPU,
    # no more than the attacked images rounded up to a power of two (the study's 911 may get a larger one).
    eval_batch = evaluation_batch_size(args.eval_batch, net, size, args.attack_images, device)
    study_eval_batch = evaluation_batch_size(args.eval_batch, net, size, PAPER_TEST_IMAGES, device)
    x, y = (t[: min(eval_batch, args.attack_images)].to(device) for t in test_set.tensors)
    t_fwd, t_fb = pass_costs(net, x, y, device, args.repeats)
    attacks = {}
    for attack in args.attacks:
        attack_cfg = OmegaConf.to_container(job_config(name, attack).attack, resolve=True)
        if args.tiny and "max_iter" in attack_cfg:
            attack_cfg["max_iter"] = min(attack_cfg["max_iter"], TINY["max_iter"])
        started = time.perf_counter()
        how = {"max_images": args.attack_images, "batch_size": eval_batch, "seed": args.seed, "progress": False}
        options = EvaluationOptions(attack_cfg, dm.num_classes, dm.positive_class, **how)
        result = evaluate(net, test_set, options)
        m = result.metrics
        per_image = m["attack_seconds"] / m["attack_images"]
        fb = m["attack_backward_passes"]
        fwd = m["attack_forward_passes"] - fb
        worst_fwd, worst_fb = worst_passes(attack_cfg, fwd, fb)
        priced = fwd * t_fwd + fb * t_fb
        priced_worst = worst_fwd * t_fwd + worst_fb * t_fb
        worst = per_image * priced_worst / priced if priced > 0 else priced_worst
        attacks[attack] = {
            "seconds_per_image": per_image,
            "forward_passes_per_image": fwd,
            "forward_backward_passes_per_image": fb,
            "worst_forward_passes_per_image": worst_fwd,
            "worst_forward_backward_passes_per_image": worst_fb,
            "worst_seconds_per_image": max(worst, per_image),
            "images": int(m["attack_images"]),
            "clean_accuracy": m["clean_accuracy"],
            "adversarial_accuracy": m["adversarial_accuracy"],
            "untrained_model": result.tags.get("untrained_model") == "true",
        }
        progress(
            f"{name} {attack}: {per_image:.4g} s/img, {fwd:.1f} fwd + {fb:.1f} fwd+bwd per image, "
            f"worst {attacks[attack]['worst_seconds_per_image']:.4g} s/img ({time.perf_counter() - started:.1f} s)"
        )

    train_images = round(PAPER_TRAIN_VAL_IMAGES * (1 - paper["val_fraction"]))
    val_images = PAPER_TRAIN_VAL_IMAGES - train_images
    train_s = paper["epochs"] * (train_images / lightning + val_images * t_fwd)
    attack_s = PAPER_TEST_IMAGES * sum(a["seconds_per_image"] for a in attacks.values())
    worst_s = PAPER_TEST_IMAGES * sum(a["worst_seconds_per_image"] for a in attacks.values())
    return {
        "image_size": size,
        "batch": args.batch,
        "warmup_steps": args.warmup,
        "timed_steps": args.steps,
        "lightning_images_per_second": lightning,
        "plain_images_per_second": plain,
        "lightning_overhead": plain / lightning,
        "forward_seconds_per_image": t_fwd,
        "forward_backward_seconds_per_image": t_fb,
        "eval_batch": eval_batch,
        "study_eval_batch": study_eval_batch,
        "attacks": attacks,
        "projected_train_minutes": train_s / 60,
        "projected_attack_minutes": attack_s / 60,
        "projected_attack_worst_minutes": worst_s / 60,
        "projected_total_minutes": (train_s + attack_s) / 60,
        "projected_total_worst_minutes": (train_s + worst_s) / 60,
    }


def markdown(header, rows) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def report(result: dict) -> str:
    models, attacks, paper = result["models"], result["attack_names"], result["paper"]
    tiny = result["tiny"]
    lines = [
        f"# {'TINY smoke run (not the paper cost): ' if tiny else ''}paper study priced on {result['device']}",
        f"# training: {result['warmup_steps']} warm-up + {result['timed_steps']} timed steps at batch "
        f"{result['batch']} ({'bf16 autocast, channels_last' if result['cuda'] else 'fp32'}); attacks: fp32 on "
        f"{result['attack_images']} test images at eval batch {result['eval_batch']}"
        + (f", max_iter cut to {TINY['max_iter']}" if tiny else ""),
        f"# projection: {paper['epochs']} epochs x ({result['paper_train_images']} train / Lightning img/s + "
        f"{result['paper_val_images']} val x fwd) + {PAPER_TEST_IMAGES} test images x sum of attack s/img",
        "",
    ]
    header = [
        "model",
        "px",
        "train img/s Lightning",
        "plain",
        "overhead",
        *(f"{a} s/img" for a in attacks),
        "train min",
        "attack min",
        "attack min worst",
        "total min",
        "total min worst",
    ]
    rows = [
        (
            name,
            r["image_size"],
            f"{r['lightning_images_per_second']:.1f}",
            f"{r['plain_images_per_second']:.1f}",
            f"{r['lightning_overhead']:.2f}",
            *(f"{r['attacks'][a]['seconds_per_image']:.3g}" for a in attacks),
            f"{r['projected_train_minutes']:.1f}",
            f"{r['projected_attack_minutes']:.1f}",
            f"{r['projected_attack_worst_minutes']:.1f}",
            f"{r['projected_total_minutes']:.1f}",
            f"{r['projected_total_worst_minutes']:.1f}",
        )
        for name, r in models.items()
    ]
    lines += [markdown(header, rows), ""]
    header = ["model", "attack", "s/img", "fwd/img", "fwd+bwd/img", "worst fwd, fwd+bwd/img", "worst s/img", "adv acc"]
    rows = [
        (
            name,
            a,
            f"{d['seconds_per_image']:.3g}",
            f"{d['forward_passes_per_image']:.1f}",
            f"{d['forward_backward_passes_per_image']:.1f}",
            f"{d['worst_forward_passes_per_image']:.1f}, {d['worst_forward_backward_passes_per_image']:.1f}",
            f"{d['worst_seconds_per_image']:.3g}",
            f"{d['adversarial_accuracy']:.2f}",
        )
        for name, r in models.items()
        for a, d in r["attacks"].items()
    ]
    lines += [markdown(header, rows), ""]
    for name, r in models.items():
        clean = next(iter(r["attacks"].values()), {}).get("clean_accuracy")
        untrained = any(d["untrained_model"] for d in r["attacks"].values())
        lines.append(
            f"{name}: one pass per image at batch {r['eval_batch']}: "
            f"fwd {r['forward_seconds_per_image'] * 1e3:.3g} ms, "
            f"fwd+bwd to the input {r['forward_backward_seconds_per_image'] * 1e3:.3g} ms"
            + ("" if clean is None else f"; clean accuracy on the attacked images {clean:.2f}")
            + (" (no better than the majority class: early-stopping costs are low, see worst)" if untrained else "")
        )
    lines += [
        "",
        f"total over {len(models)} model(s){' (TINY)' if tiny else ''}: {result['total_minutes']:.1f} min "
        f"({result['total_minutes'] / 60:.2f} h); worst case {result['total_worst_minutes']:.1f} min "
        f"({result['total_worst_minutes'] / 60:.2f} h) on {result['device']}; "
        f"this run took {result['wall_seconds']:.0f} s",
    ]
    return "\n".join(lines)


def main(argv=None):
    paper = paper_settings()
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default=",".join(paper["models"]), help="comma-separated, of the paper's models")
    ap.add_argument("--attacks", default=",".join(paper["attacks"]), help="comma-separated, of the paper's attacks")
    ap.add_argument("--image-size", type=int, default=paper["image_size"])
    ap.add_argument("--batch", type=int, default=paper["batch"], help="training batch")
    ap.add_argument("--warmup", type=int, default=3, help="training steps before the timed ones")
    ap.add_argument("--steps", type=int, default=10, help="timed training steps")
    ap.add_argument("--attack-images", type=int, default=64, help="test images each attack runs on")
    ap.add_argument("--eval-batch", default=paper["eval_batch"], help="images per attack call, or auto")
    ap.add_argument("--repeats", type=int, default=5, help="timings of each bare pass (median)")
    ap.add_argument("--accelerator", default="auto", choices=["auto", "cpu", "gpu"], help="as trainer.accelerator")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tiny", action="store_true", help="CPU smoke run: smallest sizes, batch 4, 1 + 2 steps")
    ap.add_argument("--json", type=Path, help="write the numbers here")
    ap.add_argument("--verbose", action="store_true", help="keep the libraries' warnings")
    args = ap.parse_args(argv)
    args.models, args.attacks = args.models.split(","), args.attacks.split(",")
    for kind, chosen in (("models", args.models), ("attacks", args.attacks)):
        if unknown := set(chosen) - set(paper[kind]):
            ap.error(f"--{kind}: unknown {sorted(unknown)}; choose from {', '.join(paper[kind])}")
    if args.tiny:
        args.accelerator = "cpu"
        args.batch, args.warmup, args.steps = TINY["batch"], TINY["warmup"], TINY["steps"]
        args.attack_images = TINY["attack_images"]
        args.eval_batch = str(TINY["attack_images"])
        args.repeats = TINY["repeats"]
        # one thread: two OpenMP threads spin against any other load on a small machine (bench/attacks.py)
        args.threads = args.threads or TINY["threads"]
    if args.eval_batch != "auto" and not args.eval_batch.isdigit():
        ap.error(f"--eval-batch: a number or auto, not {args.eval_batch!r}")

    quiet(args.verbose)
    if not args.verbose:
        warnings.filterwarnings("ignore", category=UserWarning)
        logging.getLogger("covid_robustness").setLevel(logging.ERROR)  # the untrained-model warning: in the table
    if args.threads:
        torch.set_num_threads(args.threads)
    device = job_device(args.accelerator)
    gpu = GpuSettings()
    cuda = device.type == "cuda"
    name = torch.cuda.get_device_name(device) if cuda else f"cpu ({torch.get_num_threads()} torch threads)"
    progress(f"on {name}; models {', '.join(args.models)}; attacks {', '.join(args.attacks)}")

    started = time.perf_counter()
    datasets, models = {}, {}
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        for model in args.models:
            models[model] = measure_model(model, args, paper, device, gpu, datasets)
    train_images = round(PAPER_TRAIN_VAL_IMAGES * (1 - paper["val_fraction"]))
    result = {
        "tiny": args.tiny,
        "device": name,
        "cuda": cuda,
        "load_average": os.getloadavg()[0],
        "paper": paper,
        "paper_train_images": train_images,
        "paper_val_images": PAPER_TRAIN_VAL_IMAGES - train_images,
        "paper_test_images": PAPER_TEST_IMAGES,
        "batch": args.batch,
        "warmup_steps": args.warmup,
        "timed_steps": args.steps,
        "attack_images": args.attack_images,
        "eval_batch": args.eval_batch,
        "attack_names": args.attacks,
        "models": models,
        "total_minutes": sum(r["projected_total_minutes"] for r in models.values()),
        "total_worst_minutes": sum(r["projected_total_worst_minutes"] for r in models.values()),
        "wall_seconds": time.perf_counter() - started,
    }
    print(report(result))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
