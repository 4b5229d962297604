"""Print how test metrics change when already-seen targets are removed (docs/results/repeat_targets.md).

How test metrics change when a target the user has already seen is removed with the seen items
(`eval.repeat_target=remove`, the study's and RecBole's evaluation) instead of ranked (the default).

    python scripts/repeat_targets.py RUN_DIR [RUN_DIR ...]

Re-tests each run's best checkpoint both ways (no training) and prints a markdown table.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch


def test_both_ways(run_dir: str) -> dict:
    import pytorch_lightning as pl

    from embfreq.training.run_dir import restore

    cfg, dm, model = restore(run_dir)
    dm.setup("test")
    split = dm.data.split
    test = split.test
    # a repeat: the test target is among the user's earlier items (training or validation)
    in_train = split.train_items == np.repeat(test, np.diff(split.train_ptr))
    repeat = np.zeros(len(test), dtype=bool)
    repeat[split.train_users[in_train]] = True
    repeats = int((repeat | (split.valid == test)).sum())
    out = {"run": run_dir, "model": cfg.model.name, "data": cfg.data.name, "users": len(test),
           "repeats": repeats}
    for mode in ("rank", "remove"):
        model.repeat_target = mode
        trainer = pl.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False)
        t0 = time.time()
        trainer.test(model, datamodule=dm, verbose=False)
        out[mode] = {k: model.last_test[f"test/{k}"] for k in ("hr@10", "ndcg@10")}
        out[f"{mode}_seconds"] = time.time() - t0
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_dirs", nargs="+")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    from embfreq.cli.train import quiet_libraries

    quiet_libraries()
    torch.set_num_threads(args.threads)
    print("| run | test users | repeat targets | HR@10 rank | HR@10 remove | NDCG@10 rank | NDCG@10 remove |")
    print("|---|---|---|---|---|---|---|")
    for d in args.run_dirs:
        r = test_both_ways(d)
        print(f"| {r['model']} {r['data']} | {r['users']} | {r['repeats']} ({r['repeats'] / r['users']:.1%}) | "
              f"{r['rank']['hr@10']:.4f} | {r['remove']['hr@10']:.4f} | {r['rank']['ndcg@10']:.4f} | "
              f"{r['remove']['ndcg@10']:.4f} |", flush=True)


if __name__ == "__main__":
    main()
