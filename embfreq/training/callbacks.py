"""Lightning callbacks of a training run: per-batch reseeding, early-stop state across a resume,
validation at the last epoch, and a progress bar that shows the latest validation NDCG@10 and the
time left (one line per epoch when stdout is not a terminal)."""

from __future__ import annotations

import sys
import time

import numpy as np
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import TQDMProgressBar


class EpochSeed(pl.Callback):
    """Reseeds torch before every training batch from (seed, epoch, batch, rank), so a resumed run
    continues identically.

    Per batch, not per epoch: Lightning creates the train dataloader iterator (which draws from the
    torch RNG) after `on_train_epoch_start` in a fresh epoch but before it in the first epoch after a
    resume, so an epoch-start seed gave the resumed epoch other dropout masks.
    """

    def __init__(self, seed: int):
        self.seed = int(seed)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        key = [self.seed & 0xFFFFFFFF, trainer.current_epoch, batch_idx, trainer.global_rank]
        torch.manual_seed(int(np.random.SeedSequence(key).generate_state(1, np.uint64)[0] >> 1))


class KeepStopped(pl.Callback):
    """On resume, a run that early stopping had ended (and that died before writing its results)
    trains no further: Lightning restores EarlyStopping's counters but not `trainer.should_stop`."""

    def __init__(self, stop_cb):
        self.stop_cb = stop_cb

    def on_train_start(self, trainer, pl_module):
        if self.stop_cb.wait_count >= self.stop_cb.patience:
            trainer.should_stop = True


class ValidateLastEpoch(pl.Callback):
    """Validation every `every` epochs and always in the last epoch (trainer.max_epochs), so a budget
    that is not a multiple of eval_every, or shorter than it, still ends with a best checkpoint and a
    test. Lightning reads `check_val_every_n_epoch` at each batch end: set here, per epoch."""

    def __init__(self, every: int):
        self.every = int(every)

    def on_train_epoch_start(self, trainer, pl_module):
        max_epochs = trainer.max_epochs
        last = max_epochs is not None and max_epochs > 0 and trainer.current_epoch >= max_epochs - 1
        trainer.check_val_every_n_epoch = 1 if last else self.every


class EpochLines(pl.Callback):
    """Progress without a terminal (a log file, a SLURM job): one line per epoch, where the bar
    would write a carriage-return update per batch."""

    def __init__(self, monitor: str = "val/ndcg@10", stream=None):
        self.monitor = monitor
        self.stream = stream

    def on_train_start(self, trainer, pl_module):
        self._t0, self._epoch0 = time.monotonic(), trainer.current_epoch

    def on_train_epoch_end(self, trainer, pl_module):
        if not trainer.is_global_zero:
            return
        epoch = trainer.current_epoch
        loss = trainer.callback_metrics.get("train/loss")
        val = getattr(pl_module, "last_val", {}).get(self.monitor)
        done = epoch + 1 - self._epoch0
        per_epoch = (time.monotonic() - self._t0) / max(done, 1)
        left = max((trainer.max_epochs or 0) - epoch - 1, 0)
        parts = [f"epoch {epoch + 1}/{trainer.max_epochs}"]
        if loss is not None:
            parts.append(f"loss {float(loss):.4f}")
        if val is not None:
            parts.append(f"{self.monitor} {val:.4f}")
        parts.append(f"{per_epoch:.1f}s/epoch" + (f", eta {_duration(per_epoch * left)}" if left else ""))
        print("  ".join(parts), file=self.stream or sys.stdout, flush=True)


class RunProgressBar(TQDMProgressBar):
    """Lightning's bar plus the last value of the monitored validation metric and an estimate of
    the time left to max_epochs (early stopping may end the run sooner)."""

    def __init__(self, monitor: str = "val/ndcg@10", **kwargs):
        super().__init__(**kwargs)
        self.monitor = monitor

    def on_train_start(self, trainer, pl_module):
        super().on_train_start(trainer, pl_module)
        self._t0, self._epoch0 = time.monotonic(), trainer.current_epoch

    def get_metrics(self, trainer, pl_module):
        items = super().get_metrics(trainer, pl_module)
        items.pop("v_num", None)
        val = getattr(pl_module, "last_val", {}).get(self.monitor)
        if val is not None:
            items[self.monitor.replace("/", "_")] = f"{val:.4f}"
        done = trainer.current_epoch - getattr(self, "_epoch0", trainer.current_epoch)
        left = (trainer.max_epochs or 0) - trainer.current_epoch
        if done > 0 and left > 0:
            per_epoch = (time.monotonic() - self._t0) / done
            items["eta"] = _duration(per_epoch * left)
        return items


def _duration(seconds: float) -> str:
    m, s = divmod(int(seconds), 60)
    h, m = divmod(m, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s"
