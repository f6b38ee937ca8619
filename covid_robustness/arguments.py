"""The command line's overrides, checked before Hydra composes them: a config option that does not exist
(`model=resnet99`, `experiment=nope`) or a top-level key that no config declares (`atack.eps=0.1`, also
with a `+`, which Hydra would add silently) stops with one sentence naming the nearest known name, exit
status 2, before anything is imported, trained or logged."""

import difflib
from pathlib import Path

from omegaconf import OmegaConf

from .errors import ConfigError

CONF = Path(__file__).resolve().parents[1] / "conf"


def groups(conf: Path = CONF) -> dict[str, list[str]]:
    """Each config group (a folder of conf/, nested ones as hydra/launcher) and its options."""
    found = {}
    for folder in sorted(p for p in conf.rglob("*") if p.is_dir()):
        options = sorted(p.stem for p in folder.glob("*.yaml"))
        if options:
            found[folder.relative_to(conf).as_posix()] = options
    return found


def top_keys(conf: Path = CONF) -> set[str]:
    """The keys a composed config can have at its top: config.yaml's own and its groups'."""
    own = OmegaConf.load(conf / "config.yaml")
    return {k for k in own if k != "defaults"} | {g.split("/")[0] for g in groups(conf)}


def option_keys(group: str, option: str, conf: Path = CONF) -> set[str]:
    """The settings an option of a config group has, its defaults' (options of the same group) included."""
    node = OmegaConf.load(conf / group / f"{option}.yaml")
    keys = {k for k in node if k != "defaults"}
    for parent in node.get("defaults") or []:
        if isinstance(parent, str) and parent != "_self_" and (conf / group / f"{parent}.yaml").is_file():
            keys |= option_keys(group, parent, conf)
    return keys


def _nearest(name: str, known) -> str:
    close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
    return f" Did you mean '{close[0]}'?" if close else ""


def _timm_hint(name: str) -> str:
    """How to use a model timm knows that has no config file."""
    try:
        import timm
    except ImportError:  # pragma: no cover - timm is a dependency
        return ""
    if not timm.is_model(name):
        return ""
    return (
        f" '{name}' is a timm model: it needs no file, run it with model.name={name} "
        f"(or add conf/model/{name}.yaml, as conf/model/resnet18.yaml)."
    )


def check(args: list[str], conf: Path = CONF) -> None:
    """Raise ConfigError for the first override that names an unknown option of a config group or an
    unknown top-level key."""
    options, keys = groups(conf), top_keys(conf)
    if any(a.startswith(("--config-dir", "-cd", "--config-path", "-cp", "hydra.searchpath")) for a in args):
        options = {}  # configs from elsewhere: their options are Hydra's to find
    chosen = {}  # group -> the options the command line names for it
    for arg in args:
        key, _, value = arg.partition("=")
        if key in options and "(" not in value and "$" not in value:
            chosen[key] = [v.strip() for v in value.split(",") if v.strip() and v.strip() != "null"]
    for arg in args:
        if arg.startswith("-") or "=" not in arg:
            continue  # Hydra's flags (-m, --multirun, ...)
        key, _, value = arg.partition("=")
        if not key.startswith(("+", "~")) and "." in key and (group := key.split(".")[0]) in chosen:
            setting = key.split(".")[1]
            for option in chosen[group]:
                if option in options[group] and setting not in (known := option_keys(group, option, conf)):
                    raise ConfigError(
                        f"{arg}: {group}={option} has no setting '{setting}'.{_nearest(setting, known)} "
                        f"Its settings: {', '.join(sorted(known))}."
                    )
        key = key.lstrip("+~")
        if key.split(".")[0].split("/")[0] == "hydra":
            continue  # Hydra's own settings and groups (its launchers, sweepers, logging): Hydra checks them
        if key in options:
            if "(" in value or "[" in value or "$" in value:
                continue  # a sweep function, a list or an interpolation: Hydra reads it
            for option in filter(None, (v.strip() for v in value.split(","))):
                if option not in options[key] and option != "null":
                    message = f"{key}={option}: there is no conf/{key}/{option}.yaml."
                    hint = _timm_hint(option) if key == "model" else ""
                    known = ", ".join(options[key])
                    raise ConfigError(message + (hint or f"{_nearest(option, options[key])} Known: {known}."))
        elif (top := key.split(".")[0]) not in keys:
            raise ConfigError(
                f"{arg}: no config has a key '{top}'.{_nearest(top, keys)} Known: {', '.join(sorted(keys))}."
            )
