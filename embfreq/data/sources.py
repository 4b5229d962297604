"""Where an interaction file comes from: bundled with the package, a local path, or a checked URL."""

from __future__ import annotations

from pathlib import Path

from embfreq.errors import DataError

BUNDLED_DIR = Path(__file__).with_name("bundled")

# sha256 of the uncompressed files, as published in shared/data/README.md
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
        return BUNDLED_DIR / bundled
    raise DataError("no data source: set data.path (a local file), data.url with data.sha256, or data.bundled")
