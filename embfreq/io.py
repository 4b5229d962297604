"""Atomic file writes: results and caches are either complete or absent, never half-written."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from embfreq.errors import first_line


def current_umask() -> int:
    m = os.umask(0)
    os.umask(m)
    return m


@contextmanager
def atomic_path(path: str | os.PathLike, *, suffix: str = ".tmp", durable: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success it is renamed onto `path`, else removed.

    durable: the data and then the rename are fsynced, so a power cut leaves the old file or the
    new one (checkpoints, items.csv); plain results only need a kill to leave no half file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    os.chmod(tmp, 0o666 & ~current_umask())  # mkstemp makes 0600; results are ordinary files
    try:
        yield Path(tmp)
        if durable:
            _fsync(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    if durable:
        try:  # the rename itself survives a power cut once the directory is synced
            _fsync(path.parent)
        except OSError:  # some file systems cannot sync a directory; the data is synced already
            pass


def remove_temp_files(directory: str | os.PathLike) -> int:
    """Delete the temp files that killed atomic writes left in `directory` and below
    (`.<name>.<random>.tmp`: a 0-byte checkpoint, a figure, a result). Call it only while no other
    process writes there (a run dir under its lock). Returns how many went."""
    n = 0
    for tmp in Path(directory).rglob(".*.tmp"):
        try:
            if tmp.is_file():
                tmp.unlink()
                n += 1
        except OSError:
            pass
    return n


def _fsync(path: str | os.PathLike) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json(path: str | os.PathLike, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=_jsonable) + "\n")


def _jsonable(x: Any) -> Any:
    if hasattr(x, "item"):
        return x.item()
    if hasattr(x, "tolist"):
        return x.tolist()
    if isinstance(x, Path):
        return str(x)
    raise TypeError(f"not JSON serialisable: {type(x).__name__}")


def read_json_object(path: str | os.PathLike) -> tuple[dict | None, str | None]:
    """(the JSON object in `path`, None), or (None, why it is unreadable) for a damaged file; the
    caller says what the file is and words its one-line error. A missing file is the caller's case."""
    try:
        obj = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, ValueError) as e:
        return None, f"{type(e).__name__}: {first_line(e)}"
    if not isinstance(obj, dict):
        return None, f"expected a JSON object, got {type(obj).__name__}"
    return obj, None


def sha256_file(path: str | os.PathLike) -> str:
    """Hex sha256 of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def flatten(d: dict, prefix: str = "") -> dict:
    """A nested config as {dotted key: value}; an empty dict stays a leaf."""
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out
