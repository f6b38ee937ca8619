"""The command line's overrides, checked before Hydra composes them: a config option that does not exist
(`model=resnet99`, `experiment=nope`), a top-level key that no config declares (`atack.eps=0.1`, also
with a `+`, which Hydra would add silently) or a setting that no config of its node declares, at any
depth (`attack.epss=0.1`, `eval.max_imgs=5`, `defense=jpeg defense.preprocessor.qualty=50`) stops with
one sentence naming the nearest known name, exit status 2, before anything is imported, trained or
logged. A `+` adds a setting on purpose and is not checked below the top level."""

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


def option(group: str, name: str, conf: Path = CONF) -> dict:
    """An option of a config group as a plain dict, merged over its defaults (options of the same group)."""
    node = OmegaConf.to_container(OmegaConf.load(conf / group / f"{name}.yaml"), resolve=False)
    merged = OmegaConf.create()
    for parent in node.pop("defaults", None) or []:
        if isinstance(parent, str) and parent != "_self_" and (conf / group / f"{parent}.yaml").is_file():
            merged = OmegaConf.merge(merged, option(group, parent, conf))
    return OmegaConf.to_container(OmegaConf.merge(merged, node), resolve=False)


def sources(conf: Path = CONF) -> dict[str, dict[str, dict]]:
    """What can set each top-level node, by name: a group's options (`attack=pgd`), config.yaml's node
    (`eval`), and the experiments that add to it (`experiment=paper_cpu`)."""
    found = {g: {f"{g}={o}": option(g, o, conf) for o in opts} for g, opts in groups(conf).items() if "/" not in g}
    own = OmegaConf.to_container(OmegaConf.load(conf / "config.yaml"), resolve=False)
    for key, node in own.items():
        if isinstance(node, dict) and key not in ("hydra", "defaults"):
            found[key] = {"config.yaml": node}
    for experiment in sorted((conf / "experiment").glob("*.yaml")):
        for key, node in OmegaConf.to_container(OmegaConf.load(experiment), resolve=False).items():
            if isinstance(node, dict) and key in found:
                found[key][f"experiment={experiment.stem}"] = node
    return found


def unknown_setting(path: list[str], nodes: list[dict]) -> tuple[int, set[str]] | None:
    """The depth at which `path` (below its top-level key) leaves every node, and the settings known
    there; None where it stays within one, or reaches a value that is not a node (a list, a number)."""
    for depth, name in enumerate(path):
        known = set().union(*(set(n) for n in nodes))
        if name not in known:
            return depth, known
        nodes = [n[name] for n in nodes if isinstance(n.get(name), dict)]
        if not nodes:
            return None
    return None


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


def _check_setting(arg: str, key: str, chosen: dict[str, list[str]], nodes: dict[str, dict[str, dict]]) -> None:
    """Refuse `key` (a setting below a top-level node) if an option of its group named on the command line
    lacks it, or, with none named, if every config that can set the node lacks it."""
    top, *path = key.split(".")
    added = [node for name, node in nodes[top].items() if name.startswith("experiment=")]
    if named := [f"{top}={o}" for o in chosen.get(top, []) if f"{top}={o}" in nodes[top]]:
        candidates = [(f"{name} has no", [nodes[top][name], *added]) for name in named]
    else:
        grouped = any("=" in name and not name.startswith("experiment=") for name in nodes[top])
        candidates = [(f"no {top} config has a" if grouped else f"{top} has no", list(nodes[top].values()))]
    for what, candidate in candidates:
        if (found := unknown_setting(path, candidate)) is None:
            continue
        depth, known = found
        prefix = ".".join(path[:depth])
        close = difflib.get_close_matches(path[depth], list(known), n=1, cutoff=0.6)
        nearest = f" Did you mean '{'.'.join([*path[:depth], close[0]])}'?" if close else ""
        raise ConfigError(
            f"{arg}: {what} setting '{'.'.join(path[: depth + 1])}'.{nearest} "
            f"Its {prefix + ' ' if prefix else ''}settings: {', '.join(sorted(known))}. "
            f"(A new one is added with +{key}=...)"
        )


def check(args: list[str], conf: Path = CONF) -> None:
    """Raise ConfigError for the first override that names an unknown option of a config group, an
    unknown top-level key or an unknown setting."""
    options, keys, nodes = groups(conf), top_keys(conf), sources(conf)
    if any(a.startswith(("--config-dir", "-cd", "--config-path", "-cp", "hydra.searchpath")) for a in args):
        options, nodes = {}, {}  # configs from elsewhere: their options and settings are Hydra's to find
    chosen = {}  # group -> the options the command line names for it
    for arg in args:
        key, _, value = arg.partition("=")
        if key in options and "(" not in value and "$" not in value:
            chosen[key] = [v.strip() for v in value.split(",") if v.strip() and v.strip() != "null"]
    for arg in args:
        if arg.startswith("-") or "=" not in arg:
            continue  # Hydra's flags (-m, --multirun, ...)
        key, _, value = arg.partition("=")
        if not key.startswith(("+", "~")) and "." in key and key.split(".")[0] in nodes:
            _check_setting(arg, key, chosen, nodes)
        key = key.lstrip("+~")
        if key.split(".")[0].split("/")[0] == "hydra":
            continue  # Hydra's own settings and groups (its launchers, sweepers, logging): Hydra checks them
        if key in options:
            if "(" in value or "[" in value or "$" in value:
                continue  # a sweep function, a list or an interpolation: Hydra reads it
            for name in filter(None, (v.strip() for v in value.split(","))):
                if name not in options[key] and name != "null":
                    message = f"{key}={name}: there is no conf/{key}/{name}.yaml."
                    hint = _timm_hint(name) if key == "model" else ""
                    known = ", ".join(options[key])
                    raise ConfigError(message + (hint or f"{_nearest(name, options[key])} Known: {known}."))
        elif (top := key.split(".")[0]) not in keys:
            raise ConfigError(
                f"{arg}: no config has a key '{top}'.{_nearest(top, keys)} Known: {', '.join(sorted(keys))}."
            )
