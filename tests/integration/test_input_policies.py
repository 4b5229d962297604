"""Issue 33, item 4: input that cannot mean what it says is refused with one line before training:
a column mapped to two roles, a degenerate split (validation = test for many users), and a header
or stray line among integer ids."""

import pytest
from hydra import compose, initialize_config_dir

from embfreq.data.processed import load_processed
from embfreq.data.readers import read_interactions
from embfreq.errors import ConfigError, DataError
from embfreq.training.train import run_job
from tests.conftest import CONF, synthetic_seqs, write_seq

BASE = ["data=custom", "data.min_user_interactions=0", "data.min_item_interactions=0", "trainer.max_epochs=1",
        "eval_every=1", "data.batch_size=32", "model.embedding_dim=16", "trainer=cpu", "analysis=false",
        "threads=1", "+trainer.enable_progress_bar=false", "model=mf_bpr"]


def refused(tmp_path, path, err, match, *overrides):
    """run_job (the CLI's path) refuses with one line; no metrics.json, nothing trained."""
    with initialize_config_dir(str(CONF), version_base="1.3"):
        c = compose("train", overrides=[*BASE, f"data.path={path}", f"cache_dir={tmp_path / 'cache'}", *overrides])
    with pytest.raises(err) as e:
        run_job(c, tmp_path / "run")
    msg = str(e.value)
    assert "\n" not in msg and match in msg, msg
    assert not (tmp_path / "run" / "metrics.json").exists()
    return msg


def csv_file(tmp_path, seqs, header="user,item,timestamp"):
    rows = [f"{u},{i},{t}" for u, items in seqs.items() for t, i in enumerate(items)]
    f = tmp_path / "inter.csv"
    f.write_text(header + "\n" + "\n".join(rows) + "\n")
    return f


# -- data.columns --------------------------------------------------------------------------------
def test_user_and_item_mapped_to_one_column_is_refused(tmp_path):
    """It trained and reported HR@10 = NDCG@10 = 1.0 (every user's items were its own id)."""
    f = csv_file(tmp_path, synthetic_seqs(num_users=20, num_items=15))
    refused(tmp_path, f, ConfigError, "data.columns maps both user and item to column 'item'; each role needs its own",
            "data.format=csv", "+data.columns.user=item", "+data.columns.item=item")


@pytest.mark.parametrize("columns,match", [
    (["user=user", "time=user"], "data.columns maps both user and time to column 'user'"),
    (["item=timestamp", "time=timestamp"], "data.columns maps both item and time to column 'timestamp'"),
    (["usr=user"], "data.columns: unknown role(s) usr; expected some of user, item, rating, time"),
    (["user=''"], "data.columns.user must be a column name, got ''"),
])
def test_any_column_mapped_twice_or_unknown_role(tmp_path, columns, match):
    f = csv_file(tmp_path, synthetic_seqs(num_users=20, num_items=15))
    refused(tmp_path, f, ConfigError, match, "data.format=csv", *[f"+data.columns.{c}" for c in columns])


def test_a_default_name_that_meets_a_mapped_one_is_one_column_twice(tmp_path):
    """The item column mapped onto the user column's default name (atomic falls back to user_id)."""
    f = tmp_path / "x.inter"
    f.write_text("user_id:token\titem_id:token\n1\t2\n1\t3\n")
    with pytest.raises(DataError, match=r"column 'user_id:token' is both the user and the item column"):
        read_interactions(f, item_col="user_id")


@pytest.mark.parametrize("name,header", [("x.csv", "user,item,item"), ("x.inter", "user_id:token\titem_id:token\t"
                                                                               "user_id:float")])
def test_a_header_naming_a_used_column_twice(tmp_path, name, header):
    f = tmp_path / name
    sep = "\t" if name.endswith(".inter") else ","
    f.write_text(header + "\n" + sep.join(["1", "2", "3"]) + "\n")
    with pytest.raises(DataError, match=r"the header names the (user|item) column '(item|user_id)' twice"):
        read_interactions(f)


def test_columns_for_a_format_without_columns(tmp_path):
    f = write_seq(tmp_path / "x.txt", synthetic_seqs(num_users=20, num_items=15))
    refused(tmp_path, f, ConfigError, "is read as format=seq, which has none", "+data.columns.user=u")


# -- degenerate split -------------------------------------------------------------------------------
def test_duplicated_interactions_making_validation_equal_test_are_refused(tmp_path):
    """Every interaction twice: validation = test for every user; it gave ok with HR@10 = 1.0."""
    seqs = {u: [i for i in items for _ in range(2)] for u, items in synthetic_seqs(num_users=30).items()}
    msg = refused(tmp_path, write_seq(tmp_path / "dup.txt", seqs), DataError,
                  "degenerate split: 30 of 30 users (100%) have the same validation and test item")
    assert "data.max_valid_equals_test=0.2" in msg


@pytest.mark.parametrize("repeats,ok", [(2, True), (3, False)])
def test_split_share_limit(tmp_path, repeats, ok):
    """10 users, `repeats` of them with the last item repeated: 20% is allowed, 30% is not."""
    seqs = {u: [1, 2, 3, 4 + u] for u in range(10)}
    for u in range(repeats):
        seqs[u] = seqs[u] + [seqs[u][-1]]
    f = write_seq(tmp_path / "x.txt", seqs)
    if ok:
        assert len(load_processed(path=str(f)).split.test) == 10
        return
    with pytest.raises(DataError, match=r"degenerate split: 3 of 10 users \(30%\)"):
        load_processed(path=str(f))
    assert len(load_processed(path=str(f), max_valid_equals_test=0.3).split.test) == 10  # the setting


def test_split_limit_setting_from_the_config(tmp_path):
    seqs = {u: [i for i in items for _ in range(2)] for u, items in synthetic_seqs(num_users=30).items()}
    refused(tmp_path, write_seq(tmp_path / "dup.txt", seqs), ConfigError,
            "data.max_valid_equals_test must be a share in [0, 1], got 2", "+data.max_valid_equals_test=2")


# -- headers and stray lines ---------------------------------------------------------------------------
def seq_text(seqs):
    return "".join(f"{u} {' '.join(map(str, items))}\n" for u, items in seqs.items())


def test_header_line_of_a_seq_file_is_refused(tmp_path):
    """It became a user 'user_id' with an item 'item_ids'."""
    f = tmp_path / "x.txt"
    f.write_text("user_id item_ids\n" + seq_text(synthetic_seqs(num_users=20)))
    refused(tmp_path, f, DataError, "x.txt line 1: non-integer id 'user_id' in a file whose other user and item ids "
                                    "are integers: a header or stray line would become a made-up user; remove it")


@pytest.mark.parametrize("name,text,match", [
    ("pairs", "user item\n1 2\n1 3\n2 3\n", "line 1: non-integer id 'user'"),
    ("seq_stray_word", "1 2 3 4\n2 3 4 5\n3 4 5 x7\n", "line 3: non-integer id 'x7'"),
    ("seq_comment", "1 2 3 4\n\n# end of file\n", "line 3: non-integer id '#'"),
    ("csv_repeated_header", "user,item\n1,2\n1,3\nuser,item\n2,3\n",
     "data row 3: non-integer id 'user' in a file whose other user and item ids are integers"),
])
def test_stray_lines_among_integer_ids(tmp_path, name, text, match):
    f = tmp_path / {"pairs": "x.pairs", "csv_repeated_header": "x.csv"}.get(name, "x.txt")
    f.write_text(text)
    with pytest.raises(DataError) as e:
        read_interactions(f)
    assert match in str(e.value) and "\n" not in str(e.value)


def test_string_ids_and_mixed_files_are_read_as_written(tmp_path):
    """Ids need not be integers: a file of names, or one mixing both kinds on many lines (ISBNs and
    ASINs), is not a header case."""
    f = tmp_path / "names.txt"
    f.write_text("alice apple pear fig\nbob pear fig kiwi\n")
    assert list(read_interactions(f).users) == ["alice"] * 3 + ["bob"] * 3
    g = tmp_path / "mixed.txt"
    g.write_text("".join(f"A{u} 0345{u} B00{u} 0441{u}\n" for u in range(50)))
    assert len(read_interactions(g)) == 150


def test_one_stray_line_in_a_hundred_and_one_in_two_hundred(tmp_path):
    """At most 1% of the lines: a stray line; more: a file of mixed ids, read as written."""
    good = "".join(f"{u} 1 2 3\n" for u in range(1, 200))
    f = tmp_path / "x.txt"
    f.write_text(good + "u 1 2 3\nv 1 2 3\n")  # 2 of 201 lines
    with pytest.raises(DataError, match=r"line 200: non-integer id 'u' .* \(and 1 more record\(s\) like it\)"):
        read_interactions(f)
    f.write_text(good + "".join(f"w{k} 1 2 3\n" for k in range(3)))  # 3 of 202: more than 1%
    assert len(read_interactions(f)) == 202 * 3


def test_bundled_lastfm_passes_every_check():
    """A bundled file (integer ids) passes the new checks unchanged (Yelp, 2.2% of users with the same
    validation and test item, is checked by the healthy-run measurements in docs/bad_inputs.md)."""
    d = load_processed(bundled="LastFM.txt.gz", min_user_interactions=5, use_cache=False)
    assert (d.num_users, d.num_items) == (1090, 3646)
