"""Interaction readers (all formats agree; bad input gives one-line DataError) and checked downloads."""

from __future__ import annotations

import gzip
import hashlib
import http.server
import socket
import threading
from pathlib import Path

import numpy as np
import pytest

from embfreq.data.download import fetch, sha256_file
from embfreq.data.readers import FORMATS, RawInteractions, detect_format, read_interactions
from embfreq.errors import DataError, UserError

# (user, item, rating, timestamp), in time order per user; equal timestamps keep this order.
EVENTS = [
    ("u1", "i3", 5.0, 100.0),
    ("u1", "i1", 3.0, 100.0),
    ("u1", "i7", 4.0, 250.0),
    ("u2", "i1", 1.0, 50.0),
    ("u2", "i2", 2.0, 60.0),
    ("u2", "i3", 2.5, 60.0),
    ("u2", "i4", 4.0, 70.0),
    ("u3", "i9", 5.0, 10.0),
    ("u3", "i2", 1.0, 400.0),
    ("u4", "i3", 3.0, 5.0),
    ("u4", "i3", 3.0, 5.0),
    ("u4", "i1", 2.0, 6.0),
]
EXPECTED = {
    "u1": ["i3", "i1", "i7"],
    "u2": ["i1", "i2", "i3", "i4"],
    "u3": ["i9", "i2"],
    "u4": ["i3", "i3", "i1"],
}


def _scrambled():
    # Not in time order, but ties within a user keep their relative order (same key, then index).
    idx = sorted(range(len(EVENTS)), key=lambda i: ((EVENTS[i][3] * 7919) % 13, i))
    return [EVENTS[i] for i in idx]


def _seq_text():
    return "".join(f"{u} {' '.join(items)}\n" for u, items in EXPECTED.items())


def _pairs_text():
    # Globally by time (stable), so each user's rows are still in time order.
    rows = sorted(EVENTS, key=lambda e: e[3])
    return "".join(f"{u}  {i}\n" for u, i, _, _ in rows)


def _atomic_text():
    head = "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
    return head + "".join(f"{u}\t{i}\t{r}\t{t:.0f}\n" for u, i, r, t in _scrambled())


def _csv_text():
    return "user,item,rating,timestamp\n" + "".join(f"{u},{i},{r},{t:.0f}\n" for u, i, r, t in _scrambled())


def _per_user(raw: RawInteractions) -> dict[str, list[str]]:
    order = np.arange(len(raw)) if raw.timestamps is None else np.argsort(raw.timestamps, kind="stable")
    out: dict[str, list[str]] = {}
    for k in order:
        out.setdefault(raw.users[k], []).append(raw.items[k])
    return out


def _write(path: Path, text: str | bytes) -> Path:
    data = text.encode() if isinstance(text, str) else text
    path.write_bytes(data)
    return path


@pytest.mark.parametrize(
    "name,text,fmt,has_rt",
    [
        ("Beauty.txt", _seq_text(), None, False),
        ("ml.pairs", _pairs_text(), None, False),
        ("ml_pairs.txt", _pairs_text(), "pairs", False),
        ("data.inter", _atomic_text(), None, True),
        ("data.csv", _csv_text(), None, True),
        ("data.tsv", _csv_text().replace(",", "\t"), None, True),
    ],
)
def test_all_formats_agree(tmp_path, name, text, fmt, has_rt):
    raw = read_interactions(_write(tmp_path / name, text), fmt)
    assert len(raw) == len(EVENTS)
    assert raw.users.dtype == object and raw.items.dtype == object
    assert all(type(u) is str for u in raw.users) and all(type(i) is str for i in raw.items)
    assert _per_user(raw) == EXPECTED
    assert raw.source == str(tmp_path / name)
    if has_rt:
        assert raw.ratings.dtype == np.float64 and raw.timestamps.dtype == np.float64
        got = sorted(zip(raw.users, raw.items, raw.ratings, raw.timestamps))
        assert got == sorted(EVENTS)
    else:
        assert raw.ratings is None and raw.timestamps is None


def test_seq_keeps_file_order_and_skips_blank_lines(tmp_path):
    raw = read_interactions(_write(tmp_path / "s.txt", "\n1 5 8 2\r\n\n   \n2 5\n"))
    assert list(raw.users) == ["1", "1", "1", "2"]
    assert list(raw.items) == ["5", "8", "2", "5"]


def test_gzip_by_suffix_and_by_magic(tmp_path):
    a = read_interactions(_write(tmp_path / "Beauty.txt.gz", gzip.compress(_seq_text().encode())))
    assert _per_user(a) == EXPECTED
    # Gzip content without a .gz suffix is still recognised.
    b = read_interactions(_write(tmp_path / "data.csv", gzip.compress(_csv_text().encode())))
    assert _per_user(b) == EXPECTED
    c = read_interactions(_write(tmp_path / "data.inter.gz", gzip.compress(_atomic_text().encode())))
    assert _per_user(c) == EXPECTED


def test_csv_options(tmp_path):
    text = 'uid;iid;score\n"a;1";x;2\nb;"y ""q""";3\n'
    path = _write(tmp_path / "r.csv", text)
    raw = read_interactions(path, user_col="uid", item_col="iid", rating_col="score", sep=";")
    assert list(raw.users) == ["a;1", "b"]
    assert list(raw.items) == ["x", 'y "q"']
    assert list(raw.ratings) == [2.0, 3.0]
    assert raw.timestamps is None
    # CRLF line ends, with and without quoting, and in atomic files.
    for text in ("user,item,timestamp\r\nu1,i1,2\r\nu1,i2,1\r\n", 'user,item,timestamp\r\n"u1",i1,2\r\nu1,i2,1\r\n'):
        raw = read_interactions(_write(tmp_path / "crlf.csv", text))
        assert list(raw.items) == ["i1", "i2"] and list(raw.timestamps) == [2.0, 1.0]
    raw = read_interactions(_write(tmp_path / "crlf.inter", _atomic_text().replace("\n", "\r\n")))
    assert _per_user(raw) == EXPECTED
    # BOM from spreadsheet exports is ignored; rating/timestamp columns are optional.
    raw = read_interactions(_write(tmp_path / "b.csv", "\ufeffuser,item\nu,i\n"))
    assert list(raw.users) == ["u"] and raw.ratings is None and raw.timestamps is None


def test_atomic_optional_columns_and_configured_names(tmp_path):
    raw = read_interactions(_write(tmp_path / "a.inter", "item_id:token\tuser_id:token\ni1\tu1\ni2\tu1\n"))
    assert list(raw.users) == ["u1", "u1"] and list(raw.items) == ["i1", "i2"]
    assert raw.ratings is None and raw.timestamps is None
    path = _write(tmp_path / "b.inter", "sid:token\tpid:token\n1\t2\n")
    raw = read_interactions(path, user_col="sid", item_col="pid")
    assert list(raw.users) == ["1"] and list(raw.items) == ["2"]


@pytest.mark.parametrize(
    "name,expected",
    [
        ("Beauty.txt", "seq"),
        ("Beauty.txt.gz", "seq"),
        ("ml-1m.dat", "seq"),
        ("noext", "seq"),
        ("ml-1m.pairs", "pairs"),
        ("ml-1m.PAIRS.gz", "pairs"),
        ("ml-1m.inter", "atomic"),
        ("ml-1m.inter.gz", "atomic"),
        ("ratings.csv", "csv"),
        ("ratings.tsv.gz", "csv"),
    ],
)
def test_detect_format(name, expected):
    assert detect_format(Path("some/dir") / name) == expected
    assert expected in FORMATS


def _error(path, fmt=None, **kw) -> str:
    with pytest.raises(DataError) as info:
        read_interactions(path, fmt, **kw)
    assert isinstance(info.value, UserError)
    msg = str(info.value)
    assert "\n" not in msg and str(path) in msg
    return msg


@pytest.mark.parametrize(
    "name,content,fmt,kw,needle",
    [
        ("empty.txt", "", None, {}, "no interactions"),
        ("blank.txt", "\n  \n", None, {}, "no interactions"),
        ("header_only.inter", "user_id:token\titem_id:token\n", None, {}, "no interactions"),
        ("header_only.csv", "user,item\n", None, {}, "no interactions"),
        ("s.txt", "u1 i1 i2\nu2\n", None, {}, "line 2: expected 'user item"),
        ("p.pairs", "u1 i1\n\nu2 i2 i3\n", None, {}, "line 3: expected 'user item', got 3 columns"),
        ("p.txt", "u1\n", "pairs", {}, "line 1: expected 'user item', got 1 columns"),
        ("a.inter", _atomic_text() + "u9\ti9\t1\n", None, {}, f"line {len(EVENTS) + 2}: expected 4 columns"),
        (
            "a2.inter",
            "user_id:token\titem_id:token\trating:float\nu\ti\tgood\n",
            None,
            {},
            "line 2: expected a finite number for rating:float, got 'good'",
        ),
        (
            "a3.inter",
            "user_id:token\titem_id:token\ttimestamp:float\nu\ti\t1\nu\ti\tnan\n",
            None,
            {},
            "line 3: expected a finite number for timestamp",
        ),
        ("a4.inter", "user_id:token\titem_id:token\n\ti\n", None, {}, "line 2: expected a non-empty id"),
        ("c.csv", "user,item,rating\nu,i,1\nu,i\n", None, {}, "line 3: expected 3 columns"),
        ("c2.csv", "user,item,rating\nu,i,x\n", None, {}, "line 2: expected a finite number for rating, got 'x'"),
        ("c3.csv", "user,item,timestamp\nu,i,1\n\nu,i,12:00\n", None, {}, "line 4: expected a finite number for time"),
        ("c4.csv", "user,product\nu,i\n", None, {}, "no item column 'item'; columns found: user, product"),
        ("c5.csv", "user,item\nu,\n", None, {}, "line 2: expected a non-empty id in column item"),
        ("c6.csv", 'user,item\nu,"i\n', None, {}, "malformed CSV"),
        ("a5.inter", "uid:token\titem_id:token\nu\ti\n", None, {}, "no user column 'user' or 'user_id'"),
        # Quoted fields go through the csv module; line numbers still count physical lines.
        ("q1.csv", 'user,item,rating\n"u",i,1\nu,i,x\n', None, {}, "line 3: expected a finite number for rating"),
        ("q2.csv", 'user,item\n"a\nb",i\nu,\n', None, {}, "line 4: expected a non-empty id in column item"),
        ("q3.csv", 'user,item\n"a"b,i\n', None, {}, "line 2: malformed CSV"),
        ("sep.csv", "user::item\nu::i\n", None, {"sep": "::"}, "separator must be one character"),
    ],
)
def test_bad_input(tmp_path, name, content, fmt, kw, needle):
    msg = _error(_write(tmp_path / name, content), fmt, **kw)
    assert needle in msg, msg


def test_missing_file(tmp_path):
    assert "file not found" in _error(tmp_path / "nope.txt")
    assert "is a directory" in _error(tmp_path)


def test_unknown_format(tmp_path):
    msg = _error(_write(tmp_path / "x.txt", "u i\n"), "parquet")
    assert "'parquet'" in msg and "seq, pairs, atomic, csv" in msg


def test_non_utf8(tmp_path):
    msg = _error(_write(tmp_path / "x.txt", b"u1 i1\nu2 i\xff2\n"))
    assert "line 2: not valid UTF-8 (byte 0xff at column 5)" in msg
    msg = _error(_write(tmp_path / "x.csv.gz", gzip.compress(b"user,item\n\xe9,i\n")))
    assert "line 2: not valid UTF-8" in msg


def test_corrupt_gzip(tmp_path):
    data = gzip.compress(_seq_text().encode())[:-12]
    assert "corrupt gzip" in _error(_write(tmp_path / "x.txt.gz", data))


# --- downloads -------------------------------------------------------------------------------


@pytest.fixture
def server():
    files = {"/data/ml.inter": b"user_id:token\titem_id:token\nu\ti\n" * 1000}
    hits = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            hits.append(self.path)
            body = files.get(self.path)
            if body is None:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{httpd.server_address[1]}"
    yield base, files, hits
    httpd.shutdown()
    httpd.server_close()
    thread.join()


def test_fetch_saves_then_reuses(tmp_path, server):
    base, files, hits = server
    body = files["/data/ml.inter"]
    digest = hashlib.sha256(body).hexdigest()
    dest_dir = tmp_path / "cache" / "ml"
    path = fetch(f"{base}/data/ml.inter", digest.upper(), dest_dir)
    assert path == dest_dir / "ml.inter"
    assert path.read_bytes() == body
    assert sha256_file(path) == digest
    assert len(hits) == 1
    assert sorted(p.name for p in dest_dir.iterdir()) == ["ml.inter"]  # no temp file left
    assert fetch(f"{base}/data/ml.inter", digest, dest_dir) == path
    assert len(hits) == 1  # reused without a request
    # A damaged cached copy is replaced by a fresh download.
    path.write_bytes(b"junk")
    assert fetch(f"{base}/data/ml.inter", digest, dest_dir).read_bytes() == body
    assert len(hits) == 2


def test_fetch_wrong_sha_leaves_nothing(tmp_path, server):
    base, files, _ = server
    url = f"{base}/data/ml.inter"
    wrong = "0" * 64
    with pytest.raises(DataError) as info:
        fetch(url, wrong, tmp_path)
    msg = str(info.value)
    assert url in msg and wrong in msg and hashlib.sha256(files["/data/ml.inter"]).hexdigest() in msg
    assert "\n" not in msg
    assert list(tmp_path.iterdir()) == []


def test_fetch_network_errors(tmp_path, server):
    base, _, _ = server
    with pytest.raises(DataError, match=r"HTTP 404") as info:
        fetch(f"{base}/missing.txt", "0" * 64, tmp_path)
    assert "\n" not in str(info.value)
    assert list(tmp_path.iterdir()) == []
    # A port that was just free: nothing listens there.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(DataError, match="download failed") as info:
        fetch(f"http://127.0.0.1:{port}/x.txt", "0" * 64, tmp_path, timeout=5)
    assert "\n" not in str(info.value)
    assert list(tmp_path.iterdir()) == []
