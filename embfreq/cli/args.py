"""The argv of `embfreq.report` and `embfreq.analyze`, Hydra apps that keep their older shell forms.

Bare arguments (no `=`, not starting with -, + or ~) are the paths: `report A B` is `report paths=[A,B]`,
`analyze RUN` is `analyze run_dir=RUN`, quoted for Hydra's grammar so that commas, spaces, quotes and
`${` stay literal. An argument with `=` is an override (an unknown key is a one-line error), so a path
containing `=` is given as paths=['a=b'] / run_dir='a=b'.
The argparse flags of before (--out DIR, --which X, --accelerator X) map to their keys, so the commands
in published READMEs keep working.
"""

from __future__ import annotations

import re
import sys

from embfreq.errors import UserError, first_line

# Hydra's flags that take the next argument as their value; --info takes it only if it is a choice
_VALUED = {"--cfg", "-c", "--package", "-p", "--config-path", "-cp", "--config-name", "-cn", "--config-dir", "-cd",
           "--experimental-rerun"}
_INFO = {"all", "config", "defaults", "defaults-tree", "plugins", "searchpath"}


def quote(s: str) -> str:
    """`s` as one quoted value of Hydra's override grammar that reads back as exactly `s`."""
    s = re.sub(r"(\\*)\$\{", r"\1\1\\${", s)  # OmegaConf resolves ${...}; \${ is a literal one
    # Hydra: inside '...' a backslash escapes only a quote and the backslashes right before one
    s = re.sub(r"(\\*)('|\Z)", lambda m: m.group(1) * 2 + ("\\'" if m.group(2) else ""), s)
    return f"'{s}'"


def to_overrides(argv: list[str], key: str, many: bool, flags: dict[str, str]) -> list[str]:
    """Hydra's argv for `argv`: the bare arguments become `key=[...]` (`many`) or `key=...` (exactly one),
    an old flag of `flags` (e.g. {"--out": "out"}) `<its key>=<value>`; the rest passes through."""
    out, bare, i = [], [], 0
    while i < len(argv):
        a, i = argv[i], i + 1
        flag, eq, value = a.partition("=")
        if flag in flags:  # --out DIR or --out=DIR
            if not eq:
                if i == len(argv):
                    raise UserError(f"{a} needs a value ({flags[flag]}=...)")
                value, i = argv[i], i + 1
            out.append(f"{flags[flag]}={quote(value)}")
        elif a in ("-m", "--multirun"):  # a sweep would make a multirun/ dir; these commands run once
            raise UserError(f"{a}: no multirun here; " + ("give all the paths to one call" if many else
                                                          "call it once per run dir"))
        elif eq or a.startswith(("-", "+", "~")):
            keys = (key, *flags.values())
            if eq and not a.startswith(("-", "+", "~", "hydra.", "hydra/")) and flag not in keys:
                # one line instead of Hydra's dump; a path with = lands here too
                as_path = f"{key}=[{quote(a)}]" if many else f"{key}={quote(a)}"
                raise UserError(f"{flag}: no such key (the keys are {', '.join(keys)}); "
                                f"a path with = is given as {as_path}")
            out.append(a)
            if i < len(argv) and (a in _VALUED or (a in ("--info", "-i") and argv[i] in _INFO)):
                out.append(argv[i])
                i += 1
        else:
            bare.append(a)
    if bare:
        if any(o.lstrip("+~").startswith(f"{key}=") for o in out):
            raise UserError(f"{key} given twice: as bare arguments ({' '.join(bare)}) and as {key}=")
        if not many and len(bare) > 1:
            raise UserError(f"one {key} only, got {len(bare)}: {' '.join(bare)}")
        out.insert(0, f"{key}=[{','.join(map(quote, bare))}]" if many else f"{key}={quote(bare[0])}")
    return out


def error(e: Exception) -> int:
    """Print a user error as the one line every embfreq command uses; its exit code."""
    print(f"embfreq: error: {e}", file=sys.stderr)
    return 2


def run_app(app, argv: list[str] | None, **shim) -> int:
    """Run the @hydra.main function `app` on `argv` (default: sys.argv[1:]) passed through
    to_overrides(**shim); the exit code."""
    try:
        hydra_argv = to_overrides(sys.argv[1:] if argv is None else list(argv), **shim)
    except UserError as e:
        return error(e)
    saved, sys.argv = sys.argv, [sys.argv[0], *hydra_argv]  # Hydra reads only sys.argv
    try:
        app()
    except SystemExit as e:  # the app's one-line errors; Hydra's --help, --cfg and its own errors
        return e.code or 0
    finally:
        sys.argv = saved
    return 0


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
