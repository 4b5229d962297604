"""Readers for interaction files: raw user/item ids (strings), plus optional ratings and timestamps.

Formats (`FORMATS`):

- ``seq``: one user per line, ``user item item ...``, whitespace-separated (S3-Rec / FreeRec text
  files such as ``Beauty.txt``). Items are in time order.
- ``pairs``: one interaction per line, exactly ``user item``, whitespace-separated, in time order
  (SASRec repository format).
- ``atomic``: RecBole ``.inter`` file: tab-separated with a typed header such as
  ``user_id:token<TAB>item_id:token<TAB>rating:float<TAB>timestamp:float``.
- ``csv``: CSV or TSV with a header row naming the columns.
- ``ratings``: headerless ``user,item,rating,timestamp`` CSV, one rating per line: the Amazon 2014
  ratings files as distributed (``ratings_Beauty.csv``, McAuley et al.). Ids stay strings, leading
  zeros included (``0205616461``); the timestamp gives the time order, ties keep file order.

Format detection (`detect_format`) looks at the file name only, after stripping ``.gz``:
``.inter`` -> atomic, ``.csv``/``.tsv`` -> csv, ``.pairs`` -> pairs, anything else (``.txt``,
``.dat``, no suffix) -> seq. A ``pairs`` file with another suffix must be named explicitly
(``fmt="pairs"``): a two-column file is also a valid ``seq`` file, so guessing from content would
silently change the meaning of short sequences.

Compression is detected from the content (gzip magic bytes), whatever the suffix. Files are read
whole and decoded as UTF-8 (a leading BOM is ignored), so a decoding error can name its line.
Every bad input raises `DataError` with a one-line message naming the file and, where it applies,
the 1-based line number.
"""

from __future__ import annotations

import csv
import gzip
import io
import itertools
import math
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from embfreq.errors import DataError

FORMATS = ("seq", "pairs", "atomic", "csv", "ratings")

_GZIP_MAGIC = b"\x1f\x8b"


@dataclass
class RawInteractions:
    """Interactions in file order; for `seq` and `pairs` the file order is the time order."""

    users: np.ndarray  # object array of str, one per interaction
    items: np.ndarray  # object array of str
    ratings: np.ndarray | None  # float64, or None when the file has none
    timestamps: np.ndarray | None  # float64, or None when the file has none
    source: str  # file path, for messages

    def __len__(self) -> int:
        return len(self.items)


def detect_format(path: str | Path) -> str:
    """Format from the file name (``.gz`` stripped first); see the module docstring."""
    name = Path(path).name.lower()
    if name.endswith(".gz"):
        name = name[: -len(".gz")]
    suffix = Path(name).suffix
    if suffix == ".inter":
        return "atomic"
    if suffix in (".csv", ".tsv"):
        return "csv"
    if suffix == ".pairs":
        return "pairs"
    return "seq"


def read_interactions(
    path: str | Path,
    fmt: str | None = None,
    *,
    user_col: str = "user",
    item_col: str = "item",
    rating_col: str = "rating",
    time_col: str = "timestamp",
    sep: str | None = None,
) -> RawInteractions:
    """Read an interaction file.

    `fmt` is one of `FORMATS`, or None / ``"auto"`` to detect it from the file name.
    The column names apply to ``csv``; ``atomic`` looks for the field named `user_col` and
    falls back to RecBole's ``user_id`` (likewise `item_col` / ``item_id``; ``rating`` and
    ``timestamp`` are the same in both). Rating and timestamp columns are optional (None when
    absent). `sep` is the ``csv`` delimiter (default: tab if the header has a tab, else comma)
    and is ignored by the other formats.
    """
    source = str(path)
    if fmt is None or fmt == "auto":
        fmt = detect_format(path)
    elif fmt not in FORMATS:
        raise DataError(f"{source}: unknown data format {fmt!r}; expected one of {', '.join(FORMATS)} (or auto)")
    text = _read_text(path, source)
    if fmt == "seq":
        result = _read_seq(text, source)
    elif fmt == "pairs":
        result = _read_pairs(text, source)
    elif fmt == "atomic":
        result = _read_atomic(text, source, user_col, item_col, rating_col, time_col)
    elif fmt == "ratings":
        result = _read_ratings(text, source)
    else:
        result = _read_csv(text, source, user_col, item_col, rating_col, time_col, sep)
    if len(result) == 0:
        raise DataError(f"{source}: no interactions found (expected at least one {fmt} record)")
    return result


def _read_text(path: str | Path, source: str) -> str:
    p = Path(path)
    try:
        data = p.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{source}: file not found") from None
    except IsADirectoryError:
        raise DataError(f"{source}: is a directory, expected an interaction file") from None
    except OSError as e:
        raise DataError(f"{source}: cannot read file ({e.strerror or e})") from None
    if data[:2] == _GZIP_MAGIC:
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as e:
            raise DataError(f"{source}: corrupt gzip data ({e})") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        # Locate the offending byte so the message can name the line (e.object is the data less any BOM).
        bad, start = e.object, e.start
        line = bad.count(b"\n", 0, start) + 1
        column = start - (bad.rfind(b"\n", 0, start) + 1) + 1
        raise DataError(
            f"{source} line {line}: not valid UTF-8 (byte 0x{bad[start]:02x} at column {column}); "
            "expected a UTF-8 text file"
        ) from None


def _object_array(values: list) -> np.ndarray:
    # Filled in place so numpy never tries to infer a shape from the elements.
    arr = np.empty(len(values), dtype=object)
    arr[:] = values
    return arr


def _integer_like(token: str) -> bool:
    return token.lstrip("+-").isdigit() and token.isascii()


def _check_stray_ids(lines, source: str, what: str) -> None:
    """`lines`: (where, ids) per record, where is "line 3" or "data row 3". A file whose ids are
    integers in every record but a few (at most 1% of them, at least one) has a header or stray text
    there: its tokens would become a made-up user with made-up items. Refused, naming the first such
    record. A file of string ids, or one that mixes both kinds in many records, is read as written."""
    n, bad, first = 0, 0, None
    for where, ids in lines:
        n += 1
        if not all(map(_integer_like, ids)):
            bad += 1
            if first is None:
                first = (where, next(t for t in ids if not _integer_like(t)))
    if not bad or bad == n or bad > max(1, n // 100):
        return
    where, token = first
    more = f" (and {bad - 1} more record(s) like it)" if bad > 1 else ""
    raise DataError(f"{source} {where}: non-integer id {token!r} in a file whose other {what} ids are "
                    f"integers{more}: a header or stray line would become a made-up user; remove it")


def _read_seq(text: str, source: str) -> RawInteractions:
    seq_users: list[str] = []
    lengths: list[int] = []
    items: list[str] = []
    linenos: list[int] = []
    for lineno, line in enumerate(text.split("\n"), 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) < 2:
            raise DataError(f"{source} line {lineno}: expected 'user item [item ...]', got a user with no items")
        seq_users.append(parts[0])
        lengths.append(len(parts) - 1)
        linenos.append(lineno)
        del parts[0]
        items.extend(parts)
    ends = np.cumsum(lengths).tolist()
    _check_stray_ids(((f"line {ln}", [u, *items[e - k:e]]) for ln, u, k, e in zip(linenos, seq_users, lengths, ends)),
                     source, "user and item")
    # One user id per line, repeated per item: avoids building a per-interaction list.
    users = np.repeat(_object_array(seq_users), np.asarray(lengths, dtype=np.int64))
    return RawInteractions(users, _object_array(items), None, None, source)


def _read_pairs(text: str, source: str) -> RawInteractions:
    users: list[str] = []
    items: list[str] = []
    linenos: list[int] = []
    for lineno, line in enumerate(text.split("\n"), 1):
        parts = line.split()
        if len(parts) == 2:
            users.append(parts[0])
            items.append(parts[1])
            linenos.append(lineno)
        elif parts:
            raise DataError(f"{source} line {lineno}: expected 'user item', got {len(parts)} columns")
    _check_stray_ids(((f"line {ln}", (u, i)) for ln, u, i in zip(linenos, users, items)), source, "user and item")
    return RawInteractions(_object_array(users), _object_array(items), None, None, source)


def _read_ratings(text: str, source: str) -> RawInteractions:
    """Headerless ``user,item,rating,timestamp`` lines (Amazon 2014 ratings files)."""
    users: list[str] = []
    items: list[str] = []
    ratings: list[float] = []
    times: list[float] = []
    for lineno, line in enumerate(text.split("\n"), 1):
        line = line.strip()
        if not line:
            continue
        parts = line.split(",")
        if len(parts) != 4 or not parts[0] or not parts[1]:
            raise DataError(f"{source} line {lineno}: expected 'user,item,rating,timestamp' (no header), "
                            f"got {line[:80]!r}")
        users.append(parts[0])
        items.append(parts[1])
        ratings.append(_to_float(parts[2], source, lineno, "rating"))
        times.append(_to_float(parts[3], source, lineno, "timestamp"))
    return RawInteractions(_object_array(users), _object_array(items), np.asarray(ratings, dtype=np.float64),
                           np.asarray(times, dtype=np.float64), source)


def _to_float(value: str, source: str, lineno: int, name: str) -> float:
    try:
        v = float(value)
    except ValueError:
        v = math.nan
    if not math.isfinite(v):
        raise DataError(f"{source} line {lineno}: expected a finite number for {name}, got {value!r}")
    return v


def _floats(raw: list[str]) -> np.ndarray | None:
    """float64 array, or None if any value is not a finite number."""
    try:
        arr = np.array(raw, dtype=np.float64)
    except ValueError:
        return None
    return arr if np.isfinite(arr).all() else None


def _find_column(names: list[str], candidates: tuple[str, ...]) -> int | None:
    for c in candidates:
        if c in names:
            return names.index(c)
    return None


def _table(
    make_rows,
    source: str,
    header: list[str],
    shown: list[str],
    user_names: tuple[str, ...],
    item_names: tuple[str, ...],
    rating_names: tuple[str, ...],
    time_names: tuple[str, ...],
) -> RawInteractions:
    """Shared body of atomic and csv.

    `make_rows()` returns (iterable of field lists after the header, lineno(k) -> line of row k).
    Numbers are converted in bulk at the end; only if that fails are the rows scanned again,
    converting one value at a time, to name the offending line.
    """
    found = ", ".join(shown)
    ui = _find_column(header, user_names)
    if ui is None:
        raise DataError(f"{source}: no user column {' or '.join(map(repr, user_names))}; columns found: {found}")
    ii = _find_column(header, item_names)
    if ii is None:
        raise DataError(f"{source}: no item column {' or '.join(map(repr, item_names))}; columns found: {found}")
    ri = _find_column(header, rating_names)
    ti = _find_column(header, time_names)
    roles: dict[int, str] = {}
    for role, col in (("user", ui), ("item", ii), ("rating", ri), ("time", ti)):
        if col is None:
            continue
        if roles.setdefault(col, role) != role:
            raise DataError(f"{source}: column {shown[col]!r} is both the {roles[col]} and the {role} column "
                            f"(data.columns maps two roles to one column); columns found: {found}")
        if header.count(header[col]) > 1:  # which of the two is meant cannot be told
            raise DataError(f"{source}: the header names the {role} column {header[col]!r} twice; columns found: "
                            f"{found}")
    number_cols = [c for c in (ri, ti) if c is not None]
    ncol = len(header)

    def scan(check: bool):
        users: list[str] = []
        items: list[str] = []
        numbers: list[list[str]] = [[] for _ in number_cols]
        rows, lineno = make_rows()
        k = -1
        try:
            for k, fields in enumerate(rows):
                if len(fields) != ncol:
                    if not fields or (len(fields) == 1 and not fields[0].strip()):
                        continue  # blank line
                    raise DataError(
                        f"{source} line {lineno(k)}: expected {ncol} columns ({found}), got {len(fields)} columns"
                    )
                u = fields[ui].strip()
                it = fields[ii].strip()
                if not u or not it:
                    which = shown[ui] if not u else shown[ii]
                    raise DataError(f"{source} line {lineno(k)}: expected a non-empty id in column {which}, got ''")
                users.append(u)
                items.append(it)
                for col, out in zip(number_cols, numbers):
                    out.append(fields[col])
                if check:
                    for col in number_cols:
                        _to_float(fields[col], source, lineno(k), shown[col])
        except csv.Error as e:  # only the csv reader raises this; its lineno ignores k
            raise DataError(f"{source} line {lineno(k + 1)}: malformed CSV ({e})") from None
        return users, items, numbers

    users, items, numbers = scan(check=False)
    _check_stray_ids(((f"data row {k + 1}", (u, i)) for k, (u, i) in enumerate(zip(users, items))),
                     source, f"{shown[ui]} and {shown[ii]}")
    arrays = [_floats(raw) for raw in numbers]
    if any(a is None for a in arrays):
        scan(check=True)  # raises with the line number
        raise AssertionError("bulk float conversion failed but no bad value was found")
    by_col = dict(zip(number_cols, arrays))
    return RawInteractions(
        _object_array(users),
        _object_array(items),
        by_col.get(ri),
        by_col.get(ti),
        source,
    )


def _names(configured: str, fallback: str) -> tuple[str, ...]:
    return (configured,) if configured == fallback else (configured, fallback)


def _split_lines(text: str, sep: str, source: str, expected: str):
    """Header fields and a `make_rows` for delimited text without quoting: plain str.split per line."""
    if "\r" in text:
        text = text.replace("\r\n", "\n")
    # Split on "\n" only (not str.splitlines) so line numbers match what editors show.
    lines = text.split("\n")
    first = next((i for i, line in enumerate(lines) if line.strip()), None)
    if first is None:
        raise DataError(f"{source}: no interactions found (empty file; expected {expected})")
    header = [h.strip() for h in lines[first].split(sep)]

    def make_rows():
        rows = map(str.split, itertools.islice(lines, first + 1, None), itertools.repeat(sep))
        return rows, lambda k: first + 2 + k

    return header, make_rows


def _read_atomic(
    text: str, source: str, user_col: str, item_col: str, rating_col: str, time_col: str
) -> RawInteractions:
    shown, make_rows = _split_lines(text, "\t", source, "a typed header like 'user_id:token'")
    return _table(
        make_rows,
        source,
        [h.split(":", 1)[0] for h in shown],
        shown,
        _names(user_col, "user_id"),
        _names(item_col, "item_id"),
        _names(rating_col, "rating"),
        _names(time_col, "timestamp"),
    )


def _read_csv(
    text: str,
    source: str,
    user_col: str,
    item_col: str,
    rating_col: str,
    time_col: str,
    sep: str | None,
) -> RawInteractions:
    if sep is None:
        first_line = next((line for line in io.StringIO(text) if line.strip()), "")
        sep = "\t" if "\t" in first_line else ","

    if len(sep) != 1:
        raise DataError(f"{source}: csv separator must be one character, got {sep!r}")
    if '"' not in text and text.count("\r") == text.count("\r\n"):
        # No quoting and no bare CR: the csv module would give the same fields, several times slower.
        header, make_rows = _split_lines(text, sep, source, "a header row")
    else:

        def open_rows():
            # strict: an unterminated or stray quote is an error rather than a silently merged id.
            reader = csv.reader(io.StringIO(text, newline=""), delimiter=sep, strict=True)
            try:
                header = next(h for h in reader if h and any(f.strip() for f in h))
            except StopIteration:
                raise DataError(f"{source}: no interactions found (empty file; expected a header row)") from None
            except csv.Error as e:
                raise DataError(f"{source} line {reader.line_num}: malformed CSV ({e})") from None
            return reader, [h.strip() for h in header]

        def make_rows():
            reader, _ = open_rows()
            return reader, lambda k: reader.line_num

        _, header = open_rows()
    return _table(make_rows, source, header, header, (user_col,), (item_col,), (rating_col,), (time_col,))
