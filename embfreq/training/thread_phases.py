"""The thread policy applied per phase: training at its thread count, validation and test at theirs
(`embfreq.training.threads.phase_threads` chooses them)."""

from __future__ import annotations

import torch
from pytorch_lightning.callbacks import Callback


class PhaseThreads(Callback):
    """torch's intra-op thread count switched between phases: `train` for the training epochs,
    `eval` for every validation and test pass (switched back when training resumes)."""

    def __init__(self, train: int, eval: int):
        self.train, self.eval = int(train), int(eval)

    def _set(self, n: int) -> None:
        if torch.get_num_threads() != n:
            torch.set_num_threads(n)

    def on_fit_start(self, trainer, pl_module) -> None:
        self._set(self.train)

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._set(self.train)

    def on_validation_start(self, trainer, pl_module) -> None:
        self._set(self.eval)

    def on_validation_end(self, trainer, pl_module) -> None:
        if trainer.training:  # validation inside fit: the epoch's training goes on
            self._set(self.train)

    def on_test_start(self, trainer, pl_module) -> None:
        self._set(self.eval)
