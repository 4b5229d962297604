"""On-disk cache of processed arrays, versioned and checksummed, written atomically."""

from __future__ import annotations

import hashlib
import json
import logging
import time
import zipfile
from pathlib import Path

import numpy as np

from embfreq.io import atomic_path, sha256_file, write_json

log = logging.getLogger(__name__)

CACHE_FORMAT_VERSION = 1


def cache_key(parts: dict) -> str:
    """A stable key for everything that determines the processed data."""
    blob = json.dumps({"format": CACHE_FORMAT_VERSION, **parts}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


def save(cache_dir: Path, key: str, arrays: dict[str, np.ndarray], meta: dict) -> None:
    """Write `<key>.npz` then `<key>.json` (with the npz checksum); the json is the commit marker."""
    cache_dir = Path(cache_dir)
    npz = cache_dir / f"{key}.npz"
    with atomic_path(npz) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
    write_json(
        cache_dir / f"{key}.json",
        {"format": CACHE_FORMAT_VERSION, "sha256": sha256_file(npz), "meta": meta},
    )


STALE_TMP_SECONDS = 3600


def remove_stale_temp_files(cache_dir: Path, older_than: float = STALE_TMP_SECONDS) -> int:
    """Delete the temp files of writes killed midway (`.<name>.<random>.tmp`, as large as a cache
    entry); a write in progress is younger than `older_than` seconds. Returns how many went."""
    now, n = time.time(), 0
    for tmp in Path(cache_dir).glob(".*.tmp"):
        try:
            if now - tmp.stat().st_mtime > older_than:
                tmp.unlink()
                n += 1
        except OSError:
            pass
    return n


def load(cache_dir: Path, key: str) -> tuple[dict[str, np.ndarray], dict] | None:
    """The cached arrays and meta, or None when absent, stale or corrupt (then it is rebuilt)."""
    cache_dir = Path(cache_dir)
    remove_stale_temp_files(cache_dir)
    npz, js = cache_dir / f"{key}.npz", cache_dir / f"{key}.json"
    if not (npz.exists() and js.exists()):
        return None
    try:
        info = json.loads(js.read_text())
        if info.get("format") != CACHE_FORMAT_VERSION:
            log.warning("cache %s has format %s, expected %s: rebuilding", npz, info.get("format"), CACHE_FORMAT_VERSION)
            return None
        if sha256_file(npz) != info["sha256"]:
            log.warning("cache %s fails its checksum: rebuilding", npz)
            return None
        with np.load(npz, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        return arrays, info["meta"]
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, json.JSONDecodeError) as e:
        log.warning("cache %s is unreadable (%s): rebuilding", npz, e)
        return None
