"""Class names of the curated COVID-19 chest X-ray dataset and the two tasks built on them."""

from ..errors import ConfigError

COVID = "COVID-19"
NORMAL = "Normal"
VIRAL = "Pneumonia-Viral"
BACTERIAL = "Pneumonia-Bacterial"

# Index order is the label order. COVID-19 is the positive class for sensitivity and AUROC.
TASKS = {
    "binary": (NORMAL, COVID),
    "four_class": (COVID, NORMAL, VIRAL, BACTERIAL),
}


def task_classes(task: str) -> tuple[str, ...]:
    if task not in TASKS:
        raise ConfigError(f"data.task={task!r} is not a task; choose one of {sorted(TASKS)}.")
    return TASKS[task]
