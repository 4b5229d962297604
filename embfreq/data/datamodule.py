"""LightningDataModule: processed data -> training and evaluation loaders, plus item statistics."""

from __future__ import annotations

import inspect

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader

from embfreq.data.batches import (
    BucketBatchSampler,
    EvalDataset,
    PairTrainDataset,
    SeqTrainDataset,
    history_with_valid,
)
from embfreq.data.graph import to_torch_csr
from embfreq.data.processed import ProcessedData, load_processed
from embfreq.errors import ConfigError

SAMPLING = ("seq", "pair")
# what a data config says about its file and preprocessing: the arguments of load_processed
SOURCE_KEYS = set(inspect.signature(load_processed).parameters) - {"cache_dir", "use_cache"}


class RecDataModule(pl.LightningDataModule):
    """Leave-one-out data for one dataset.

    `source` are the arguments of `load_processed` (the file and its preprocessing: `path`,
    `bundled`, `min_user_interactions`, ...), as the flat keys of a `data` config; `name` labels it.
    `sampling="seq"` serves next-item sequences (SASRec, GRU4Rec); `"pair"` serves
    (user, positive, negative) triples (MF-BPR). Evaluation batches are the same for both.
    """

    def __init__(
        self,
        name: str | None = None,
        cache_dir: str | None = None,
        sampling: str = "seq",
        maxlen: int = 50,
        batch_size: int = 256,
        eval_batch_size: int = 512,
        num_workers: int = 0,
        bucketing: bool = True,
        pair_sampling: str = "user",
        seed: int = 0,
        processed: ProcessedData | None = None,
        **source,
    ):
        super().__init__()
        unknown = sorted(set(source) - SOURCE_KEYS)
        if unknown:
            raise ConfigError(f"data: unknown key(s) {', '.join(unknown)}; a data config takes {', '.join(sorted(SOURCE_KEYS))} "
                              "and the batch settings")
        if sampling not in SAMPLING:
            raise ConfigError(f"unknown sampling {sampling!r}; expected one of {SAMPLING}")
        if maxlen < 1:
            raise ConfigError(f"maxlen must be at least 1, got {maxlen}")
        if batch_size < 1 or eval_batch_size < 1:
            raise ConfigError(f"batch sizes must be positive, got {batch_size} and {eval_batch_size}")
        self.name = name
        self.load_args = source
        self.cache_dir = cache_dir
        self.sampling, self.maxlen = sampling, maxlen
        self.batch_size, self.eval_batch_size = batch_size, eval_batch_size
        self.num_workers, self.bucketing, self.seed = num_workers, bucketing, seed
        self.pair_sampling = pair_sampling
        self.data = processed
        self._train_ds: SeqTrainDataset | PairTrainDataset | None = None

    # -- data ---------------------------------------------------------------------------------
    def prepare_data(self) -> None:
        self._load()

    def setup(self, stage: str | None = None) -> None:
        self._load()

    def data_processed(self) -> ProcessedData:
        """The processed data (parsed, or loaded from the cache)."""
        return self._load()

    def _load(self) -> ProcessedData:
        if self.data is None:
            self.data = load_processed(**self.load_args, cache_dir=self.cache_dir)
        return self.data

    @property
    def num_users(self) -> int:
        return self._load().num_users

    @property
    def num_items(self) -> int:
        """Real items; tables have `num_items + 1` rows, row 0 being padding."""
        return self._load().num_items

    @property
    def item_freq(self) -> torch.Tensor:
        return torch.from_numpy(self._load().item_freq.astype(np.float32))

    @property
    def operator(self) -> torch.Tensor:
        return to_torch_csr(self._load().operator)

    @property
    def item_ids(self) -> np.ndarray:
        return self._load().seqs.item_ids

    # -- loaders ------------------------------------------------------------------------------
    def _loader(self, dataset, lengths: np.ndarray, batch_size: int, shuffle: bool) -> DataLoader:
        sampler = BucketBatchSampler(lengths, batch_size, self.seed, shuffle=shuffle, bucketing=self.bucketing)
        return DataLoader(
            dataset,
            batch_size=None,
            sampler=sampler,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
        )

    def train_dataset(self) -> SeqTrainDataset | PairTrainDataset:
        """Built once: batches are seeded by (seed, epoch, batch), so a dataset holds no epoch state."""
        if self._train_ds is None:
            d = self._load()
            if self.sampling == "seq":
                # bucketing: random batches, packed for an encoder that can (exact, little padding)
                self._train_ds = SeqTrainDataset(d.split.train_ptr, d.split.train_items, d.num_items, self.maxlen,
                                                 self.seed, pack=self.bucketing)
            else:
                self._train_ds = PairTrainDataset(d.split.train_ptr, d.split.train_items, d.num_items, self.seed,
                                                  self.pair_sampling)
        return self._train_ds

    def train_dataloader(self) -> DataLoader:
        ds = self.train_dataset()
        lengths = ds.lengths if self.sampling == "seq" else np.ones(len(ds), dtype=np.int64)
        return self._loader(ds, lengths, self.batch_size, shuffle=True)

    def eval_dataset(self, stage: str) -> EvalDataset:
        d = self._load()
        if stage == "valid":
            return EvalDataset(d.split.train_ptr, d.split.train_items, d.split.valid, self.maxlen)
        ptr, items = history_with_valid(d.split.train_ptr, d.split.train_items, d.split.valid)
        return EvalDataset(ptr, items, d.split.test, self.maxlen)

    def _eval_loader(self, stage: str) -> DataLoader:
        ds = self.eval_dataset(stage)
        # every user is evaluated, also one with an empty history (it then scores from padding alone)
        return self._loader(ds, np.maximum(ds.lengths, 1), self.eval_batch_size, shuffle=False)

    def val_dataloader(self) -> DataLoader:
        return self._eval_loader("valid")

    def test_dataloader(self) -> DataLoader:
        return self._eval_loader("test")
