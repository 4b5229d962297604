"""Processed data for one data config: sequences, leave-one-out split, item frequency and operator.

Computed once per config and source-file content, then served from the on-disk cache.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from embfreq.data import cache
from embfreq.data.graph import build_operator, item_frequency
from embfreq.data.preprocess import Sequences, Split, build_sequences, drop_short_users, leave_one_out
from embfreq.data.sources import resolve_source
from embfreq.errors import ConfigError, DataError
from embfreq.io import sha256_file

log = logging.getLogger(__name__)


@dataclass
class ProcessedData:
    seqs: Sequences
    split: Split
    item_freq: np.ndarray  # (num_items + 1,) training frequency; row 0 is padding
    operator: sp.csr_matrix  # (num_items + 1) x (num_items + 1) normalised co-occurrence
    dropped_users: int = 0
    cached: bool = False
    seconds: float = 0.0
    source: str = ""

    @property
    def num_users(self) -> int:
        return self.seqs.num_users

    @property
    def num_items(self) -> int:
        return self.seqs.num_items

    def stats(self) -> dict:
        return {
            "users": self.num_users,
            "items": self.num_items,
            "interactions": int(len(self.seqs.items)),
            "train_interactions": int(len(self.split.train_items)),
            "valid": int(len(self.split.valid)),
            "test": int(len(self.split.test)),
            "cold_items": int((self.item_freq[1:] == 0).sum()),
            "dropped_users": self.dropped_users,
            "graph_nnz": int(self.operator.nnz),
        }

    def fingerprint(self) -> str:
        """sha256 of what training and evaluation see (split and item ids): equal fingerprints, same
        experiment data, whatever the file's path or format."""
        import hashlib

        h = hashlib.sha256()
        sp_ = self.split
        for a in (sp_.train_ptr, sp_.train_items, sp_.valid, sp_.test):
            h.update(np.ascontiguousarray(a, dtype=np.int64).tobytes())
        h.update("\x00".join(map(str, self.seqs.item_ids)).encode())
        return h.hexdigest()

    def to_arrays(self) -> dict[str, np.ndarray]:
        op = self.operator
        return {
            "user_ids": self.seqs.user_ids.astype(str),
            "item_ids": self.seqs.item_ids.astype(str),
            "ptr": self.seqs.ptr,
            "items": self.seqs.items,
            "train_ptr": self.split.train_ptr,
            "train_items": self.split.train_items,
            "valid": self.split.valid,
            "test": self.split.test,
            "item_freq": self.item_freq,
            "op_indptr": op.indptr.astype(np.int64),
            "op_indices": op.indices.astype(np.int32),
            "op_data": op.data.astype(np.float32),
            "dropped_users": np.array(self.dropped_users),
        }

    @classmethod
    def from_arrays(cls, a: dict[str, np.ndarray], **kw) -> "ProcessedData":
        n = len(a["item_ids"])
        op = sp.csr_matrix((a["op_data"], a["op_indices"], a["op_indptr"]), shape=(n, n))
        return cls(
            seqs=Sequences(a["user_ids"], a["item_ids"], a["ptr"], a["items"]),
            split=Split(a["train_ptr"], a["train_items"], a["valid"], a["test"]),
            item_freq=a["item_freq"],
            operator=op,
            dropped_users=int(a["dropped_users"]),
            **kw,
        )


def process(
    raw,
    min_rating: float | None = None,
    min_user_interactions: int = 0,
    min_item_interactions: int = 0,
    normalization: str = "left",
    max_neighbours: int | None = None,
    drop_duplicates: bool = False,
) -> ProcessedData:
    """Raw interactions -> filtered sequences -> leave-one-out split -> item statistics (training part only)."""
    seqs = build_sequences(raw, min_rating, min_user_interactions, min_item_interactions, drop_duplicates)
    seqs, dropped = drop_short_users(seqs)
    split = leave_one_out(seqs)
    n = seqs.num_items + 1
    op = build_operator(split.train_users, split.train_items, seqs.num_users, n, normalization, max_neighbours)
    op = op.astype(np.float32)  # as cached: a fresh and a cached run see the same operator
    return ProcessedData(seqs, split, item_frequency(split.train_items, n), op, dropped, source=raw.source)


@contextlib.contextmanager
def _build_lock(cache_dir: Path):
    """Parallel sweep jobs: the first one builds a cache entry, the others wait for it and load it.

    Locks the cache directory itself, so no lock files are left behind (why not filelock: it needs a
    lock file, which would sit among the cache entries).
    """
    try:
        import fcntl
    except ImportError:  # no flock (Windows): concurrent jobs may both build; writes stay atomic
        yield
        return
    cache_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(cache_dir, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except OSError:  # file systems without flock: go on unlocked
            pass
        yield
    finally:
        os.close(fd)  # releases the lock


def _usable_cache_dir(cache_dir: Path) -> bool:
    """Whether the cache dir exists (or can be made) and is writable; if not, warn once per call."""
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        if os.access(cache_dir, os.W_OK | os.X_OK):
            return True
        reason = "not writable"
    except OSError as e:  # a file in the way, a read-only parent
        reason = e.strerror or str(e)
    log.warning("cannot use the data cache %s (%s): processing without it", cache_dir, reason)
    return False


# Part of the cache key: bump it whenever processing changes what it makes from the same file and
# settings (2: raw ids compared as written, `007` != `7`; 3: a header or stray line among integer ids
# is refused, not read as a user).
PROCESSING_VERSION = 3


def _source_sha256(src) -> str:
    try:
        return sha256_file(src)
    except OSError as e:  # no read permission, a vanished file: one line, as when reading it
        raise DataError(f"{src}: cannot read file ({e.strerror or e})") from None


# Users whose validation item is also their test item: 0 on Beauty and LastFM, 2.2% on Yelp (repeat
# visits). Far more means a degenerate split (duplicated interactions): the model would be scored on
# repeating the validation item, up to HR@10 = 1.0.
MAX_VALID_EQUALS_TEST = 0.2


def load_processed(
    path: str | None = None,
    bundled: str | None = None,
    url: str | None = None,
    sha256: str | None = None,
    format: str | None = None,
    columns: dict | None = None,
    sep: str | None = None,
    min_rating: float | None = None,
    min_user_interactions: int = 0,
    min_item_interactions: int = 0,
    normalization: str = "left",
    max_neighbours: int | None = None,
    drop_duplicates: bool = False,
    max_valid_equals_test: float = MAX_VALID_EQUALS_TEST,
    cache_dir: str | Path | None = None,
    use_cache: bool = True,
) -> ProcessedData:
    """Process a data source, or load it from the cache when the config and file content are unchanged.

    Refused (DataError) when more than `max_valid_equals_test` of the users have the same validation
    and test item (`check_split`)."""
    data = _load_processed(path, bundled, url, sha256, format, columns, sep, min_rating, min_user_interactions,
                           min_item_interactions, normalization, max_neighbours, drop_duplicates, cache_dir, use_cache)
    check_split(data, max_valid_equals_test)
    return data


def check_split(data: ProcessedData, max_share: float = MAX_VALID_EQUALS_TEST) -> int:
    """The number of users whose validation and test item are the same; DataError above `max_share`."""
    if isinstance(max_share, bool) or not isinstance(max_share, (int, float)) or not 0 <= max_share <= 1:
        raise ConfigError(f"data.max_valid_equals_test must be a share in [0, 1], got {max_share!r}")
    split = data.split
    same = int((split.valid == split.test).sum())
    users = len(split.test)
    if users and same / users > max_share:
        raise DataError(f"{data.source}: degenerate split: {same} of {users} users ({same / users:.0%}) have the same "
                        f"validation and test item (duplicated interactions?), more than "
                        f"data.max_valid_equals_test={max_share:g}; remove the duplicates (data.drop_duplicates=true "
                        "drops exact repeats with timestamps)")
    if same:
        log.info("%s: %d of %d users have the same validation and test item", data.source, same, users)
    return same


def _check_columns(columns: dict) -> None:
    """data.columns: which named column is the user, item, rating and time; each a different column."""
    unknown = sorted(set(columns) - set(COLUMN_ROLES))
    if unknown:
        raise ConfigError(f"data.columns: unknown role(s) {', '.join(map(str, unknown))}; expected some of "
                          f"{', '.join(COLUMN_ROLES)}")
    for role, name in columns.items():
        if not isinstance(name, str) or not name.strip():
            raise ConfigError(f"data.columns.{role} must be a column name, got {name!r}")
    seen: dict[str, str] = {}
    for role, name in columns.items():
        if seen.setdefault(name, role) != role:
            raise ConfigError(f"data.columns maps both {seen[name]} and {role} to column {name!r}; each role needs "
                              "its own column")


COLUMN_ROLES = ("user", "item", "rating", "time")


def _load_processed(path, bundled, url, sha256, format, columns, sep, min_rating, min_user_interactions,
                    min_item_interactions, normalization, max_neighbours, drop_duplicates, cache_dir,
                    use_cache) -> ProcessedData:
    from embfreq.data.readers import detect_format, read_interactions

    t0 = time.perf_counter()
    columns = dict(columns or {})
    _check_columns(columns)
    if cache_dir is not None:
        cache_dir = Path(os.path.expandvars(str(cache_dir))).expanduser()  # never a directory named `~`
    src = resolve_source(path, bundled, url, sha256, Path(cache_dir) / "downloads" if cache_dir else None)
    fmt = format if format not in (None, "auto") else detect_format(src)
    if columns and fmt in ("seq", "pairs"):
        raise ConfigError(f"data.columns names columns, but {src} is read as format={fmt}, which has none "
                          "(user first, then items); drop data.columns or set data.format=csv")
    params = {
        "format": format,
        "columns": columns,
        "sep": sep,
        "min_rating": min_rating,
        "min_user_interactions": min_user_interactions,
        "min_item_interactions": min_item_interactions,
        "normalization": normalization,
        "max_neighbours": max_neighbours,
        "drop_duplicates": bool(drop_duplicates),
    }
    key = (cache.cache_key({"source_sha256": _source_sha256(src), "processing": PROCESSING_VERSION, **params})
           if use_cache and cache_dir and _usable_cache_dir(Path(cache_dir)) else None)
    with _build_lock(Path(cache_dir)) if key is not None else contextlib.nullcontext():
        if key is not None:
            hit = cache.load(Path(cache_dir), key)
            if hit is not None:
                arrays, meta = hit
                return ProcessedData.from_arrays(
                    arrays, cached=True, seconds=time.perf_counter() - t0, source=meta.get("source", str(src))
                )
        raw = read_interactions(src, format, sep=sep, **{f"{k}_col": v for k, v in columns.items()})
        data = process(raw, min_rating, min_user_interactions, min_item_interactions, normalization, max_neighbours,
                       drop_duplicates)
        data.source = str(src)
        if key is not None:
            try:
                cache.save(Path(cache_dir), key, data.to_arrays(), {"source": str(src), **params, **data.stats()})
            except OSError as e:  # full disk, lost permission: the cache is only an optimisation
                log.warning("cannot write the data cache in %s (%s): going on without it", cache_dir, e.strerror or e)
        data.seconds = time.perf_counter() - t0
    return data
