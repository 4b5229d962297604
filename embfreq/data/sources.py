"""Where an interaction file comes from: bundled with the package, a local path, or a checked URL."""

from __future__ import annotations

import gzip
import hashlib
import zlib
from pathlib import Path

from embfreq.errors import DataError, first_line

BUNDLED_DIR = Path(__file__).with_name("bundled")

# sha256 of the uncompressed files, as published in shared/data/README.md (and bundled/README.md)
BUNDLED_SHA256 = {
    "Beauty.txt.gz": "226cce9c3105299ca0db9615d7d3fb32b3175e90da43100ae352599f0f0107b8",
    "Yelp.txt.gz": "724b219106b81dd2349027da997334ddb6da9fe2f152ad6e0d97a93170f7caed",
    "LastFM.txt.gz": "9ded486adb5b0fe9dc761950afa0a9a05e93ff018992e0c52bf11afec529f802",
}


def resolve_source(
    path: str | None = None,
    bundled: str | None = None,
    url: str | None = None,
    sha256: str | None = None,
    download_dir: str | Path | None = None,
) -> Path:
    """The local file to read. An explicit `path` wins, then `url` (downloaded, sha256-checked), then `bundled`."""
    if path:
        p = Path(path).expanduser()
        if not p.is_file():
            raise DataError(f"{p}: interaction file not found (data.path)")
        return p
    if url:
        if not sha256:
            raise DataError(f"{url}: data.url needs data.sha256 so the download can be checked")
        from embfreq.data.download import fetch

        return fetch(url, sha256, Path(download_dir or Path.home() / ".cache" / "embfreq" / "downloads"))
    if bundled:
        if bundled not in BUNDLED_SHA256:
            raise DataError(f"unknown bundled dataset {bundled!r}; bundled: {sorted(BUNDLED_SHA256)}")
        path = BUNDLED_DIR / bundled
        check_bundled(path, BUNDLED_SHA256[bundled])
        return path
    raise DataError("no data source: set data.path (a local file), data.url with data.sha256, or data.bundled")


_checked: set[tuple] = set()  # (path, size, mtime) of bundled files already checked in this process


def check_bundled(path: Path, sha256: str) -> None:
    """Refuse a bundled file whose content is not the published one (a damaged or replaced install):
    every result would silently be on other data. About 15 ms for Beauty, once per process."""
    try:
        st = path.stat()
    except OSError as e:
        raise DataError(f"{path}: bundled data file missing ({e.strerror or e}); reinstall embfreq") from None
    key = (str(path), st.st_size, st.st_mtime_ns)
    if key in _checked:
        return
    h = hashlib.sha256()
    try:
        with gzip.open(path, "rb") as f:
            while chunk := f.read(1 << 20):
                h.update(chunk)
    except (OSError, EOFError, zlib.error) as e:  # not gzip, truncated, corrupt blocks
        raise DataError(f"{path}: damaged bundled data file ({type(e).__name__}: {first_line(e)}); "
                        "reinstall embfreq") from None
    if h.hexdigest() != sha256:
        raise DataError(f"{path}: bundled data file does not match its published sha256 "
                        f"(expected {sha256[:12]}..., got {h.hexdigest()[:12]}...); reinstall embfreq")
    _checked.add(key)
