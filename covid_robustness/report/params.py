"""Which of a job's logged params can change its numbers: the ones the report tells jobs apart by.

The sections the cell key (training_cache.cell_key) hashes, read back from the params, less what cannot
change an accuracy (where it logs, how many example images it draws). A run also holds the model's own
hyperparameters without a section (Lightning logs them: lr, mean, std, ...); they follow from the
sections, or from the data and seed, and are left out.
"""

from ..training_cache import NOT_IN_KEY, TRAINING_SECTIONS

SECTIONS = (*TRAINING_SECTIONS, "attack", "eval", "study", "defense")
SCALARS = ("seed", "study")  # sections that are one value; the others are groups, logged as section.key
IGNORED = {"data.skipped_images", "eval.n_examples",
           *(f"{section}.{key}" for section, keys in NOT_IN_KEY.items() for key in keys)}
# What older runs did not log, as they ran it.
DEFAULTS = {"attack.eps_unit": "pixel"}
MISSING = "–"  # a param one run logged and another did not


def numbers_params(params: dict[str, str]) -> dict[str, str]:
    """The params that can change a job's numbers, with the values older runs ran without logging."""
    return {k: v for k, v in {**DEFAULTS, **params}.items()
            if (k in SCALARS or ("." in k and k.split(".")[0] in SECTIONS)) and k not in IGNORED}
