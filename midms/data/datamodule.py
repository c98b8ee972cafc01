"""One LightningDataModule for every dataset: it builds the splits from a dataset factory.

A dataset (synthetic, CelebA-HQ, LSUN-Churches, ...) is a ``torch.utils.data.Dataset`` built as
``factory(split=...)`` that yields contract samples and exposes ``spec`` (:class:`DataSpec`),
``dataset_key`` (a string naming the data for caches) and ``protocol()`` (fields for ``results.json``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import lightning as L
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, Dataset, Sampler

from midms.data.contract import DataSpec
from midms.data.images import collate_pairs
from midms.data.multi_exemplar import MultiExemplar
from midms.errors import UserError


class EpochShuffleSampler(Sampler[int]):
    """A random order per epoch that depends only on (seed, epoch), so a resumed run sees the same batches.

    Under DDP each of ``world`` processes takes every ``world``-th index of the same order (padded by
    wrapping, as ``DistributedSampler``), so together they see exactly the batches one process would.
    Lightning calls ``set_epoch`` at the start of every epoch. :meth:`resume_at` makes the next pass over
    ``epoch`` start after the samples a checkpoint had already trained on (a mid-epoch resume).
    """

    def __init__(self, length: int, seed: int = 0, rank: int = 0, world: int = 1) -> None:
        self.length, self.seed, self.epoch, self.rank, self.world = length, seed, 0, rank, world
        self.per_rank = -(-length // world)
        self._resume: tuple[int, int] | None = None  # (epoch, samples of this rank to skip)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def resume_at(self, epoch: int, skip: int) -> None:
        self.epoch, self._resume = epoch, (epoch, skip)

    def order(self, epoch: int) -> list[int]:
        """This rank's indices for ``epoch``, in order."""
        generator = torch.Generator().manual_seed(self.seed * 100_003 + epoch)
        order = torch.randperm(self.length, generator=generator).tolist()
        order += order[: self.per_rank * self.world - self.length]
        return order[self.rank :: self.world]

    def __iter__(self):
        # a generator: the order is drawn when iteration starts, after Lightning's set_epoch
        skip = 0
        if self._resume is not None and self._resume[0] == self.epoch:
            skip = self._resume[1]
        self._resume = None
        yield from self.order(self.epoch)[skip:]

    def __len__(self) -> int:
        return self.per_rank


class TranslationDataModule(L.LightningDataModule):
    def __init__(
        self,
        dataset: Callable[..., Dataset],
        batch_size: int = 16,
        eval_batch_size: int | None = None,
        num_workers: int = 0,
        train_split: str = "train",
        val_split: str | None = "val",
        eval_split: str = "test",
        seed: int = 0,
        pin_memory: bool = False,
    ) -> None:
        super().__init__()
        self.factory = dataset
        eval_batch_size = batch_size if eval_batch_size is None else eval_batch_size  # null: the training batch
        for key, value in (("batch_size", batch_size), ("eval_batch_size", eval_batch_size)):
            if int(value) < 1:
                raise UserError(f"dataset.datamodule.{key}={value}: a batch needs at least one sample; use 1 or more.")
        self.batch_size, self.eval_batch_size = batch_size, eval_batch_size
        self.num_workers, self.pin_memory, self.seed = num_workers, pin_memory, seed
        self.train_split, self.val_split, self.eval_split = train_split, val_split, eval_split
        self._splits: dict[str, Dataset] = {}
        self._resume_position: dict[str, int] | None = None
        self.exemplars_per_input = 1  # evaluation.exemplars_per_input (the runner sets it)

    def split(self, name: str) -> Dataset:
        """The dataset of one split, built on first use (so a missing split fails only when it is needed)."""
        if name not in self._splits:
            self._splits[name] = self.factory(split=name)
        return self._splits[name]

    @property
    def eval_dataset(self) -> Dataset:
        """The evaluation split; with ``exemplars_per_input`` k > 1, each input paired with k exemplars
        (:class:`~midms.data.multi_exemplar.MultiExemplar`)."""
        split = self.split(self.eval_split)
        if self.exemplars_per_input == 1:
            return split
        key = f"{self.eval_split}x{self.exemplars_per_input}"
        if key not in self._splits:
            self._splits[key] = MultiExemplar(split, self.exemplars_per_input)
        return self._splits[key]

    @property
    def spec(self) -> DataSpec:
        return self.split(self.eval_split).spec

    def _loader(
        self, ds: Dataset, batch_size: int, sampler: Sampler | None = None, collate_fn: Callable | None = None
    ) -> DataLoader:
        return DataLoader(
            ds,
            batch_size=batch_size,
            sampler=sampler,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            persistent_workers=self.num_workers > 0,
            generator=torch.Generator().manual_seed(self.seed),  # seeds the workers' base seed
            drop_last=False,
            collate_fn=collate_fn,
        )

    def train_dataloader(self) -> DataLoader:
        ds = self.split(self.train_split)
        # under DDP (trainer=ddp sets use_distributed_sampler=false) every process takes its share itself
        rank, world = (dist.get_rank(), dist.get_world_size()) if dist.is_initialized() else (0, 1)
        sampler = EpochShuffleSampler(len(ds), self.seed, rank, world)
        if self._resume_position:
            # the epoch the resumed run starts in, set now: loader workers draw indices before Lightning's set_epoch
            epoch, done = self._resume_position["epoch"], self._resume_position["batches_done"]
            if done >= -(-len(sampler) // self.batch_size):  # taken at the epoch's end: the next one starts
                sampler.set_epoch(epoch + 1)
            else:  # taken mid-epoch: the epoch continues after the batches it had trained on
                sampler.resume_at(epoch, done * self.batch_size)
            self._resume_position = None
        return self._loader(ds, self.batch_size, sampler=sampler)

    def val_dataloader(self) -> DataLoader | list:
        if self.val_split is None:
            return []
        return self._loader(self.split(self.val_split), self.eval_batch_size, collate_fn=collate_pairs)

    def eval_dataloader(self) -> DataLoader:
        """The evaluation pairs, in a fixed order, identical for every model; a pair whose files cannot be read
        is passed on as skipped (``batch["skipped_pairs"]``), never replaced by another."""
        return self._loader(self.eval_dataset, self.eval_batch_size, collate_fn=collate_pairs)

    # -- the data order's position, saved in every checkpoint ------------------------------------------

    def state_dict(self) -> dict[str, int]:
        """The epoch and the number of its batches trained so far (Lightning's own progress counters)."""
        trainer = self.trainer
        if trainer is None:
            return {}
        loop = trainer.fit_loop
        batches = loop.epoch_loop.batch_progress.current.processed
        # the epoch those batches belong to: ``completed`` (``processed`` already counts an epoch whose end hooks are
        # running, where the epoch-end checkpoint is written; the resumed run would then skip an epoch's order)
        return {"epoch": loop.epoch_progress.current.completed, "batches_done": batches}

    def load_state_dict(self, state_dict: dict[str, int]) -> None:
        self._resume_position = dict(state_dict) or None

    def protocol(self) -> dict[str, Any]:
        ds = self.eval_dataset
        return {**ds.protocol(), "num_pairs": len(ds), "dataset_key": ds.dataset_key}
