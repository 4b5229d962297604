import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("OMP_NUM_THREADS", "2")
ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "embfreq" / "conf"


def write_seq(path: Path, seqs: dict) -> Path:
    path.write_text("".join(f"{u} {' '.join(map(str, items))}\n" for u, items in seqs.items()))
    return path


def synthetic_seqs(num_users: int = 60, num_items: int = 40, min_len: int = 4, max_len: int = 12, seed: int = 0) -> dict:
    """Power-law-ish item popularity, so bands have both rare and popular items."""
    rng = np.random.default_rng(seed)
    p = 1.0 / np.arange(1, num_items + 1) ** 0.8
    p /= p.sum()
    return {u: list(rng.choice(np.arange(1, num_items + 1), size=rng.integers(min_len, max_len + 1), p=p))
            for u in range(1, num_users + 1)}


@pytest.fixture
def tiny_seq_file(tmp_path) -> Path:
    return write_seq(tmp_path / "tiny.txt", synthetic_seqs())


def build_table(spec, num_embeddings, embedding_dim, item_freq, operator, *, lower_freq, upper_freq,
                padding_idx=0, neighbours="all", **factory):
    """An item table from a config-style spec ({"name": "hashed", "buckets": 8}; None = neighbours), as
    `conf/item_table/<name>.yaml` gives it."""
    from embfreq.nn import ITEM_TABLES

    spec = dict(spec or {"name": "neighbours"})
    cls = ITEM_TABLES[spec.pop("name")]
    if cls.strategy == "neighbours":
        spec.setdefault("neighbours", neighbours)
    elif neighbours != "all":
        raise ValueError(f"neighbours={neighbours!r} applies to the neighbours table only")
    return cls(num_embeddings, embedding_dim, item_freq, operator, lower_freq, upper_freq, padding_idx=padding_idx,
               **spec, **factory)


def make_model(cls, *args, num_items, item_freq, operator, embedding_dim=64, lower_freq=0, upper_freq=5,
               neighbours="all", item_table=None, **kwargs):
    """A model with its item table built from the arguments the models took before tables were injected."""
    table = build_table(item_table, num_items + 1, embedding_dim, item_freq, operator, lower_freq=lower_freq,
                        upper_freq=upper_freq, neighbours=neighbours)
    return cls(*args, item_table=table, **kwargs)
