"""A run that diverged ends `failed`, never reported with a test metric.

`DivergenceGuard` (callbacks.divergence in embfreq/conf/callbacks/default.yaml) raises
`TrainingDiverged` (train.py records the run as failed with the reason; nothing is tested) when

- the training loss explodes: an epoch's mean loss exceeds `loss_factor` (3) times the loss of the
  run's first batch, the untrained model's loss (~0.69 for MF-BPR's BPR, ~1.39 for BCE, ~log(items)
  for cross-entropy). A healthy run stays below 1x (the default runs of the three models on LastFM:
  at most 0.999x, in epoch 0); learning rates of 0.3 to 1000 reach 5.8x to 1e4x;
- a parameter becomes non-finite or larger in magnitude than `max_abs_param` (checked after every
  training epoch, over every parameter: encoder, user vectors and every item table);
- the scores of a validation batch (the first one of each validation) are non-finite or larger in
  magnitude than `max_abs_score`: the ranking code would rank a NaN score last, silently;
- the monitored validation metric is not finite, or collapses: it falls below `collapse_fraction`
  times its best value so far, once that best counted at least `collapse_min_hits` validation hits
  (HR@10 times the validation users; fewer hits are too few to tell a collapse from noise).

Every limit is a setting (null switches that check off); `callbacks.divergence=null` removes the
guard. The guard draws no random numbers and changes no weights: a healthy run's numbers are
unchanged. Its state (the first loss, the best validation) is saved in checkpoints, so a resumed
run keeps its reference.
"""

from __future__ import annotations

import math

import pytorch_lightning as pl
import torch

from embfreq.errors import TrainingDiverged

HINT = "try a lower model.optimizer.lr"


class DivergenceGuard(pl.Callback):
    def __init__(self, loss_factor: float | None = 3.0, max_abs_param: float | None = 1e4,
                 max_abs_score: float | None = 1e6, collapse_fraction: float | None = 0.1,
                 collapse_min_hits: int = 20, monitor: str = "val/ndcg@10", hits_metric: str = "val/hr@10"):
        for name, v in (("loss_factor", loss_factor), ("max_abs_param", max_abs_param),
                        ("max_abs_score", max_abs_score)):
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0
                                  or not math.isfinite(v)):
                raise ValueError(f"{name} must be a positive number or null, got {v!r}")
        if loss_factor is not None and loss_factor <= 1:
            raise ValueError(f"loss_factor must be > 1 (a factor over the first loss), got {loss_factor!r}")
        if collapse_fraction is not None and not (isinstance(collapse_fraction, (int, float))
                                                  and 0 < collapse_fraction < 1):
            raise ValueError(f"collapse_fraction must be in (0, 1) or null, got {collapse_fraction!r}")
        if isinstance(collapse_min_hits, bool) or not isinstance(collapse_min_hits, int) or collapse_min_hits < 1:
            raise ValueError(f"collapse_min_hits must be an integer >= 1, got {collapse_min_hits!r}")
        self.loss_factor, self.max_abs_param, self.max_abs_score = loss_factor, max_abs_param, max_abs_score
        self.collapse_fraction, self.collapse_min_hits = collapse_fraction, collapse_min_hits
        self.monitor, self.hits_metric = monitor, hits_metric
        self.first_loss: float | None = None
        self.best: float | None = None  # best monitored value that counted enough hits, and its epoch
        self.best_epoch: int | None = None
        self._sum: torch.Tensor | None = None
        self._count = 0

    # -- state across a resume ----------------------------------------------------------------
    def state_dict(self) -> dict:
        return {"first_loss": self.first_loss, "best": self.best, "best_epoch": self.best_epoch}

    def load_state_dict(self, state: dict) -> None:
        self.first_loss = state.get("first_loss")
        self.best, self.best_epoch = state.get("best"), state.get("best_epoch")

    # -- training loss ------------------------------------------------------------------------
    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._sum, self._count = None, 0

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        if not isinstance(loss, torch.Tensor):
            return
        loss = loss.detach().float()
        if self.first_loss is None:
            self.first_loss = float(loss)  # one sync per run; the model refuses a non-finite loss itself
        # summed on the device: no sync per step
        self._sum = loss if self._sum is None else self._sum + loss
        self._count += 1

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        epoch = trainer.current_epoch
        if self._count and self.loss_factor is not None and self.first_loss and self.first_loss > 0:
            mean = float(self._sum) / self._count
            if _any_rank(trainer, not math.isfinite(mean) or mean > self.loss_factor * self.first_loss):
                raise TrainingDiverged(
                    f"training diverged: mean loss {mean:.4g} in epoch {epoch} is {mean / self.first_loss:.3g}x "
                    f"the first batch's {self.first_loss:.4g} (limit callbacks.divergence.loss_factor="
                    f"{self.loss_factor:g}); {HINT}")
        self._sum, self._count = None, 0
        self.check_parameters(pl_module, epoch)

    def check_parameters(self, pl_module, epoch: int) -> None:
        if self.max_abs_param is None:
            return
        worst_name, worst = None, 0.0
        with torch.no_grad():
            for name, p in pl_module.named_parameters():
                if p.numel() == 0:
                    continue
                m = float(p.detach().abs().max())  # NaN propagates through max
                if not math.isfinite(m) or m > worst:
                    worst_name, worst = name, m
                    if not math.isfinite(m):
                        break
        if not math.isfinite(worst) or worst > self.max_abs_param:
            raise TrainingDiverged(
                f"training diverged: parameter {worst_name} has max |value| {worst:.6g} after epoch {epoch} "
                f"(limit callbacks.divergence.max_abs_param={self.max_abs_param:g}); {HINT}")

    # -- validation ---------------------------------------------------------------------------
    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        if batch_idx != 0 or trainer.sanity_checking or self.max_abs_score is None:
            return
        with torch.no_grad():
            worst = float(pl_module.score(batch).abs().max())  # a fresh matrix: the ranking's buffer is kept
        if _any_rank(trainer, not math.isfinite(worst) or worst > self.max_abs_score):
            raise TrainingDiverged(
                f"training diverged: validation scores reach |{worst:.4g}| at epoch {trainer.current_epoch} "
                f"(limit callbacks.divergence.max_abs_score={self.max_abs_score:g}); {HINT}")

    def on_validation_end(self, trainer, pl_module) -> None:
        if trainer.sanity_checking:
            return
        val = getattr(pl_module, "last_val", {}) or {}
        value = val.get(self.monitor)
        if value is None:
            return
        epoch = trainer.current_epoch
        if not math.isfinite(value):
            raise TrainingDiverged(f"training diverged: {self.monitor} is {value} at epoch {epoch}; {HINT}")
        if self.collapse_fraction is None:
            return
        if self.best is not None and value < self.collapse_fraction * self.best:
            raise TrainingDiverged(
                f"training diverged: {self.monitor} collapsed to {value:.4g} at epoch {epoch} from {self.best:.4g} "
                f"at epoch {self.best_epoch} (below callbacks.divergence.collapse_fraction="
                f"{self.collapse_fraction:g} of its best); {HINT}")
        users = _validation_users(trainer)
        hits = val.get(self.hits_metric)
        if users is None or hits is None or hits * users < self.collapse_min_hits:
            return  # too few hits to call a later fall a collapse
        if self.best is None or value > self.best:
            self.best, self.best_epoch = float(value), int(epoch)


def _any_rank(trainer, flag: bool) -> bool:
    """Under DDP each process sees its own batches: all stop when one does, else the others would
    wait for it forever."""
    strategy = getattr(trainer, "strategy", None)
    if strategy is None or getattr(trainer, "world_size", 1) == 1:
        return flag
    return bool(strategy.reduce_boolean_decision(flag, all=False))


def _validation_users(trainer) -> int | None:
    dm = getattr(trainer, "datamodule", None)
    try:
        return int(len(dm.data_processed().split.valid))
    except (AttributeError, TypeError):
        return None
