"""Length-grouped, seeded, rank-aware batching and left-padded collation of encoded survey items."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Sampler


@dataclass(frozen=True)
class EncodedItem:
    """One item ready for the model: prompt token ids, option token ids, the human target and, per
    displayed option, its scale position (NaN: off the scale; all NaN: a nominal item; empty: 0..K-1)."""

    index: int
    input_ids: tuple[int, ...]
    option_ids: tuple[int, ...]
    target: tuple[float, ...]
    scale: tuple[float, ...] = ()


class LengthGroupedBatchSampler(Sampler[list[int]]):
    """Batches of similar prompt length, so per-batch padding stays small.

    Training (`shuffle=True`): indices are shuffled with a generator seeded by (seed, epoch), cut into
    mega-batches of `mega_batches` batches, each sorted by length, then the batch order is shuffled.
    Evaluation: sorted by length, longest first. With several ranks, batches are dealt round-robin and
    the last ones repeated so every rank runs the same number of steps (duplicates are dropped when
    predictions are gathered, by item index). `resume_at(epoch, done)` makes the next iteration start
    `done` batches into that epoch (a run resumed mid-epoch continues where it was interrupted).
    """

    def __init__(self, lengths: Sequence[int], batch_size: int, *, shuffle: bool, seed: int = 0,
                 num_replicas: int = 1, rank: int = 0, mega_batches: int = 50):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.lengths = np.asarray(lengths, dtype=np.int64)
        self.batch_size, self.shuffle, self.seed = batch_size, shuffle, seed
        self.num_replicas, self.rank, self.mega_batches = num_replicas, rank, mega_batches
        self.epoch = 0
        self._resume: tuple[int, int] | None = None

    @property
    def sampler(self) -> LengthGroupedBatchSampler:
        """This sampler itself: Lightning calls `set_epoch` on `batch_sampler.sampler` (the layout of torch's
        BatchSampler), never on the batch sampler, so without this every epoch would repeat epoch 0's order."""
        return self

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def resume_at(self, epoch: int, done: int) -> None:
        """Make the next iteration skip the first `done` batches of `epoch` (the next epoch when `done`
        covers all of them); later iterations are whole epochs again."""
        if done >= len(self):
            epoch, done = epoch + 1, 0
        self.epoch, self._resume = epoch, (epoch, done)

    def _all_batches(self) -> list[list[int]]:
        n = len(self.lengths)
        if not self.shuffle:
            order = np.argsort(-self.lengths, kind="stable")
            return [order[i:i + self.batch_size].tolist() for i in range(0, n, self.batch_size)]
        rng = np.random.default_rng([self.seed, self.epoch])
        perm = rng.permutation(n)
        mega = self.batch_size * self.mega_batches
        batches = []
        for start in range(0, n, mega):
            chunk = perm[start:start + mega]
            chunk = chunk[np.argsort(-self.lengths[chunk], kind="stable")]
            batches += [chunk[i:i + self.batch_size].tolist() for i in range(0, len(chunk), self.batch_size)]
        return [batches[i] for i in rng.permutation(len(batches))]

    def __iter__(self) -> Iterator[list[int]]:
        batches = self._all_batches()
        if self.num_replicas > 1 and batches:
            per_rank = math.ceil(len(batches) / self.num_replicas)
            batches = batches + batches[: per_rank * self.num_replicas - len(batches)]
            batches = batches[self.rank::self.num_replicas]
        if self._resume is not None:
            epoch, done = self._resume
            self._resume = None
            if epoch == self.epoch:
                batches = batches[done:]
        return iter(batches)

    def __len__(self) -> int:
        n_batches = math.ceil(len(self.lengths) / self.batch_size)
        return math.ceil(n_batches / self.num_replicas)


#: Batches whose prompts share fewer leading tokens than this are not split into prefix and suffixes.
MIN_SHARED_PREFIX = 8


def shared_prefix_length(items: Sequence[EncodedItem]) -> int:
    """Leading tokens common to every prompt of the batch, leaving each prompt at least one token of its own."""
    first = items[0].input_ids
    limit = min(len(x.input_ids) for x in items) - 1
    n = 0
    while n < limit and all(x.input_ids[n] == first[n] for x in items):
        n += 1
    return n


def collate(items: Sequence[EncodedItem], pad_id: int, pad_to_multiple: int = 1,
            share_prefix: bool = False) -> dict[str, torch.Tensor]:
    """Left-pad prompts to the batch's longest (rounded up to a multiple of `pad_to_multiple`); pad options
    to the batch's largest K.

    Rounding T up bounds the number of distinct sequence lengths (GPU attention kernels plan per shape);
    left padding keeps the last position the prediction point. Returns input_ids/attention_mask [B, T],
    position_ids [B, T] (counted from the first real token, so a prompt's positions do not depend on its
    batch), option_ids/option_mask/target/option_scale [B, K] (scale positions, NaN off the scale), index [B].

    `share_prefix`: when all prompts start with the same >= MIN_SHARED_PREFIX tokens (a chat template's system
    turn, the instruction's opening words), those go once into `prefix_ids` [P] and input_ids etc. hold the
    rest of each prompt (position ids continue from P); the model computes the prefix once for the batch.
    """
    if pad_to_multiple < 1:
        raise ValueError(f"pad_to_multiple must be >= 1, got {pad_to_multiple}")
    b = len(items)
    p = shared_prefix_length(items) if share_prefix and b > 1 else 0
    p = p if p >= MIN_SHARED_PREFIX else 0
    t = -(-max(len(x.input_ids) - p for x in items) // pad_to_multiple) * pad_to_multiple
    k = max(len(x.option_ids) for x in items)
    input_ids = torch.full((b, t), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((b, t), dtype=torch.long)
    option_ids = torch.zeros((b, k), dtype=torch.long)
    option_mask = torch.zeros((b, k), dtype=torch.bool)
    target = torch.zeros((b, k), dtype=torch.float32)
    option_scale = torch.full((b, k), float("nan"), dtype=torch.float32)
    for row, x in enumerate(items):
        n, m = len(x.input_ids) - p, len(x.option_ids)
        input_ids[row, t - n:] = torch.tensor(x.input_ids[p:], dtype=torch.long)
        attention_mask[row, t - n:] = 1
        option_ids[row, :m] = torch.tensor(x.option_ids, dtype=torch.long)
        option_mask[row, :m] = True
        target[row, :m] = torch.tensor(x.target, dtype=torch.float32)
        option_scale[row, :m] = torch.tensor(x.scale or range(m), dtype=torch.float32)
    position_ids = (attention_mask.cumsum(-1) - 1).clamp(min=0) + p
    batch = {
        "input_ids": input_ids, "attention_mask": attention_mask, "position_ids": position_ids,
        "option_ids": option_ids, "option_mask": option_mask, "target": target, "option_scale": option_scale,
        "index": torch.tensor([x.index for x in items], dtype=torch.long),
    }
    if p:
        batch["prefix_ids"] = torch.tensor(items[0].input_ids[:p], dtype=torch.long)
    return batch
