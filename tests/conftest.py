import json
import os
from pathlib import Path

import numpy as np
import pytest
import yaml

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


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, request):
    """(data file, cache dir) of 60 users and 40 items, shared by the tests of one module."""
    d = tmp_path_factory.mktemp(request.module.__name__.rpartition(".")[2])
    return write_seq(d / "tiny.txt", synthetic_seqs(num_users=60, num_items=40)), d / "cache"


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


# -- run dirs as train.py leaves them, for the report's tests (no training) --------------------------

def fake_run(root, name, status="ok", model="sasrec", data="beauty", seed=1, lower=0, upper=5, ndcg=0.1, hr=0.2,
             neighbours="all", items=100, in_band=10, net=None, reason="", config=True):
    """A run dir as train.py leaves it: config.yaml (resolved) and metrics.json."""
    d = root / name
    d.mkdir(parents=True)
    if config:
        cfg = {"seed": seed, "lower_freq": lower, "upper_freq": upper, "neighbours": neighbours,
               "model": {"name": model, "net": {"embedding_dim": 64, "num_heads": 1, **(net or {})}},
               "data": {"name": data, "path": None}, "cache_dir": f"/tmp/{name}", "trainer": {"accelerator": "cpu"}}
        (d / "config.yaml").write_text(yaml.safe_dump(cfg))
        (d / ".hydra").mkdir()
        (d / ".hydra" / "config.yaml").write_text(yaml.safe_dump(cfg))  # Hydra's copy: not a run
    if status is None:
        return d
    base = {"status": status, "model": model, "data": data, "seed": seed, "lower_freq": lower, "upper_freq": upper,
            "neighbours": neighbours, "run_dir": str(d)}
    if status == "ok":
        saved = in_band * 64 if neighbours == "outside_band" else 0
        base.update(items=items, items_in_band=in_band, share_in_band=in_band / items,
                    embedding_params=(items + 1) * 64 - saved, embedding_params_saved=saved, total_params=12345,
                    epochs_trained=20, best_epoch=15, val={"val/ndcg@10": ndcg},
                    test={"test/hr@10": hr, "test/ndcg@10": ndcg, "test/hr@5": hr / 2},
                    seconds={"data": 0.1, "fit": 1.0, "test": 0.2, "total": 1.5})
    elif status == "skipped":
        base["reason"] = reason or f"lower_freq={lower} > upper_freq={upper}: empty band"
    else:
        base["error"] = reason or "AssertionError: embed_dim must be divisible by num_heads"
    (d / "metrics.json").write_text(json.dumps(base))
    return d


def with_users(d, ranks, targets, freq):
    from embfreq.analysis.per_run.per_user import write_test_users

    write_test_users(d, np.array(ranks), np.array(targets), np.array(freq))
    m = json.loads((d / "metrics.json").read_text())
    r = np.array(ranks, dtype=float)
    m["test"]["test/ndcg@10"] = float(np.where(r <= 10, 1 / np.log2(r + 1), 0).mean())
    m["test"]["test/hr@10"] = float((r <= 10).mean())
    (d / "metrics.json").write_text(json.dumps(m))
