"""The GPU path, checked on the CPU: the same batches from device-resident images, one GPU per process,
Trainer settings per device, fp32 crafting under autocast, evaluation batches sized to memory."""

import subprocess
import sys
import textwrap

import pytest
import torch

from covid_robustness.accelerator import (
    GPU_EVAL_BATCH,
    GpuSettings,
    batch_for_memory,
    claim_gpu,
    evaluation_batch_size,
    exact_fp32,
    release_gpu,
    trainer_options,
)
from covid_robustness.data.datamodule import CXRDataModule
from covid_robustness.defenses.adversarial_training import adversarial_batch
from covid_robustness.errors import ConfigError
from covid_robustness.job.plan import validate
from covid_robustness.models.module import CXRClassifier

from .conftest import make_cfg, quiet_trainer


def _datamodule(on_device: bool) -> CXRDataModule:
    dm = CXRDataModule(source="synthetic", n_images=120, image_size=32, batch_size=16, seed=3)
    dm.setup()
    if on_device:
        dm.on_device(torch.device("cpu"))
    return dm


def _batches(loader, epochs: int) -> list:
    return [batch for _ in range(epochs) for batch in loader]


@pytest.mark.parametrize("split", ["train", "val", "test"])
def test_device_loader_gives_the_dataloaders_batches_in_its_order(split):
    host, device = _datamodule(False), _datamodule(True)
    a = _batches(getattr(host, f"{split}_dataloader")(), 3)
    b = _batches(getattr(device, f"{split}_dataloader")(), 3)
    assert len(a) == len(b) >= 3
    for (xa, ya), (xb, yb) in zip(a, b):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
    assert device.test_dataloader().dataset is not None  # the evaluation reads the split from it


def test_training_from_device_resident_images_gives_the_same_weights():
    weights = []
    for on_device in (False, True):
        dm = _datamodule(on_device)
        torch.manual_seed(0)
        mean, std = dm.pixel_stats()
        module = CXRClassifier("resnet18", dm.num_classes, dm.positive_class, mean, std, lr=0.05)
        quiet_trainer(max_epochs=2, limit_val_batches=0).fit(module, datamodule=dm)
        weights.append(torch.cat([p.detach().flatten() for p in module.parameters()]))
    assert torch.equal(weights[0], weights[1])


def test_each_process_claims_a_gpu_of_its_own(tmp_path):
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                f"""
                import sys, time
                from covid_robustness.accelerator import claim_gpu
                print(claim_gpu(n_devices=2, lock_dir={str(tmp_path)!r}), flush=True)
                time.sleep(60)
                """
            ),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "0"  # the first process takes GPU 0 ...
        release_gpu()
        assert claim_gpu(n_devices=2, lock_dir=tmp_path) == 1  # ... the next one GPU 1
        assert claim_gpu(n_devices=2, lock_dir=tmp_path) == 1  # kept for the process's life
    finally:
        holder.kill()
        holder.wait()
        release_gpu()
    assert claim_gpu(n_devices=2, lock_dir=tmp_path) == 0  # a dead process's slot is free again
    release_gpu()
    assert claim_gpu(n_devices=1, lock_dir=tmp_path) == 0
    release_gpu()


def test_trainer_options_train_in_bf16_on_the_claimed_gpu_and_change_nothing_on_the_cpu():
    gpu = GpuSettings()
    assert trainer_options(torch.device("cpu"), gpu, training=True) == {}
    cuda = torch.device("cuda", 1)
    assert trainer_options(cuda, gpu, training=True) == {
        "accelerator": "gpu",
        "devices": [1],
        "benchmark": True,
        "precision": "bf16-mixed",
    }
    evaluation = trainer_options(cuda, gpu, training=False)
    assert "precision" not in evaluation and not evaluation["benchmark"]  # fp32; no autotuning per batch shape
    assert "precision" not in trainer_options(cuda, GpuSettings(bf16_training=False), training=True)


def test_adversarial_training_crafts_in_fp32_under_autocast():
    torch.manual_seed(0)
    dm = _datamodule(False)
    module = CXRClassifier("resnet18", dm.num_classes, dm.positive_class, 0.5, 0.25)
    x, y = next(iter(dm.train_dataloader()))
    cfg = {"method": "pgd", "eps": 8 / 255, "step": None, "iterations": 2, "random_start": False}
    plain = adversarial_batch(module.net, x, y, cfg)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        autocast = adversarial_batch(module.net, x, y, cfg)
    assert autocast.dtype == torch.float32
    assert torch.equal(plain, autocast)


def test_evaluation_batches_fit_the_memory_and_the_images():
    low, high = GPU_EVAL_BATCH
    mib = 2**20
    assert batch_for_memory(10 * mib, 80_000 * mib, 911) == 1024  # 4,000 would fit: capped
    assert batch_for_memory(100 * mib, 20_000 * mib, 911) == 64  # 100 fit: the power of two below
    assert batch_for_memory(100 * mib, 20_000 * mib, 40) == 64  # 40 images: one batch
    assert batch_for_memory(10 * mib, 80_000 * mib, 40) == 64
    assert batch_for_memory(10_000 * mib, 1_000 * mib, 911) == low  # nothing fits: the floor
    assert evaluation_batch_size("auto", torch.nn.Identity(), 32, 911, torch.device("cpu")) == 64
    assert evaluation_batch_size(48, torch.nn.Identity(), 32, 911, torch.device("cpu")) == 48
    assert high >= 1024


def test_eval_batch_size_auto_validates_and_nonsense_is_refused():
    validate(make_cfg("eval.batch_size=auto"))
    for bad in ("eval.batch_size=0", "eval.batch_size=many", "+gpu.fp8=true"):
        with pytest.raises(ConfigError):
            validate(make_cfg(bad))


def test_a_gpu_job_turns_tf32_off_so_attacks_compute_in_fp32():
    before = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    try:
        torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = True  # cuDNN's default is on
        exact_fp32()
        assert torch.backends.cudnn.allow_tf32 is False and torch.backends.cuda.matmul.allow_tf32 is False
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = before
