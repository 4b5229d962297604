"""Shared LightningModule base: optimiser, full-ranking evaluation and metric logging."""

from __future__ import annotations

import pytorch_lightning as pl
import torch

from embfreq.errors import TrainingDiverged
from embfreq.training.memory import bound_heap_growth
from embfreq.nn.item_table import ItemTable
from embfreq.metrics import PerItemMetrics, RankingMetrics, ranks_excluding
from embfreq.training.optim import default_optimizer, with_fused

# not hyperparameters: modules and callables, rebuilt from the config (a checkpoint holds tensors and plain
# values only); the item table is recorded by its `spec()`
NOT_HPARAMS = ["item_table", "optimizer", "scheduler"]
# a test target the user has already seen: ranked like any item, or removed with the seen items
REPEAT_TARGET = ("rank", "remove")


class RankingModel(pl.LightningModule):
    """A model that scores every item for a user; subclasses define `training_loss` and `user_vectors`.

    The item table (`item_table`, an `embfreq.nn.ItemTable` with padding row 0) comes ready-made, as
    the encoder does; subclasses store it as `self.items`. Scores are user vectors dotted with its
    effective table `items.weight`. Evaluation ranks the target among all items, with the user's seen
    items removed when `remove_seen` (the target itself is never removed).
    """

    def __init__(self, item_table: ItemTable, optimizer=None, scheduler=None,
                 ks: tuple[int, ...] = (1, 5, 10, 20, 50), remove_seen: bool = True, repeat_target: str = "rank"):
        """`optimizer(params) -> torch.optim.Optimizer` (default Adam, lr 1e-3); `scheduler(optimizer)
        -> LRScheduler` or None, stepped once per epoch. Hydra passes both as `_partial_` objects."""
        super().__init__()
        if not isinstance(item_table, ItemTable):
            raise TypeError(f"item_table must be an embfreq.nn item table, got {type(item_table).__name__}")
        if item_table.padding_idx != 0:
            raise ValueError(f"item_table needs padding_idx=0 (item ids start at 1), got {item_table.padding_idx}")
        num_items = item_table.num_embeddings - 1
        self.num_items = num_items
        self.optimizer_factory = optimizer or default_optimizer()
        self.scheduler_factory = scheduler
        if repeat_target not in REPEAT_TARGET:
            raise ValueError(f"repeat_target must be one of {REPEAT_TARGET}, got {repeat_target!r}")
        if repeat_target == "remove" and not remove_seen:
            raise ValueError("repeat_target=remove removes the target with the seen items: it needs remove_seen=true")
        self.remove_seen, self.repeat_target = remove_seen, repeat_target
        self.val_metrics = RankingMetrics(ks, prefix="val/")
        self.test_metrics = RankingMetrics(ks, prefix="test/")
        self.test_item_metrics = PerItemMetrics(num_items + 1, k=10)

    @classmethod
    def load_from_checkpoint(cls, checkpoint_path, map_location=None, **kwargs):
        """Lightning's loader; the item table need not be given: it is rebuilt from its recorded
        `spec()` and the checkpoint's state (frequencies and, for neighbours, the sparse operator)."""
        if "item_table" not in kwargs:
            ckpt = torch.load(checkpoint_path, map_location="cpu", weights_only=True)
            kwargs["item_table"] = item_table_from_checkpoint(ckpt)
        kwargs.setdefault("weights_only", True)  # tensors and plain values only
        return super().load_from_checkpoint(checkpoint_path, map_location=map_location, **kwargs)

    # -- to implement -------------------------------------------------------------------------
    def training_loss(self, batch: dict) -> torch.Tensor:
        raise NotImplementedError

    def step_inputs(self, batch: dict) -> tuple:
        """The tensors `dense_loss` takes after the table: the batch's data-dependent preparation
        (packing, trimming), run eagerly also when the step is compiled."""
        raise NotImplementedError

    def dense_loss(self, table: torch.Tensor, *inputs) -> torch.Tensor:
        """The training loss from the effective table and `step_inputs`, with no data-dependent shape
        (what `compile_step` compiles); equal to `training_loss` within float rounding."""
        raise NotImplementedError

    def compile_step(self, backend: str = "inductor", fallback: bool = False) -> None:
        """Compile the training step (`dense_loss`) once for the run, with dynamic shapes; see
        `embfreq.training.compile_step`. `compiled_step.record()` says what compiling cost."""
        from embfreq.training.compile_step import CompiledStep

        self.compiled_step = CompiledStep(self.dense_loss, backend=backend, fallback=fallback)

    def compiled_loss(self, batch: dict) -> torch.Tensor:
        return self.compiled_step(self.items.weight, *self.step_inputs(batch))

    def user_vectors(self, batch: dict, table: torch.Tensor) -> torch.Tensor:
        """(B, D) user representations for evaluation batches, given the effective item table."""
        raise NotImplementedError

    # -- shared -------------------------------------------------------------------------------
    def score(self, batch: dict, reuse_buffer: bool = False) -> torch.Tensor:
        """(B, N + 1) scores. With `reuse_buffer` (no grad) they go into one matrix kept across calls,
        which the next call overwrites: a fresh matrix per evaluation batch (24 MiB on Beauty) went
        through mmap and page faults, and made a validation pass up to 2x slower here."""
        table = self.items.weight
        u = self.user_vectors(batch, table)
        # At least float32 even under mixed precision: in bf16, thousands of items would tie with the
        # target, and ties rank above it.
        dtype = torch.promote_types(torch.promote_types(u.dtype, table.dtype), torch.float32)
        with torch.autocast(u.device.type, enabled=False):
            u, table = u.to(dtype), table.to(dtype)
            if not reuse_buffer:
                return u @ table.T
            b, n = u.shape[0], table.shape[0]
            buf = getattr(self, "_score_buf", None)
            if buf is None or buf.numel() < b * n or buf.device != u.device or buf.dtype != dtype:
                buf = self._score_buf = torch.empty(b * n, device=u.device, dtype=dtype)
            # computed as (N, B) and returned as its (B, N) view: the BLAS product in that layout took
            # half the time here (Beauty, 512 x 64 x 12,102: 5.7 against 12 ms), and the ranking's
            # column sums run along the contiguous users. Same ranks on Beauty (SASRec, MF-BPR) and
            # the reference runs; only a score's last bit can differ from `u @ table.T` for some dims.
            return torch.matmul(table, u.T, out=buf[: b * n].view(n, b)).T

    def configure_optimizers(self):
        params = list(self.parameters())
        optimizer = with_fused(self.optimizer_factory, params)(params)
        if self.scheduler_factory is None:
            return optimizer
        # monitor: what ReduceLROnPlateau watches (the best checkpoint's metric); other schedulers ignore it
        monitor = getattr(getattr(self._trainer, "checkpoint_callback", None), "monitor", None) or "val/ndcg@10"
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": self.scheduler_factory(optimizer),
                                                         "interval": "epoch", "monitor": monitor}}

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        compiled = getattr(self, "compiled_step", None)
        loss = self.training_loss(batch) if compiled is None else self.compiled_loss(batch)
        if not bool(torch.isfinite(loss)):  # one sync per step; NaN weights would make every later number void
            raise TrainingDiverged(f"training diverged: loss {float(loss)} at epoch {self.current_epoch}, "
                                   f"batch {batch_idx} (try a lower model.optimizer.lr)")
        self.log("train/loss", loss, on_step=False, on_epoch=True, prog_bar=True, batch_size=len(batch["users"]))
        return loss

    def _release_score_buffer(self) -> None:
        self._score_buf = None

    def ranks(self, batch: dict) -> torch.Tensor:
        bound_heap_growth()  # else a pass can leave 0.6-0.9 GiB of fragmented heap (embfreq.training.memory)
        scores = self.score(batch, reuse_buffer=not torch.is_grad_enabled())  # ranking overwrites them
        if not self.remove_seen:
            return ranks_excluding(scores, batch["targets"])
        rows, cols = batch["seen_rows"], batch["seen_cols"]
        ranks = ranks_excluding(scores, batch["targets"], rows, cols)
        if self.repeat_target == "remove":
            # as the study's scores[seen] = -1e23: the target is removed too, so the case is a miss,
            # ranked after every item (rank = number of items)
            repeat = torch.zeros_like(ranks, dtype=torch.bool)
            repeat[rows[cols == batch["targets"][rows]]] = True
            ranks = torch.where(repeat, torch.full_like(ranks, self.num_items), ranks)
        return ranks

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        self.val_metrics.update(self.ranks(batch))

    def on_validation_epoch_end(self) -> None:
        metrics = {k: v.float() for k, v in self.val_metrics.compute().items()}
        self.log_dict(metrics, prog_bar=False, sync_dist=True)  # already global; avoids the DDP warning
        self.last_val = {k: float(v) for k, v in metrics.items()}
        self.val_metrics.reset()
        self._release_score_buffer()

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        # the best checkpoint then carries every validation metric of its epoch
        checkpoint["embfreq_val_metrics"] = getattr(self, "last_val", {})

    def on_test_epoch_start(self) -> None:
        self._test_ranks: list[tuple[torch.Tensor, torch.Tensor]] = []

    def test_step(self, batch: dict, batch_idx: int) -> None:
        r = self.ranks(batch)
        self.test_metrics.update(r)
        self.test_item_metrics.update(batch["targets"], r)
        self._test_ranks.append((batch["users"].detach().cpu(), r.detach().cpu()))

    def gathered_test_ranks(self) -> torch.Tensor:
        """(num_users,) test rank of every user, in user order, from all processes (-1: no test
        case seen). Per-user metrics, paired bootstrap and the bucket split derive from it."""
        parts = getattr(self, "_test_ranks", [])
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            gathered = [None] * torch.distributed.get_world_size()
            torch.distributed.all_gather_object(gathered, parts)
            parts = [p for g in gathered for p in g]
        if not parts:
            return torch.zeros(0, dtype=torch.long)
        users = torch.cat([u for u, _ in parts])
        ranks = torch.cat([r for _, r in parts])
        out = torch.full((int(users.max()) + 1,), -1, dtype=torch.long)
        out[users] = ranks
        return out

    def on_test_epoch_end(self) -> None:
        metrics = self.test_metrics.compute()
        self.log_dict({k: v.float() for k, v in metrics.items()}, sync_dist=True)
        self.last_test = {k: float(v) for k, v in metrics.items()}
        self.test_per_item = {k: v.detach().cpu() for k, v in self.test_item_metrics.compute().items()}
        self.test_user_ranks = self.gathered_test_ranks()
        self.test_metrics.reset()
        self.test_item_metrics.reset()
        self._release_score_buffer()


def item_table_from_checkpoint(ckpt: dict) -> ItemTable:
    """The item table of a checkpoint, rebuilt from its recorded spec with the saved frequencies; a
    neighbour table gets an empty operator here and takes the saved one with the state dict."""
    import hydra.utils

    spec = dict(ckpt.get("hyper_parameters", {}).get("item_table") or {})
    if "_target_" not in spec:
        raise ValueError("the checkpoint records no item table spec (written by an older embfreq); "
                         "pass item_table= to load_from_checkpoint")
    freq = ckpt["state_dict"]["items.item_freq"]
    n = freq.shape[0]
    operator = torch.sparse_coo_tensor(torch.zeros(2, 0, dtype=torch.long), [], (n, n))
    return hydra.utils.get_class(spec.pop("_target_"))(item_freq=freq, operator=operator, **spec)
