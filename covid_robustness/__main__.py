"""Entry point: `python -m covid_robustness [overrides]` runs the Hydra app; `params` prints Table I,
`report --study NAME` builds a study's report from MLflow; `readme FILE...` fills a README's generated regions
from the reports' files; `probe [overrides]` runs both shortcut probes."""

import sys

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from .arguments import check
from .errors import ConfigError
from .evaluation.checks import AttackCheckError


@hydra.main(version_base="1.3", config_path="../conf", config_name="config")
def app(cfg: DictConfig) -> dict[str, float]:
    from .console import quiet

    quiet(cfg.get("verbose", False))  # before ART's import, which logs where it keeps its data
    from .job.run import run  # heavy imports after Hydra has parsed the command line

    try:
        hydra_cfg = HydraConfig.get()
        return run(cfg, " ".join(hydra_cfg.overrides.task), sweep=hydra_cfg.mode == RunMode.MULTIRUN)
    except ConfigError as err:  # printed once, not logged too (the console shows both); the run's tag keeps it
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    except AttackCheckError as err:
        print(f"error: the attack's output failed a check: {err}", file=sys.stderr)
        sys.exit(3)


def probe_arguments(args: list[str]) -> list[str]:
    """`probe <overrides>` as the multirun it stands for: both shortcut probes of the given model and data."""
    if taken := [a for a in args if a.split("=")[0].lstrip("+~") == "probe"]:
        print(f"error: `probe` runs probe=border,statistics itself; leave out {' '.join(taken)}", file=sys.stderr)
        sys.exit(2)
    return ["-m", *(a for a in args if a not in ("-m", "--multirun")), "probe=border,statistics"]


def checked(args: list[str]) -> list[str]:
    """The overrides, if every config option and top-level key they name exists; else one sentence, exit 2."""
    try:
        check(args)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    return args


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "params":
        from .models.table1 import main as params

        params(sys.argv[2:])
    elif len(sys.argv) > 1 and sys.argv[1] == "report":
        from .report.cli import main as report

        report(sys.argv[2:])
    elif len(sys.argv) > 1 and sys.argv[1] == "readme":
        from .report.readme import main as readme

        readme(sys.argv[2:])
    elif len(sys.argv) > 1 and sys.argv[1] == "probe":
        sys.argv = [sys.argv[0], *checked(probe_arguments(sys.argv[2:]))]
        app()  # the sweep's end (sweep.SweepCallbacks) prints the verdict table
    else:
        checked(sys.argv[1:])
        app()


if __name__ == "__main__":
    main()
