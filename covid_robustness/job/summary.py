"""What a sweep prints when it ends: the shortcut probes' verdict table, read from the probes' stores.

The table stands each probe beside the full model it probes: the newest finished normal job of the same
training (the probe's config with probe=none).
"""

from omegaconf import DictConfig, open_dict

from ..record import JOB_ROLE, PROBE_ROLE, ProbeMetrics, Tags, search
from ..shortcut import probe_name, verdict_table
from ..tracking import Tracker
from .keys import cell_key, training_key


def without_probe(cfg: DictConfig) -> DictConfig:
    """The normal job of a probe's config: the same training, probe=none."""
    plain = cfg.copy()
    with open_dict(plain):
        plain.probe = {"name": "none"}
    return plain


def full_model_accuracy(tracker: Tracker, cfg: DictConfig) -> float | None:
    """The clean test accuracy of the full model a probe job stands beside: the newest finished normal job
    of the same training, if the store has one."""
    query = (
        f"tags.{Tags.ROLE} = '{JOB_ROLE}' and tags.{Tags.TRAINING_KEY} = '{training_key(without_probe(cfg))}' "
        "and attributes.status = 'FINISHED'"
    )
    for run in search(tracker.client, tracker.experiment_id, query):
        if ProbeMetrics.FULL_MODEL in run.data.metrics:
            return run.data.metrics[ProbeMetrics.FULL_MODEL]
    return None


def probe_rows(cfgs: list[DictConfig]) -> list[dict]:
    """The verdict table's rows (shortcut.verdict_table) of probe jobs' configs, read from their stores.

    One row per store and full-model training (per border width when a sweep runs several); the statistics
    probe, which depends on no model, goes into every row of its data. A probe not finished reads None.
    """
    groups: dict[tuple, dict] = {}  # (store, the full model's training key) -> its model, accuracy and probes
    trackers: dict[tuple, Tracker] = {}
    for cfg in cfgs:
        store = (cfg.tracking.uri, cfg.tracking.dir, cfg.study)
        if store not in trackers:
            trackers[store] = Tracker.from_config(cfg)
        tracker = trackers[store]
        group = groups.setdefault(
            (store, training_key(without_probe(cfg))),
            {"model": cfg.model.name, "full": full_model_accuracy(tracker, cfg), "probes": {}},
        )
        done = tracker.find_job(cell_key(cfg), PROBE_ROLE)
        label = "statistics" if probe_name(cfg) == "statistics" else f"border {cfg.probe.border:g}"
        group["probes"][label] = {} if done is None else dict(done.data.metrics)
    rows = []
    for group in groups.values():
        statistics = group["probes"].get("statistics", {})
        borders = [label for label in group["probes"] if label != "statistics"] or [None]
        for label in borders:
            border = group["probes"][label] if label else {}
            rows.append(
                {
                    "model": group["model"] + (f" ({label})" if len(borders) > 1 else ""),
                    "full": group["full"],
                    "border": border.get(ProbeMetrics.ACCURACY),
                    "statistics": statistics.get(ProbeMetrics.ACCURACY),
                    "chance": border.get(ProbeMetrics.CHANCE, statistics.get(ProbeMetrics.CHANCE)),
                }
            )
    return rows


def probe_summary(cfgs: list[DictConfig]) -> str:
    """The verdict table of these probe jobs, as the sweep and `covid-robustness probe` print it."""
    return verdict_table(probe_rows(cfgs))
