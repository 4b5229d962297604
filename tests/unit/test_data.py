"""Processing: filters, leave-one-out, item graph, cache, batches, and the bundled datasets."""

import gzip
import json

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from embfreq.data import cache
from embfreq.data.batches import BucketBatchSampler, PairTrainDataset, SeenItems, SeqTrainDataset
from embfreq.data.datamodule import RecDataModule
from embfreq.data.graph import build_operator, cooccurrence, interaction_matrix, normalize, to_torch_csr, top_k_per_row
from embfreq.data.preprocess import k_core
from embfreq.data.processed import load_processed, process
from embfreq.data.readers import read_interactions
from embfreq.errors import ConfigError, DataError
from tests.conftest import write_seq


def test_bundled_beauty_exact_figures(tmp_path):
    d = load_processed(bundled="Beauty.txt.gz", format="seq", min_user_interactions=5, min_item_interactions=5,
                       cache_dir=tmp_path)
    s = d.stats()
    assert (s["users"], s["items"], s["interactions"]) == (22363, 12101, 198502)
    assert (s["valid"], s["test"]) == (22363, 22363)
    assert s["train_interactions"] == 198502 - 2 * 22363
    # 5-core holds on the whole data
    users = np.repeat(np.arange(d.num_users), d.seqs.lengths)
    assert np.bincount(users).min() >= 5
    assert np.bincount(d.seqs.items)[1:].min() >= 5
    # operator rows sum to 1 (or 0 for items never in training), shape includes padding
    assert d.operator.shape == (12102, 12102)
    rs = np.asarray(d.operator.sum(1)).ravel()
    assert np.allclose(rs[d.item_freq > 0], 1.0, atol=1e-5) and np.all(rs[d.item_freq == 0] == 0)
    # raw ids trace back: the bundled file's first line
    with gzip.open("embfreq/data/bundled/Beauty.txt.gz", "rt") as f:
        first = f.readline().split()
    u = int(np.flatnonzero(d.seqs.user_ids == first[0])[0])
    assert list(d.seqs.item_ids[d.seqs.items[d.seqs.ptr[u]:d.seqs.ptr[u + 1]]]) == first[1:]


def test_bundled_yelp_exact_figures(tmp_path):
    d = load_processed(bundled="Yelp.txt.gz", format="seq", min_user_interactions=5, min_item_interactions=5,
                       cache_dir=None)
    assert (d.num_users, d.num_items, len(d.seqs.items)) == (30431, 20033, 316354)


def test_bundled_files_match_published_sha256():
    import hashlib

    from embfreq.data.sources import BUNDLED_DIR, BUNDLED_SHA256

    for name, digest in BUNDLED_SHA256.items():
        with gzip.open(BUNDLED_DIR / name, "rb") as f:
            assert hashlib.sha256(f.read()).hexdigest() == digest


@pytest.mark.parametrize("damage", ["edited", "truncated"])
def test_damaged_bundled_file_is_refused(tmp_path, monkeypatch, damage):
    """A bundled file that is not the published one (edited or cut short) is refused in one line,
    before anything is read from it. Works on a copy: the real bundled file is never touched."""
    from embfreq.data import sources

    real = sources.BUNDLED_DIR / "LastFM.txt.gz"
    raw = gzip.decompress(real.read_bytes())
    copy = {"edited": gzip.compress(raw.replace(b"\n", b" 1\n", 1)), "truncated": real.read_bytes()[:-200]}[damage]
    (tmp_path / "LastFM.txt.gz").write_bytes(copy)
    monkeypatch.setattr(sources, "BUNDLED_DIR", tmp_path)
    with pytest.raises(DataError) as e:
        load_processed(bundled="LastFM.txt.gz", format="seq", cache_dir=tmp_path / "cache")
    msg = str(e.value)
    assert str(tmp_path / "LastFM.txt.gz") in msg and "\n" not in msg
    assert ("does not match its published sha256" if damage == "edited" else "damaged bundled data file") in msg
    assert not (tmp_path / "cache").exists() or not list((tmp_path / "cache").rglob("*.npz"))
    monkeypatch.undo()
    assert sources.resolve_source(bundled="LastFM.txt.gz") == real  # the real file still passes


def _formats(tmp_path):
    """One tiny dataset (string ids, a timestamp tie) in the four formats."""
    rows = [("u1", "a", 5, 10), ("u2", "b", 3, 11), ("u1", "b", 4, 12), ("u2", "c", 5, 12), ("u1", "c", 1, 12),
            ("u2", "a", 2, 13), ("u3", "c", 5, 14), ("u3", "a", 5, 15), ("u3", "b", 5, 15)]
    by_user = {}
    for u, i, _, _ in rows:
        by_user.setdefault(u, []).append(i)
    seq = tmp_path / "d.txt"
    seq.write_text("".join(f"{u} {' '.join(v)}\n" for u, v in by_user.items()))
    pairs = tmp_path / "d.pairs"
    pairs.write_text("".join(f"{u} {i}\n" for u, i, _, _ in rows))
    inter = tmp_path / "d.inter"
    # reversed file order: timestamps define the order again (the tie at 12 keeps b before c? no:
    # a stable sort keeps file order on ties, so write ties in their true order)
    by_time = sorted(range(len(rows)), key=lambda k: -rows[k][3])
    inter.write_text("user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
                     + "".join("{}\t{}\t{}\t{}\n".format(*rows[k]) for k in by_time))
    csvf = tmp_path / "d.csv"
    csvf.write_text("user,item,rating,timestamp\n" + "".join("{},{},{},{}\n".format(*r) for r in rows))
    return {"seq": seq, "pairs": pairs, "atomic": inter, "csv": csvf}


def test_four_formats_give_identical_processed_data(tmp_path):
    outs = {}
    for fmt, path in _formats(tmp_path).items():
        outs[fmt] = process(read_interactions(path, fmt)).to_arrays()
    ref = outs["seq"]
    for fmt, arrays in outs.items():
        for k in ref:
            np.testing.assert_array_equal(arrays[k], ref[k], err_msg=f"{fmt}:{k}")
    assert list(ref["user_ids"]) == ["u1", "u2", "u3"] and list(ref["item_ids"]) == ["<pad>", "a", "b", "c"]


def test_time_order_is_stable_on_ties(tmp_path):
    f = tmp_path / "t.csv"
    # u1 interactions out of time order in the file, with a tie at t=5 (b before c in the file)
    f.write_text("user,item,timestamp\nu1,d,9\nu1,b,5\nu1,a,1\nu1,c,5\n")
    d = process(read_interactions(f))
    assert list(d.seqs.item_ids[d.seqs.items]) == ["a", "b", "c", "d"]


def test_min_rating_then_k_core(tmp_path):
    f = tmp_path / "r.csv"
    lines = ["user,item,rating"]
    for u in range(1, 5):
        for i in range(1, 5):
            lines.append(f"u{u},i{i},{5 if i < 4 else 1}")
    lines += ["u9,i1,5", "u9,i2,5"]  # u9 has 2 interactions: removed by the 3-core
    f.write_text("\n".join(lines) + "\n")
    d = process(read_interactions(f), min_rating=4, min_user_interactions=3, min_item_interactions=3)
    assert list(d.seqs.user_ids) == ["u1", "u2", "u3", "u4"]
    assert list(d.seqs.item_ids[1:]) == ["i1", "i2", "i3"]  # i4 only had rating 1
    with pytest.raises(DataError, match="no rating column"):
        process(read_interactions(write_seq(tmp_path / "s.txt", {1: [1, 2, 3]})), min_rating=3)


def test_k_core_is_iterative():
    # removing user 2 (2 interactions) drops item 3 below 2, which then drops user 1 below 2... until stable
    users = np.array([0, 0, 1, 1, 2, 2, 2])
    items = np.array([0, 1, 0, 1, 2, 0, 1])
    keep = k_core(users, items, 2, 2)
    assert keep.tolist() == [True, True, True, True, False, True, True]
    u, i = users[keep], items[keep]
    assert np.bincount(u).min() >= 2 and np.bincount(i)[np.unique(i)].min() >= 2


def test_filters_that_leave_no_users(tmp_path):
    f = write_seq(tmp_path / "s.txt", {1: [1, 2, 3], 2: [2, 3, 4]})
    with pytest.raises(DataError, match="no interactions left"):
        load_processed(path=str(f), min_user_interactions=50, cache_dir=tmp_path / "c")
    assert not list((tmp_path / "c").glob("*")) if (tmp_path / "c").exists() else True


def test_short_users_dropped_with_warning(tmp_path, caplog):
    f = write_seq(tmp_path / "s.txt", {1: [1, 2, 3, 4], 2: [2, 3], 3: [1, 3, 4]})
    d = process(read_interactions(f))
    assert d.num_users == 2 and d.dropped_users == 1
    assert "dropped 1 users" in caplog.text


def test_leave_one_out_split(tmp_path):
    f = write_seq(tmp_path / "s.txt", {"a": [5, 6, 7, 8], "b": [7, 5, 9]})
    d = process(read_interactions(f))
    ids = d.seqs.item_ids
    assert [list(ids[d.split.train_items[d.split.train_ptr[u]:d.split.train_ptr[u + 1]]]) for u in range(2)] == [
        ["5", "6"], ["7"]]
    assert list(ids[d.split.valid]) == ["7", "5"] and list(ids[d.split.test]) == ["8", "9"]
    # frequency counts training interactions only: item 8 and 9 are cold
    assert dict(zip(ids[1:], d.item_freq[1:])) == {"5": 1, "6": 1, "7": 1, "8": 0, "9": 0}


def test_cooccurrence_and_normalisation_hand_example():
    # users x items (item 0 = padding, item 4 isolated); user 0 has item 1 twice
    users = np.array([0, 0, 0, 1, 1, 2])
    items = np.array([1, 1, 2, 2, 3, 3])
    r = interaction_matrix(users, items, 3, 5)
    a = cooccurrence(r).toarray()
    expected = np.array([[0, 0, 0, 0, 0], [0, 4, 2, 0, 0], [0, 2, 2, 1, 0], [0, 0, 1, 2, 0], [0, 0, 0, 0, 0]])
    np.testing.assert_array_equal(a, expected)
    p = normalize(cooccurrence(r), "left").toarray()
    np.testing.assert_allclose(p[1], [0, 4 / 6, 2 / 6, 0, 0])
    np.testing.assert_allclose(p[2], [0, 2 / 5, 2 / 5, 1 / 5, 0])
    np.testing.assert_allclose(p.sum(1), [0, 1, 1, 1, 0])
    assert not np.isnan(p).any()
    s = normalize(cooccurrence(r), "sym").toarray()
    d = expected.sum(1)
    np.testing.assert_allclose(s[1, 2], 2 / np.sqrt(d[1] * d[2]))
    assert sp.issparse(build_operator(users, items, 3, 5))
    t = to_torch_csr(build_operator(users, items, 3, 5))
    assert t.layout == torch.sparse_csr and t.shape == (5, 5)
    np.testing.assert_allclose(t.to_dense().numpy(), p, rtol=1e-6)
    with pytest.raises(ValueError, match="unknown normalization"):
        normalize(cooccurrence(r), "bogus")


def test_top_k_neighbours_keeps_largest():
    a = sp.csr_matrix(np.array([[5, 1, 3, 0], [0, 2, 2, 2], [0, 0, 0, 0], [1, 0, 0, 9]], dtype=float))
    k = top_k_per_row(a, 2).toarray()
    np.testing.assert_array_equal(k, [[5, 0, 3, 0], [0, 2, 2, 0], [0, 0, 0, 0], [1, 0, 0, 9]])


def test_negatives_never_hit_training_items_and_are_reproducible(tiny_seq_file):
    d = process(read_interactions(tiny_seq_file))
    sp_ = d.split
    ds = SeqTrainDataset(sp_.train_ptr, sp_.train_items, d.num_items, maxlen=5, seed=3)
    sampler = BucketBatchSampler(ds.lengths, 16, seed=3)
    train_sets = [set(sp_.train_items[sp_.train_ptr[u]:sp_.train_ptr[u + 1]]) for u in range(d.num_users)]
    batches = [ds[k] for k in sampler]
    for b in batches:
        for row, u in enumerate(b["users"].tolist()):
            real = b["targets"][row] != 0
            assert set(b["negatives"][row][real].tolist()).isdisjoint(train_sets[u])
            assert (b["negatives"][row][~real] == 0).all() and (b["inputs"][row][~real] == 0).all()
    again = [ds[k] for k in BucketBatchSampler(ds.lengths, 16, seed=3)]
    for x, y in zip(batches, again):
        assert x.keys() == y.keys()
        for k in x:
            assert torch.equal(x[k], y[k]) if torch.is_tensor(x[k]) else x[k] == y[k]
    seen = SeenItems(sp_.train_ptr, sp_.train_items, d.num_items)
    for mode in ("user", "interaction"):
        pairs = PairTrainDataset(sp_.train_ptr, sp_.train_items, d.num_items, seed=1, sampling=mode)
        ps = BucketBatchSampler(np.ones(len(pairs)), 32, seed=1)
        got = [pairs[k] for k in ps]
        for b in got:
            assert not seen.contains(b["users"].numpy(), b["negatives"].numpy()).any()
            assert seen.contains(b["users"].numpy(), b["positives"].numpy()).all()
        # an epoch has as many triples as training interactions
        assert sum(len(b["users"]) for b in got) == len(sp_.train_items)
        if mode == "interaction":  # ... and then each interaction exactly once
            pairs_seen = sorted(zip(torch.cat([b["users"] for b in got]).tolist(),
                                    torch.cat([b["positives"] for b in got]).tolist()))
            assert pairs_seen == sorted(zip(sp_.train_users.tolist(), sp_.train_items.tolist()))
    with pytest.raises(ValueError, match="pair sampling"):
        PairTrainDataset(sp_.train_ptr, sp_.train_items, d.num_items, seed=1, sampling="bogus")


def test_seq_batches_are_next_item_windows(tmp_path):
    f = write_seq(tmp_path / "s.txt", {1: [1, 2, 3, 4, 5, 6, 7], 2: [3, 1, 2, 4, 5]})
    d = process(read_interactions(f))
    ds = SeqTrainDataset(d.split.train_ptr, d.split.train_items, d.num_items, maxlen=3, seed=0)
    b = ds[(0, 0, np.array([0, 1]))]
    # user 1 training part: 1 2 3 4 5 -> inputs last 3 of [1..4], targets last 3 of [2..5]
    assert b["inputs"].tolist() == [[2, 3, 4], [0, 3, 1]]
    assert b["targets"].tolist() == [[3, 4, 5], [0, 1, 2]]


def test_cache_reused_and_corrupt_cache_rebuilt(tiny_seq_file, tmp_path, caplog):
    cdir = tmp_path / "cache"
    a = load_processed(path=str(tiny_seq_file), cache_dir=cdir)
    assert not a.cached
    b = load_processed(path=str(tiny_seq_file), cache_dir=cdir)
    assert b.cached
    np.testing.assert_array_equal(a.split.train_items, b.split.train_items)
    assert (a.operator != b.operator).nnz == 0
    npz = next(cdir.glob("*.npz"))
    npz.write_bytes(npz.read_bytes()[:-50])  # truncated
    c = load_processed(path=str(tiny_seq_file), cache_dir=cdir)
    assert not c.cached and "checksum" in caplog.text
    assert load_processed(path=str(tiny_seq_file), cache_dir=cdir).cached
    # stale format version
    meta = next(cdir.glob("*.json"))
    info = json.loads(meta.read_text())
    info["format"] = -1
    meta.write_text(json.dumps(info))
    assert not load_processed(path=str(tiny_seq_file), cache_dir=cdir).cached
    # changed file content -> another key, not the old cache
    with open(tiny_seq_file, "a") as f:
        f.write("999 1 2 3 4\n")
    d = load_processed(path=str(tiny_seq_file), cache_dir=cdir)
    assert not d.cached and d.num_users == a.num_users + 1


def test_cache_key_depends_on_processing():
    assert cache.cache_key({"a": 1}) != cache.cache_key({"a": 2})


def test_datamodule_exposes_statistics_and_loaders(tiny_seq_file, tmp_path):
    dm = RecDataModule(path=str(tiny_seq_file), cache_dir=str(tmp_path), sampling="seq", maxlen=6,
                       batch_size=8, eval_batch_size=16, seed=0)
    dm.setup("fit")
    assert dm.item_freq.shape == (dm.num_items + 1,) and dm.item_freq[0] == 0
    assert dm.operator.layout == torch.sparse_csr and dm.operator.shape == (dm.num_items + 1,) * 2
    batches = list(dm.train_dataloader())
    assert max(b["inputs"].shape[1] for b in batches) <= 6
    val = list(dm.val_dataloader())
    assert sorted(torch.cat([b["users"] for b in val]).tolist()) == list(range(dm.num_users))
    test_b = list(dm.test_dataloader())
    d = dm.data
    for b in test_b:  # test history = training part + validation item
        for row, u in enumerate(b["users"].tolist()):
            seen = b["seen_cols"][b["seen_rows"] == row].tolist()
            tr = d.split.train_items[d.split.train_ptr[u]:d.split.train_ptr[u + 1]].tolist()
            assert seen == tr + [int(d.split.valid[u])]
            assert b["targets"][row] == d.split.test[u]
    with pytest.raises(ConfigError, match="sampling"):
        RecDataModule(path="x", sampling="nope")
    with pytest.raises(ConfigError, match="maxlen"):
        RecDataModule(path="x", maxlen=0)


def test_raw_ids_are_compared_as_written(tmp_path):
    """`007` and `7`, `+10` and `10`, `1_0` and `10`, ` 5` and `5` are different ids; canonical
    integers still take the numeric fast path (numbered in numeric order)."""
    from embfreq.data.preprocess import _codes

    raw = np.array(["007", "7", "+10", "10", "1_0", " 5", "5", "7"], dtype=object)
    uniq, inv = _codes(raw)
    assert len(uniq) == 7 and list(uniq[inv]) == list(raw)
    uniq, inv = _codes(np.array(["10", "9", "100", "9"], dtype=object))
    assert list(uniq) == ["9", "10", "100"] and list(inv) == [1, 0, 2, 0]  # numeric, not string order
    f = tmp_path / "ids.csv"
    f.write_text("user,item,time\n" + "".join(f"u{u},{i},{t}\n" for u in range(3)
                                            for t, i in enumerate(["007", "7", "07", "+7", "8", "9"])))
    d = load_processed(path=str(f), format="csv")
    assert d.num_items == 6 and sorted(d.seqs.item_ids[1:]) == sorted(["007", "7", "07", "+7", "8", "9"])


def test_cache_dir_tilde_is_expanded(tiny_seq_file, tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    load_processed(path=str(tiny_seq_file), cache_dir="~/.cache/embfreq")
    assert not (tmp_path / "~").exists()
    assert list((tmp_path / "home" / ".cache" / "embfreq").glob("*.npz"))


def test_unusable_cache_dir_warns_and_goes_on(tiny_seq_file, tmp_path, caplog):
    blocker = tmp_path / "file"
    blocker.write_text("not a dir")
    ref = load_processed(path=str(tiny_seq_file))
    with caplog.at_level("WARNING"):
        d = load_processed(path=str(tiny_seq_file), cache_dir=str(blocker / "cache"))
    assert "cannot use the data cache" in caplog.text and not d.cached
    assert np.array_equal(d.split.train_items, ref.split.train_items)


def test_stale_cache_temp_files_are_removed(tiny_seq_file, tmp_path):
    import os
    import time

    cdir = tmp_path / "c"
    cdir.mkdir()
    old, fresh = cdir / ".abc.npz.x1.tmp", cdir / ".abc.npz.x2.tmp"
    for p in (old, fresh):
        p.write_bytes(b"0" * 100)
    os.utime(old, (time.time() - 2 * cache.STALE_TMP_SECONDS,) * 2)
    load_processed(path=str(tiny_seq_file), cache_dir=str(cdir))
    assert not old.exists() and fresh.exists()  # a write in progress is left alone


def test_cache_key_carries_the_processing_version(tiny_seq_file, tmp_path, monkeypatch):
    import embfreq.data.processed as processed

    load_processed(path=str(tiny_seq_file), cache_dir=str(tmp_path))
    assert load_processed(path=str(tiny_seq_file), cache_dir=str(tmp_path)).cached
    monkeypatch.setattr(processed, "PROCESSING_VERSION", processed.PROCESSING_VERSION + 1)
    assert not load_processed(path=str(tiny_seq_file), cache_dir=str(tmp_path)).cached


def test_negative_sampling_never_returns_a_seen_item_when_rejection_gives_up():
    """A user who has seen all but two of 50 items: rejection gives up after max_rounds, and the
    fallback draws uniformly from the two unseen items, never a seen one."""
    from embfreq.data.batches import sample_negatives

    n = 50
    items = np.array([i for i in range(1, n + 1) if i not in (7, 31)])
    seen = SeenItems(np.array([0, len(items)]), items, n)
    rng = np.random.default_rng(0)
    neg = sample_negatives(rng, np.zeros(4000, dtype=np.int64), seen, n, max_rounds=0)
    assert set(neg.tolist()) == {7, 31}
    assert abs((neg == 7).mean() - 0.5) < 0.05
    full = SeenItems(np.array([0, n]), np.arange(1, n + 1), n)
    with pytest.raises(DataError, match="every item"):
        sample_negatives(rng, np.zeros(3, dtype=np.int64), full, n, max_rounds=1)


def test_result_files_get_ordinary_permissions(tmp_path):
    """items.csv and other results follow the umask like any file (mkstemp alone gives 0600)."""
    import os

    from embfreq.analysis.per_run.items import write_items_csv
    from embfreq.io import write_json

    old = os.umask(0o022)
    try:
        write_items_csv(tmp_path / "items.csv", [])
        write_json(tmp_path / "metrics.json", {})
    finally:
        os.umask(old)
    for name in ("items.csv", "metrics.json"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o644, name


def test_exact_duplicate_interactions_are_reported_and_can_be_dropped(tmp_path, caplog):
    """Same user, item and time twice: a warning with the count; drop_duplicates=true removes the
    repeat, so validation and test are no longer the same interaction."""
    f = tmp_path / "dup.csv"
    rows = [("a", "1", 1), ("a", "2", 2), ("a", "3", 3), ("a", "4", 4), ("a", "4", 4),
            ("b", "1", 1), ("b", "2", 2), ("b", "3", 3), ("b", "5", 3)]  # b: same time, other item: fine
    f.write_text("user,item,timestamp\n" + "".join(f"{u},{i},{t}\n" for u, i, t in rows))
    with caplog.at_level("WARNING"), pytest.raises(DataError, match=r"degenerate split: 1 of 2 users \(50%\) have "
                                                                    r"the same validation and test item"):
        load_processed(path=str(f), format="csv")  # half the users: refused (issue 33)
    assert "1 exact duplicate interactions" in caplog.text
    kept = load_processed(path=str(f), format="csv", max_valid_equals_test=0.5)
    a = list(kept.seqs.user_ids).index("a")
    assert kept.split.valid[a] == kept.split.test[a]  # the failure mode being reported
    caplog.clear()
    with caplog.at_level("WARNING"):
        dropped = load_processed(path=str(f), format="csv", drop_duplicates=True)
    assert "dropped 1 exact duplicate" in caplog.text
    a = list(dropped.seqs.user_ids).index("a")
    assert dropped.split.valid[a] != dropped.split.test[a]
    assert len(dropped.seqs.items) == len(kept.seqs.items) - 1


def test_full_disk_during_a_cache_write_warns_and_leaves_no_partial_file(tiny_seq_file, tmp_path, caplog, monkeypatch):
    """ENOSPC halfway through the npz: the run goes on with the processed data, the cache dir holds
    no partial entry (no npz, no json, no temp file), and the next load parses again."""
    def fills_the_disk(f, **arrays):
        f.write(b"PK\x03\x04" + b"0" * 1000)
        raise OSError(28, "No space left on device")

    ref = load_processed(path=str(tiny_seq_file))
    cdir = tmp_path / "c"
    monkeypatch.setattr(cache.np, "savez", fills_the_disk)
    with caplog.at_level("WARNING"):
        d = load_processed(path=str(tiny_seq_file), cache_dir=str(cdir))
    assert "cannot write the data cache" in caplog.text and "No space left on device" in caplog.text
    assert np.array_equal(d.split.train_items, ref.split.train_items) and not d.cached
    assert [p.name for p in cdir.iterdir() if not p.name.startswith(".lock")] == []
    monkeypatch.undo()
    assert not load_processed(path=str(tiny_seq_file), cache_dir=str(cdir)).cached
    assert load_processed(path=str(tiny_seq_file), cache_dir=str(cdir)).cached
