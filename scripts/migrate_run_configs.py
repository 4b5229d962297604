"""Rewrite run configs written by earlier embfreq versions in today's layout, once, in place.

    python scripts/migrate_run_configs.py docs/results      # every config.yaml below, rewritten
    python scripts/migrate_run_configs.py --check docs/results   # exit 1 if any is not migrated

The committed runs under docs/results/ were migrated with it (issue 31), so the package reads one
layout only. What changed over the versions: keys that moved (`MOVED_KEYS`), `model.net` holding the
LightningModule's arguments, keys added later with the value that reproduces the old behaviour
(`ADDED_KEYS`), and (today's layout) the item table built by the config: `item_table._target_`, the
neighbour mode `neighbours` moved into `item_table.neighbours`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from omegaconf import OmegaConf

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from embfreq.io import flatten  # noqa: E402

# today's item-table classes, by the config name each run recorded (embfreq.nn.ITEM_TABLES)
TABLE_TARGETS = {"neighbours": "embfreq.nn.SmoothedItemEmbedding", "shared": "embfreq.nn.SharedItemEmbedding",
                 "hashed": "embfreq.nn.HashedItemEmbedding", "mixed_dim": "embfreq.nn.MixedDimItemEmbedding",
                 "qr": "embfreq.nn.QRItemEmbedding"}

# keys that moved, old -> new
MOVED_KEYS = {
    "model.max_epochs": "trainer.max_epochs",
    "model.net.lr": "model.optimizer.lr",
    "model.net.weight_decay": "model.optimizer.weight_decay",
    # the DataModule's arguments left `model` (and the top level) for `data`
    "model.sampling": "data.sampling",
    "model.batch_size": "data.batch_size",
    "model.pair_sampling": "data.pair_sampling",
    "eval.batch_size": "data.eval_batch_size",
    "num_workers": "data.num_workers",
    "bucketing": "data.bucketing",
}
OLD_OPTIMIZERS = {"adam": "torch.optim.Adam", "adamw": "torch.optim.AdamW"}
# When `model.net` held the LightningModule's arguments: the encoder each model now takes as
# `model.net`, and which of the old `model.net.*` keys are its arguments.
ENCODERS = {
    "embfreq.models.SASRec": ("embfreq.nn.sasrec.SASRecEncoder",
                              ("maxlen", "embedding_dim", "num_blocks", "num_heads", "dropout", "attend_padding")),
    "embfreq.models.GRU4Rec": ("embfreq.nn.gru4rec.GRU4RecEncoder",
                               ("embedding_dim", "hidden_dim", "num_layers", "dropout")),
    "embfreq.models.MFBPR": (None, ()),
}
MODULE_ARGS = ("embedding_dim", "loss", "init_std")  # stay on the LightningModule (model.*)
# keys added later, with the value that reproduces the old behaviour
ADDED_KEYS = {"data.drop_duplicates": False, "item_table.name": "neighbours", "eval.repeat_target": "rank",
              "monitor.metric": "val/ndcg@10", "monitor.mode": "max", "model.optimizer._partial_": True,
              "model.scheduler": None, "data.pair_sampling": "user", "data.maxlen": 50,
              "data._target_": "embfreq.data.datamodule.RecDataModule", "data.eval_batch_size": 512,
              "data.num_workers": 0, "data.bucketing": True}


def unflatten(flat: dict) -> dict:
    out: dict = {}
    for key, v in flat.items():
        node = out
        *parents, leaf = key.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = v
    return out


def _split_module_and_encoder(out: dict) -> None:
    """Old `model.net.*` (the LightningModule's arguments) -> `model.*` and the encoder's `model.net.*`."""
    target = out.pop("model.net._target_")
    encoder, encoder_args = ENCODERS.get(target, (None, ()))
    out.setdefault("model._target_", target)
    old = {k.removeprefix("model.net."): out.pop(k) for k in [k for k in out if k.startswith("model.net.")]}
    if "maxlen" in old:
        out.setdefault("data.maxlen", old["maxlen"])
    elif encoder is None:  # MF-BPR read one item per evaluation sequence
        out.setdefault("data.maxlen", 1)
    for k in MODULE_ARGS:
        if k in old:
            out.setdefault(f"model.{k}", old[k])
    if encoder is not None:
        out["model.net._target_"], out["model.net._partial_"] = encoder, True
        for k in encoder_args:
            if k in old:
                out[f"model.net.{k}"] = old[k]
    leftover = set(old) - set(encoder_args) - set(MODULE_ARGS) - {"maxlen"}
    for k in sorted(leftover):  # an argument this table does not know: kept where it was, visibly
        out[f"model.net.{k}"] = old[k]


def upgrade_flat(flat: dict) -> dict:
    """A flattened run config in today's key layout; today's configs come back unchanged."""
    out = dict(flat)
    for old, new in MOVED_KEYS.items():
        if old in out:
            value = out.pop(old)
            out.setdefault(new, value)
    if "model.net.optimizer" in out:
        name = out.pop("model.net.optimizer")
        out.setdefault("model.optimizer._target_", OLD_OPTIMIZERS.get(name, name))
    if str(out.get("model.net._target_", "")).startswith("embfreq.models."):
        _split_module_and_encoder(out)
    for key, value in ADDED_KEYS.items():
        if out.get(key) is None and not any(k.startswith(key + ".") for k in out):  # absent, not a dict
            out[key] = value
    if out.get("data.cache_dir") is None and "cache_dir" in out:
        out["data.cache_dir"] = out["cache_dir"]
    if out.get("data.seed") is None and "seed" in out:
        out["data.seed"] = out["seed"]
    return out


def item_table_layout(flat: dict) -> dict:
    """The item table as today's config builds it: `_target_`, and the neighbour mode inside it."""
    out = dict(flat)
    name = out.get("item_table.name", "neighbours")
    mode = out.pop("neighbours", None)
    if name == "neighbours":
        out.setdefault("item_table.neighbours", mode or "all")
    elif mode not in (None, "all"):
        raise ValueError(f"neighbours={mode!r} with item_table.name={name!r}: no such run can exist")
    out.setdefault("item_table._target_", TABLE_TARGETS[name])
    return out


def migrate(path: Path) -> bool:
    """Rewrite one config.yaml in today's layout; False when it already was."""
    plain = OmegaConf.to_container(OmegaConf.load(path), resolve=False)
    flat = flatten(plain)
    new = item_table_layout(upgrade_flat(flat))
    if new == flat:
        return False
    path.write_text(OmegaConf.to_yaml(OmegaConf.create(unflatten(new))))
    return True


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("roots", nargs="+", type=Path, help="directories searched for config.yaml")
    ap.add_argument("--check", action="store_true", help="rewrite nothing; exit 1 if a config is not migrated")
    args = ap.parse_args(argv)
    paths = sorted(p for root in args.roots for p in root.rglob("config.yaml"))
    stale = []
    for p in paths:
        if args.check:
            plain = OmegaConf.to_container(OmegaConf.load(p), resolve=False)
            if item_table_layout(upgrade_flat(flatten(plain))) != flatten(plain):
                stale.append(p)
        elif migrate(p):
            stale.append(p)
    verb = "not migrated" if args.check else "migrated"
    print(f"{len(stale)} of {len(paths)} config.yaml {verb}")
    for p in stale[:10]:
        print(f"  {p}")
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
