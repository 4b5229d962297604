"""Checked downloads: a file is only ever visible under its final name once its sha256 matches."""

from __future__ import annotations

import hashlib
import posixpath
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from embfreq.errors import DataError
from embfreq.io import atomic_path, sha256_file

_CHUNK = 1 << 20


def _file_name(url: str) -> str:
    name = posixpath.basename(urllib.parse.unquote(urllib.parse.urlparse(url).path))
    if not name or name in (".", ".."):
        raise DataError(f"{url}: cannot take a file name from the URL; expected a URL ending in a file name")
    return name


def fetch(url: str, sha256: str, dest_dir: str | Path, *, timeout: float = 60.0) -> Path:
    """Download `url` into `dest_dir` (file name from the URL) and return its path.

    An existing file whose sha256 matches is reused without touching the network. The download
    goes to a temporary file in `dest_dir`, is checked, then renamed into place, so an
    interrupted or corrupt download never leaves a file under the final name.
    """
    expected = sha256.strip().lower()
    if len(expected) != 64 or any(c not in "0123456789abcdef" for c in expected):
        raise ValueError(f"sha256 for {url} must be 64 hex digits, got {sha256!r}")
    dest_dir = Path(dest_dir)
    dest = dest_dir / _file_name(url)
    if dest.is_file() and sha256_file(dest) == expected:
        return dest
    try:
        dest_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DataError(f"{dest_dir}: cannot create download directory ({e.strerror or e})") from None

    try:
        with atomic_path(dest, suffix=".part") as tmp:  # removed again on any failure, Ctrl-C included
            actual = _download(url, tmp, timeout)
            if actual != expected:
                raise DataError(f"{url}: sha256 mismatch: expected {expected}, got {actual}")
    except OSError as e:  # the temp file could not be made or renamed into place
        raise DataError(f"{dest}: cannot save download from {url} ({e.strerror or e})") from None
    return dest


def _download(url: str, to: Path, timeout: float) -> str:
    """Write the body of `url` to `to`; returns its sha256."""
    h = hashlib.sha256()
    try:
        with open(to, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as resp:
            while chunk := resp.read(_CHUNK):
                h.update(chunk)
                out.write(chunk)
    except urllib.error.HTTPError as e:
        raise DataError(f"{url}: download failed (HTTP {e.code} {e.reason})") from None
    except urllib.error.URLError as e:
        raise DataError(f"{url}: download failed ({e.reason})") from None
    except (OSError, ValueError) as e:  # timeouts, resets, disk full, bad URL scheme
        raise DataError(f"{url}: download failed ({e})") from None
    return h.hexdigest()

