"""data=amazon2014: the Amazon 2014 ratings files as distributed (headerless user,item,rating,timestamp)
with the study's Amazon2014Beauty_1000_LOU filters (users >= 10, no item filter, leave-one-out in time
order, stable on ties), on small files in that format."""

import gzip

import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from embfreq.data.readers import read_interactions
from embfreq.errors import DataError
from tests.conftest import CONF


def ratings_file(path, rows, gz=False):
    text = "".join(f"{u},{i},{r},{t}\n" for u, i, r, t in rows)
    if gz:
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text)
    return path


def user_rows(user, items, t0=1_400_000_000):
    return [(user, item, 5.0, t0 + 86400 * k) for k, item in enumerate(items)]


def datamodule(path, cache):
    with initialize_config_dir(str(CONF), version_base="1.3"):
        cfg = compose("train", overrides=["data=amazon2014", f"data.path={path}", f"cache_dir={cache}"])
    dm = instantiate(cfg.data, _convert_="all")
    dm.setup("fit")
    return cfg, dm


def test_ratings_reader_reads_the_distributed_format(tmp_path):
    p = ratings_file(tmp_path / "ratings_Beauty.csv.gz",
                     [("A39HTATAQ9V7YF", "0205616461", 5.0, 1369699200), ("A3JM6GV9MNOF9X", "0558925278", 3.0, 1355443200),
                      ("A1Z513UWSAAO0F", "205616461", 4.0, 1404691200)], gz=True)
    raw = read_interactions(p, "ratings")
    assert list(raw.users) == ["A39HTATAQ9V7YF", "A3JM6GV9MNOF9X", "A1Z513UWSAAO0F"]
    assert list(raw.items) == ["0205616461", "0558925278", "205616461"]  # strings: the leading zero stays
    assert raw.ratings.tolist() == [5.0, 3.0, 4.0] and raw.timestamps.tolist() == [1369699200, 1355443200, 1404691200]


@pytest.mark.parametrize("line, match", [
    ("user,item,rating,timestamp", "line 1: expected a finite number for rating"),  # a header
    ("A1,0001,5.0", "line 1: expected 'user,item,rating,timestamp'"),
    ("A1,0001,5.0,123,extra", "line 1: expected 'user,item,rating,timestamp'"),
    (",0001,5.0,123", "line 1: expected 'user,item,rating,timestamp'"),
    ("A1,0001,5.0,nan", "line 1: expected a finite number for timestamp"),
])
def test_ratings_reader_refuses_what_is_not_that_format(tmp_path, line, match):
    p = tmp_path / "r.csv"
    p.write_text(line + "\nA2,0002,4.0,100\n")
    with pytest.raises(DataError, match=match):
        read_interactions(p, "ratings")


def test_study_filters_and_time_order(tmp_path):
    """Users with >= 10 ratings stay; no item filter (an item rated once, in a test target, stays and
    is never trained); each user's items in time order, ties in file order; '0001' and '1' differ."""
    rows = []
    for u in range(3):  # three users with 10..12 ratings
        items = [f"{k:04d}" for k in range(10 + u)]
        rows += user_rows(f"U{u}", items)
    rows += user_rows("SHORT", ["0001", "0002", "0003"])  # 3 ratings: filtered out
    # U3: 10 ratings given out of time order, two at the same time (file order must decide), the last
    # one an item nobody else rated, written without its leading zeros ("1")
    t = 1_500_000_000
    u3 = [("U3", f"{k:04d}", 4.0, t + 10 * k) for k in (5, 3, 1, 0, 2, 4, 6, 7)]
    u3 += [("U3", "0008", 4.0, t + 80), ("U3", "0009", 4.0, t + 80), ("U3", "1", 4.0, t + 200)]
    rows += u3
    rng = np.random.default_rng(0)
    rows = [rows[k] for k in rng.permutation(len(rows))]  # the file need not be grouped by user
    # ...but the two tied ratings must keep their relative file order
    a, b = rows.index(u3[8]), rows.index(u3[9])
    if a > b:
        rows[a], rows[b] = rows[b], rows[a]
    cfg, dm = datamodule(ratings_file(tmp_path / "ratings.csv", rows), tmp_path / "cache")
    assert cfg.data.min_user_interactions == 10 and cfg.data.min_item_interactions == 0
    seqs = dm._load().seqs
    users = list(seqs.user_ids)
    assert sorted(users) == ["U0", "U1", "U2", "U3"] and dm.num_users == 4
    ids = list(seqs.item_ids)
    assert "1" in ids and "0001" in ids and ids.index("1") != ids.index("0001")
    u = users.index("U3")
    got = [ids[i] for i in seqs.items[seqs.ptr[u]:seqs.ptr[u + 1]]]
    assert got == ["0000", "0001", "0002", "0003", "0004", "0005", "0006", "0007", "0008", "0009", "1"]
    split = dm._load().split
    assert ids[split.test[u]] == "1" and ids[split.valid[u]] == "0009"  # leave-one-out, the latest last
    assert float(dm.item_freq[ids.index("1")]) == 0.0  # kept, never trained: the study's cold item


def test_amazon2014_needs_its_file():
    from omegaconf import OmegaConf

    with initialize_config_dir(str(CONF), version_base="1.3"):
        cfg = compose("train", overrides=["data=amazon2014"])
    assert OmegaConf.is_missing(cfg.data, "path") and cfg.data.format == "ratings"
