"""Which config sections make a training, an evaluation and a grid cell: stated once, used everywhere.

A training is what changes the trained weights: the data, the model, the optimisation, the trainer, the
seed and the defense's adversarial training. An evaluation is how a trained model is attacked: the
attack, the evaluation settings and the defense (an input transformation acts at test time). A cell is
both, within one study: two runs of one cell are reruns of one another.
"""

# The config's sections (its top-level keys), as the params name them: section.key, or one value (SCALARS).
DATA, MODEL, OPTIM, TRAINER, GPU, SEED = "data", "model", "optim", "trainer", "gpu", "seed"
ATTACK, EVAL, DEFENSE, CORRUPTION, STUDY = "attack", "eval", "defense", "corruption", "study"
TRAINING = (DATA, MODEL, OPTIM, TRAINER, GPU, SEED)
DEFENSE_TRAINING = f"{DEFENSE}.training"  # the one part of the defense that changes the weights
EVALUATION = (ATTACK, EVAL, DEFENSE, CORRUPTION)
# A shortcut probe (probe.py) in place of the attack: absent from a normal job's settings (probe.name=none),
# so it changes none of their keys or params. A border probe's settings change its weights: a training param.
PROBE = "probe"
CELL = (*TRAINING, *EVALUATION, PROBE, STUDY)
SCALARS = (SEED, STUDY)  # sections that are one value; the others are groups, logged as section.key
# Settings that change how a job runs or what it shows, not its numbers.
NOT_IN_KEY = {
    DATA: ("num_workers", "cache", "cache_dir"),
    TRAINER: ("enable_progress_bar", "log_every_n_steps"),
    GPU: ("data_on_device",),  # the same batches from the device as from the host
}
SKIPPED_IMAGES = f"{DATA}.skipped_images"  # a job's param: the data folder's images left out as unreadable
NOT_NUMBERS = (f"{EVAL}.n_examples", SKIPPED_IMAGES)
# Training settings a model config may carry for its architecture (conf/model/vgg19.yaml's clipping): the
# trainer reads them (conf/trainer/default.yaml); the architecture's constructor does not take them.
MODEL_TRAINING_SETTINGS = ("gradient_clip_val",)
# Data settings that say which other images a job evaluates on, not what its model trains on.
EXTERNAL_DATA = ("external_root", "external_class_dirs")
# Settings that name a folder on the machine that ran the job: a report shows the folder's name only.
FOLDERS = (f"{DATA}.root", f"{DATA}.external_root", f"{DATA}.cache_dir")
# Settings that say where and how a job ran, not what it computed: never a cell's setting.
WHERE = ("tracking", f"{DATA}.cache_dir", f"{DATA}.num_workers", f"{DATA}.cache")
HARMONISE = f"{DATA}.harmonise"  # a remedy against source shortcuts (conf/data/folder.yaml)
# Settings a job leaves out of its keys and params while they are off (keys.job_settings), so that a store
# written before they existed still matches: a run without them had them off. A section, or section.key.
# Escalation of a cell (evaluation/escalation.py): whether it runs, then how.
ESCALATE = f"{EVAL}.escalate"
ESCALATION = tuple(
    f"{EVAL}.{k}"
    for k in ("escalate", "escalate_max_images", "escalate_max_iter", "escalate_restarts", "escalate_square_queries")
) + (f"{EVAL}.escalate_sources",)
FIRST_IMAGE = f"{EVAL}.first_image"  # a slice of the test split's attacked images, from this index on
LOGGED_WHEN_ON = (CORRUPTION, HARMONISE, *(f"{DATA}.{name}" for name in EXTERNAL_DATA), *ESCALATION, FIRST_IMAGE)


def section(key: str) -> str:
    """The section of a flattened param (`attack.eps` -> attack, `seed` -> seed)."""
    return key.split(".")[0]


def within(key: str, names) -> bool:
    """Whether a flattened param is one of the names (a section, or section.key) or lies under one."""
    return any(key == name or key.startswith(f"{name}.") for name in names)


def is_training_param(key: str) -> bool:
    """Whether a flattened param is a setting of the training (logged on the training run)."""
    if _external(key):
        return False
    if section(key) == PROBE:
        return True
    return key.startswith(f"{DEFENSE_TRAINING}.") or (section(key) in TRAINING and not _ignored(key))


def is_evaluation_param(key: str) -> bool:
    """Whether a flattened param says how the model was attacked (the defense's training excluded)."""
    if _external(key):
        return True
    return section(key) in EVALUATION and "." in key and not key.startswith(f"{DEFENSE_TRAINING}.")


def is_numbers_param(key: str) -> bool:
    """Whether a flattened param can change a job's numbers: a setting of its cell."""
    in_cell = key in SCALARS or ("." in key and section(key) in CELL)
    return in_cell and not _ignored(key) and key not in NOT_NUMBERS


def _external(key: str) -> bool:
    return within(key, [f"{DATA}.{name}" for name in EXTERNAL_DATA])


def _ignored(key: str) -> bool:
    head, _, rest = key.partition(".")
    return rest in NOT_IN_KEY.get(head, ())
