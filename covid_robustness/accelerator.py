"""Where a job computes: the CPU, or one CUDA device run with the settings that keep it busy.

With CUDA (and `gpu` settings on, the default), a job
- claims one GPU for its process (`claim_gpu`): parallel joblib workers on a node with several GPUs
  take one each;
- keeps each split's uint8 images on that GPU and slices and converts its batches there
  (`DeviceLoader`: the same batches, in the same order, as the CPU path's DataLoader, with no host
  copy per batch; the whole curated set at 255 px is under 1 GB);
- trains under bf16 autocast (Lightning's bf16-mixed precision) with the model and batches in
  channels_last and cuDNN's autotuner on (off while attacking); attacks and every evaluation stay
  fp32 (TF32 off: `exact_fp32`), where the checks and the agreement with ART were measured;
- sizes its evaluation batches to the GPU's free memory when `eval.batch_size=auto`.
A CPU run uses none of this: its numbers are those of the plain DataLoader path.
"""

import math
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from filelock import FileLock, Timeout

CPU_EVAL_BATCH = 64
# auto evaluation batches on a GPU: the largest power of two in these bounds whose attack fits in this
# share of the free memory (attacks keep a few copies of a batch beside the activations).
GPU_EVAL_BATCH = (16, 1024)
MEMORY_SHARE = 0.5


@dataclass(frozen=True)
class GpuSettings:
    """conf/config.yaml `gpu`: what a CUDA job does differently. A CPU job ignores all of it."""

    bf16_training: bool = True
    channels_last: bool = True
    cudnn_benchmark: bool = True
    data_on_device: bool = True

    def on(self, device: torch.device) -> "GpuSettings":
        """These settings where they apply: on a CUDA device; on any other, all off."""
        return self if device.type == "cuda" else GpuSettings(False, False, False, False)


def uses_cuda(accelerator: str = "auto") -> bool:
    """Whether a job with this trainer.accelerator computes on a CUDA device."""
    return accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available()


_claimed: tuple[int, FileLock | None] | None = None


def claim_gpu(n_devices: int | None = None, lock_dir: str | Path | None = None) -> int:
    """The GPU index this process computes on, claimed once and kept for the process's life.

    The first of the n_devices visible GPUs whose slot no other live process holds (a file lock in a
    machine-local folder, released when the process ends); with every slot held, pid mod n. joblib
    workers are processes, so with n_jobs <= GPUs each worker gets a GPU of its own. Under SLURM
    (submitit) every task sees only its own GPU (CUDA_VISIBLE_DEVICES), so it takes index 0.
    """
    global _claimed
    if _claimed is not None:
        return _claimed[0]
    n = torch.cuda.device_count() if n_devices is None else n_devices
    if n <= 1:
        _claimed = (0, None)
        return 0
    folder = Path(lock_dir or Path(tempfile.gettempdir()) / f"covid-robustness-gpus-{os.getuid()}")
    folder.mkdir(parents=True, exist_ok=True)
    visible = os.environ.get("CUDA_VISIBLE_DEVICES", "all").replace(",", "_")
    for index in range(n):
        lock = FileLock(folder / f"{visible}-{index}.lock")
        try:
            lock.acquire(timeout=0)
        except Timeout:
            continue
        _claimed = (index, lock)
        return index
    _claimed = (os.getpid() % n, None)
    return _claimed[0]


def release_gpu() -> None:
    """Give the claimed slot back (for tests; a process's slot is released when it ends)."""
    global _claimed
    if _claimed is not None and _claimed[1] is not None:
        _claimed[1].release()
    _claimed = None


def allocated_cpus() -> int:
    """The CPUs this process was given: its CPU affinity, and no more than SLURM_CPUS_PER_TASK inside a
    SLURM allocation (a cluster without cgroup confinement lets a task see every CPU of its node)."""
    n = len(os.sched_getaffinity(0))
    slurm = os.environ.get("SLURM_CPUS_PER_TASK", "")
    return min(n, int(slurm)) if slurm.isdigit() and int(slurm) > 0 else n


def use_allocated_cpus() -> int:
    """Compute on the allocated CPUs only: torch starts a thread per core of the machine, which on a
    shared node oversubscribes the CPUs other jobs were given. Returns the threads used."""
    n = allocated_cpus()
    if n < torch.get_num_threads():
        torch.set_num_threads(n)
    return torch.get_num_threads()


def job_device(accelerator: str = "auto") -> torch.device:
    """The device of this job: its claimed GPU (made current, so ART's classifiers use it too) or the CPU."""
    if not uses_cuda(accelerator):
        return torch.device("cpu")
    index = claim_gpu()
    torch.cuda.set_device(index)
    exact_fp32()
    return torch.device("cuda", index)


def exact_fp32() -> None:
    """fp32 computed as fp32 on a GPU. PyTorch lets cuDNN's convolutions run in TF32 by default (a 10-bit
    mantissa), which moves an attack's iterates by about 1e-3 from fp32's and lets Adam (C&W) amplify the
    difference; the attacks' checks and their agreement with ART were measured in fp32. Training under
    bf16 autocast does not use TF32 either way."""
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False


def trainer_options(device: torch.device, gpu: GpuSettings, training: bool) -> dict:
    """Extra pytorch_lightning.Trainer arguments for this device; none on the CPU."""
    if device.type != "cuda":
        return {}
    # cuDNN's autotuner pays off on training's fixed batch shape; attacks shrink their batches as images
    # fall, and every new shape would be tuned again.
    options = {"accelerator": "gpu", "devices": [device.index], "benchmark": gpu.cudnn_benchmark and training}
    if training and gpu.bf16_training:
        options["precision"] = "bf16-mixed"
    return options


class DeviceLoader:
    """A split's batches sliced from its uint8 images kept on `device`, converted to [0, 1] floats there.

    The same batches in the same order as torch's DataLoader(TensorDataset, batch_size, shuffle,
    generator, drop_last) with num_workers=0, epoch after epoch: it draws from the generator what that
    loader draws, when that loader draws it.
    """

    def __init__(
        self,
        images: np.ndarray,
        labels: np.ndarray,
        batch_size: int,
        shuffle: bool,
        generator: torch.Generator | None,
        drop_last: bool,
        device: torch.device,
        channels_last: bool = False,
        dataset=None,
    ):
        self.images = torch.from_numpy(np.ascontiguousarray(images)).to(device)  # uint8 N x H x W
        self.labels = torch.from_numpy(np.ascontiguousarray(labels)).to(device)
        self.batch_size, self.shuffle, self.drop_last = batch_size, shuffle, drop_last
        self.generator = generator if generator is not None else torch.Generator()
        self.channels_last = channels_last
        self.dataset = dataset  # the CPU dataset, for code that reads the split itself (the evaluation)

    def __len__(self) -> int:
        n = len(self.labels)
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def __iter__(self):
        n = len(self.labels)
        order = torch.arange(n)
        if self.shuffle:
            torch.empty((), dtype=torch.int64).random_(generator=self.generator)  # DataLoader's base seed
            order = torch.randperm(n, generator=self.generator)  # RandomSampler's permutation
        order = order.to(self.images.device)
        for i in range(len(self)):
            index = order[i * self.batch_size : (i + 1) * self.batch_size]
            x = self.images[index].unsqueeze(1).float().div_(255)
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            yield x, self.labels[index]
        if self.shuffle:
            # RandomSampler draws a second (empty) permutation, when asked for a batch past the last
            # one: a consumer that stops at len() (Lightning) never draws it, one that exhausts does.
            torch.randperm(n, generator=self.generator)


def batch_for_memory(bytes_per_image: float, free_bytes: float, n_images: int) -> int:
    """The evaluation batch for a GPU: the largest power of two in GPU_EVAL_BATCH whose images fit in
    MEMORY_SHARE of the free memory, and no more than the images to attack (rounded up to a power of two)."""
    low, high = GPU_EVAL_BATCH
    fits = max(1.0, MEMORY_SHARE * free_bytes / max(bytes_per_image, 1.0))
    batch = 2 ** int(math.floor(math.log2(fits)))
    return int(min(max(batch, low), high, 2 ** math.ceil(math.log2(max(n_images, 1)))))


def evaluation_batch_size(
    requested: int | str, net: torch.nn.Module, image_size: int, n_images: int, device: torch.device
) -> int:
    """eval.batch_size as a number: as given, or for `auto` 64 on the CPU and, on a GPU, what one
    forward and backward pass of a probe batch says fits in its free memory."""
    if requested != "auto":
        return int(requested)
    if device.type != "cuda":
        return CPU_EVAL_BATCH
    probe = 8
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    base = torch.cuda.memory_allocated(device)
    x = torch.rand(probe, 1, image_size, image_size, device=device, requires_grad=True)
    was_training = net.training
    net.eval()
    out = net(x)
    (out[0] if isinstance(out, (tuple, list)) else out).sum().backward()
    net.train(was_training)
    net.zero_grad(set_to_none=True)
    per_image = (torch.cuda.max_memory_allocated(device) - base) / probe
    del x, out
    torch.cuda.empty_cache()
    free, _ = torch.cuda.mem_get_info(device)
    return batch_for_memory(per_image, free, n_images)
