"""Command-line pieces the commands share: `report` and `analyze` parse their paths with argparse (one
error line, as every embfreq command), and `train`'s Hydra overrides are checked before Hydra runs.
"""

from __future__ import annotations

import argparse
import re
import sys

from embfreq.errors import UserError, first_line


def error(e: Exception) -> int:
    """Print a user error as the one line every embfreq command uses; its exit code."""
    print(f"embfreq: error: {e}", file=sys.stderr)
    return 2


class ArgumentParser(argparse.ArgumentParser):
    """argparse whose errors are a UserError (one line, exit 2) instead of its usage and message."""

    def error(self, message: str):
        raise UserError(f"{message} (see {self.prog} --help)")


def key_values(argv: list[str], keys: dict[str, str]) -> list[str]:
    """`key=value` as `--key value` for the keys in `keys` (e.g. {"out": "--out"}): the form the docs and
    published READMEs use (`report DIR out=DIR`, `analyze RUN which=last`). Hand-written because argparse
    has no key=value syntax; any other argument with = (a path such as runs/lr=0.1) is left as it is."""
    out = []
    for a in argv:
        key, eq, value = a.partition("=")
        out += [keys[key], value] if eq and key in keys else [a]
    return out


# -- embfreq.train: every override checked before Hydra runs (one line, exit 2, no run dir) -----------

TRAIN_GROUPS = ("data", "model", "trainer", "callbacks", "logger", "band", "item_table", "experiment", "sweep")
# keys whose value is a mapping that may hold any keys: `key={...}` replaces it (as `++key=...`)
OPEN_MAPPINGS = ("data.columns",)


# top-level keys of earlier versions -> where they live now
MOVED = {"neighbours": "item_table.neighbours"}


def did_you_mean(word: str, choices) -> str:
    import difflib

    close = difflib.get_close_matches(word, [str(c) for c in choices], n=1, cutoff=0.6)
    return f"; did you mean {close[0]}?" if close else ""


def group_options(group: str) -> list[str]:
    """The options of a config group of embfreq.conf (its YAML files)."""
    from importlib import resources

    try:
        folder = resources.files("embfreq.conf").joinpath(*group.split("/"))
        return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml"))
    except (FileNotFoundError, NotADirectoryError):
        return []


def _trainer_arguments() -> list[str]:
    import inspect

    import pytorch_lightning as pl

    return [p for p in inspect.signature(pl.Trainer.__init__).parameters if p != "self"]


def open_mappings(argv: list[str]) -> list[str]:
    """`data.columns={user: u, item: i}` as its config comment shows it: Hydra would refuse it
    (the mapping is empty, new keys need +); it replaces the mapping, as ++data.columns=..."""
    return [f"++{a}" if a.partition("=")[0] in OPEN_MAPPINGS else a for a in argv]


def composition_error(e: Exception, overrides, cfg=None) -> UserError:
    """Hydra's multi-line composition error as one line naming the override, with a did-you-mean."""
    from omegaconf import OmegaConf

    msg = str(e)
    m = re.search(r"Could not find '([^']+)/([^'/]+)'", msg)
    if m:
        group, option = m.groups()
        options = re.findall(r"^\t(\S+)$", msg.split("Config search path")[0], re.M) or group_options(group)
        return UserError(f"{group}={option}: no such {group}; the options are {', '.join(options)}"
                         f"{did_you_mean(option, options)}")
    m = re.search(r"Could not (?:override|append to config|delete)[^']*'([^']+)'", msg) or re.search(r"Key '([^']+)'", msg)
    if m:
        key = m.group(1)
        parent, _, leaf = key.rpartition(".")
        node = OmegaConf.select(cfg, parent) if (cfg is not None and parent) else cfg
        keys = list(node.keys()) if node is not None and OmegaConf.is_dict(node) else []
        first = msg.strip().splitlines()[0]
        return UserError(f"{key}: no such key{' in ' + parent if parent else ''}{did_you_mean(leaf, keys)} ({first})")
    return UserError(f"{' '.join(map(str, overrides))}: {first_line(e)}")


def check_train_overrides(argv: list[str]) -> list[str]:
    """Refuse, with one line, an override of `embfreq.train` that names no key or option: an unknown
    key with or without + (`lower_frq=3`, `+lower_frq=3`), a group option that does not exist
    (`model=sasrek`), a trainer.* that pl.Trainer does not take; then compose the config (first value
    of each sweep) and, for a single run, check every value against the schema. Hydra's own flags
    (--help, --cfg, ...) and resume= pass unchecked. Returns argv, with a pl.Trainer argument that the
    trainer config does not set (`trainer.fast_dev_run=true`) written as Hydra needs it (++)."""
    from hydra import compose, initialize_config_module
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.override_parser.overrides_parser import OverridesParser

    multirun = any(a in ("-m", "--multirun") for a in argv)
    if any(a.startswith("-") and a not in ("-m", "--multirun") for a in argv):
        return argv
    overrides = [a for a in argv if not a.startswith("-")]
    if any(o.startswith("resume=") for o in overrides):
        return argv
    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
    except Exception as e:
        raise UserError(f"cannot read the overrides: {first_line(e)}") from None
    first = []
    for o in parsed:
        key = o.key_or_group
        try:
            values = list(o.sweep_string_iterator()) if o.is_sweep_override() else [o.get_value_element_as_str()]
        except Exception:  # a sweep only another sweeper reads (interval(...)): Hydra checks it
            return argv
        if not o.is_delete() and key in TRAIN_GROUPS:
            options = group_options(key)
            for v in values:
                if v not in options and v != "null":
                    raise UserError(f"{key}={v}: no such {key}; the options are {', '.join(options)}"
                                    f"{did_you_mean(v, options)}")
        raw = o.input_line or key
        prefix = raw[: len(raw) - len(raw.lstrip("+~"))]
        first.append(f"{prefix}{key}" if o.is_delete() else f"{prefix}{key}={values[0]}")
    try:
        if GlobalHydra.instance().is_initialized():
            GlobalHydra.instance().clear()
        with initialize_config_module("embfreq.conf", version_base="1.3"):
            groups_only = [f for f in first if f.lstrip("+").split("=")[0] in TRAIN_GROUPS]
            try:
                default = compose("train", overrides=groups_only)
            except Exception:
                default = compose("train")
            known = [*default.keys(), *TRAIN_GROUPS]
            for o in parsed:
                key = o.key_or_group
                if key.startswith("hydra") or "/" in key:
                    continue
                top = key.split(".")[0]
                if top in MOVED:
                    value = (o.input_line or "").split("=", 1)[-1] if "=" in (o.input_line or "") else "..."
                    raise UserError(f"{key}: no such key; it moved to {MOVED[top]} ({MOVED[top]}={value})")
                if top not in known:
                    raise UserError(f"{key}: no such key{did_you_mean(top, known)} (python -m embfreq.train --help "
                                    "lists the keys)")
                if top == "trainer" and key.count(".") == 1 and not o.is_delete():
                    args = _trainer_arguments()
                    if key.split(".")[1] not in args:
                        raise UserError(f"{key}: pl.Trainer takes no argument {key.split('.')[1]!r}"
                                        f"{did_you_mean(key.split('.')[1], args)}")
                    if key.split(".")[1] not in default.trainer and o.input_line and o.input_line[0] not in "+~":
                        # README: trainer.* takes any pl.Trainer argument, also one the config does not set
                        plus = f"++{o.input_line}"
                        argv = [plus if a == o.input_line else a for a in argv]
                        first = [f"++{f}" if f.split("=", 1)[0] == key else f for f in first]
            try:
                cfg = compose("train", overrides=first, return_hydra_config=True)
            except Exception as e:
                raise composition_error(e, first, default) from None
            if not multirun:
                from embfreq.training.config_checks import check_config

                with_hydra = cfg.copy()
                from omegaconf import open_dict

                with open_dict(with_hydra):
                    with_hydra.pop("hydra", None)
                check_config(with_hydra)
    finally:
        GlobalHydra.instance().clear()
    return argv
