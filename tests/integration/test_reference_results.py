"""Published results stay valid: short fixed-seed runs of each model, with and without a band, must
give bit-identical metrics and per-user test ranks to the committed reference values.

A change that alters training on purpose regenerates them, and says so in its commit:
    EMBFREQ_WRITE_REFERENCE=1 python -m pytest tests/integration/test_reference_results.py
"""

import hashlib
import json
import os

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir

from embfreq.training.train import train
from tests.conftest import CONF, ROOT, synthetic_seqs, write_seq

REFERENCE = ROOT / "tests" / "reference" / "short_runs.json"
CASES = {
    "sasrec_baseline": ["model=sasrec", "band=baseline"],
    "sasrec_b0_5": ["model=sasrec", "band=b0_5"],
    "sasrec_b0_5_outside": ["model=sasrec", "band=b0_5", "item_table.neighbours=outside_band"],
    "gru4rec_b0_5": ["model=gru4rec", "band=b0_5"],
    "mf_bpr_baseline": ["model=mf_bpr", "band=baseline"],
    "mf_bpr_b5_20": ["model=mf_bpr", "band=b5_20"],
}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("reference")
    return write_seq(d / "tiny.txt", synthetic_seqs(num_users=80, num_items=50, seed=3)), d / "cache"


def short_run(path, cache, run_dir, overrides) -> dict:
    with initialize_config_dir(str(CONF), version_base="1.3"):
        cfg = compose("train", overrides=[
            "data=custom", f"data.path={path}", "data.min_user_interactions=0", "data.min_item_interactions=0",
            f"cache_dir={cache}", "trainer.max_epochs=3", "eval_every=1", "data.batch_size=16",
            "data.eval_batch_size=32", "trainer=cpu", "analysis=false", "threads=1", "seed=7", *overrides])
    m = train(cfg, run_dir)
    ranks = np.load(run_dir / "test_users.npz")["rank"]
    return {"val": m["val"], "test": m["test"], "best_epoch": m["best_epoch"],
            "test_ranks_sha256": hashlib.sha256(np.ascontiguousarray(ranks, dtype=np.int64).tobytes()).hexdigest()}


@pytest.mark.parametrize("case", sorted(CASES))
def test_short_run_equals_committed_reference(data, tmp_path, case):
    threads = torch.get_num_threads()
    try:
        got = short_run(*data, tmp_path, CASES[case])
    finally:
        torch.set_num_threads(threads)
    if os.environ.get("EMBFREQ_WRITE_REFERENCE"):
        ref = json.loads(REFERENCE.read_text()) if REFERENCE.is_file() else {}
        ref[case] = got
        REFERENCE.write_text(json.dumps(ref, indent=1, sort_keys=True) + "\n")
        pytest.skip("reference written")
    ref = json.loads(REFERENCE.read_text())[case]
    assert got == ref  # exact: floats round-trip through JSON bit for bit
