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

from embfreq.errors import UserError

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
