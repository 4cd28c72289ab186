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
    displayed option, its scale position (NaN: off the scale; all NaN: a nominal item; empty: 0..K-1).
    `base`: items with the same base are one item in several option orders (evaluation batches keep them
    together and compute their common prompt prefix once, see `collate`); None for an item on its own.
    `anchor_base`: for anchored simulators, the item's base distribution (same option order as the target)."""

    index: int
    input_ids: tuple[int, ...]
    option_ids: tuple[int, ...]
    target: tuple[float, ...]
    scale: tuple[float, ...] = ()
    base: int | None = None
    anchor_base: tuple[float, ...] | None = None


class LengthGroupedBatchSampler(Sampler[list[int]]):
    """Batches of similar prompt length, so per-batch padding stays small.

    Training (`shuffle=True`): indices are shuffled with a generator seeded by (seed, epoch), cut into
    mega-batches of `mega_batches` batches, each sorted by length, then the batch order is shuffled.
    Evaluation: sorted by length, longest first; with `bases` (one per index, None for an item on its own),
    the indices of one base stay together, in one batch unless they are more than a batch. With several ranks, batches are dealt round-robin and
    the last ones repeated so every rank runs the same number of steps (duplicates are dropped when
    predictions are gathered, by item index). `resume_at(epoch, done)` makes the next iteration start
    `done` batches into that epoch (a run resumed mid-epoch continues where it was interrupted).
    """

    def __init__(self, lengths: Sequence[int], batch_size: int, *, shuffle: bool, seed: int = 0,
                 num_replicas: int = 1, rank: int = 0, mega_batches: int = 50,
                 bases: Sequence[int | None] | None = None):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if bases is not None and len(bases) != len(lengths):
            raise ValueError(f"{len(bases)} bases for {len(lengths)} items")
        self.lengths = np.asarray(lengths, dtype=np.int64)
        self.bases = None if bases is None else list(bases)
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
        if not self.shuffle and self.bases is not None:
            return self._grouped_batches()
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

    def _grouped_batches(self) -> list[list[int]]:
        """Evaluation batches of whole groups (the indices of one base), longest group first; a group larger
        than a batch is cut into batch-sized parts."""
        groups: dict[object, list[int]] = {}
        for i, b in enumerate(self.bases):
            groups.setdefault(("base", b) if b is not None else ("own", i), []).append(i)
        members = list(groups.values())
        longest = np.array([-max(self.lengths[i] for i in m) for m in members])
        batches, current = [], []
        for g in np.argsort(longest, kind="stable"):
            for part in chunks(members[g], self.batch_size):
                if len(current) + len(part) > self.batch_size:
                    batches.append(current)
                    current = []
                current += part
        return batches + [current] if current else batches

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
        n_batches = (len(self._grouped_batches()) if not self.shuffle and self.bases is not None
                     else math.ceil(len(self.lengths) / self.batch_size))
        return math.ceil(n_batches / self.num_replicas)


def chunks(items: Sequence, size: int) -> list[list]:
    """`items` cut into consecutive lists of `size` (the last may be shorter)."""
    return [list(items[i:i + size]) for i in range(0, len(items), size)]


#: Batches whose prompts share fewer leading tokens than this are not split into prefix and suffixes.
MIN_SHARED_PREFIX = 8


def shared_prefix_length(items: Sequence[EncodedItem], start: int = 0) -> int:
    """Leading tokens common to every prompt of the batch after the first `start`, leaving each prompt at least
    one token of its own."""
    first = items[0].input_ids
    limit = min(len(x.input_ids) for x in items) - 1
    n = start
    while n < limit and all(x.input_ids[n] == first[n] for x in items):
        n += 1
    return n - start


def _left_padded(rows: Sequence[Sequence[int]], pad_id: int, multiple: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """[N, T] token ids left-padded to the longest row (rounded up to `multiple`) and their [N, T] mask."""
    t = -(-max(len(r) for r in rows) // multiple) * multiple
    ids = torch.full((len(rows), t), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), t), dtype=torch.long)
    for i, r in enumerate(rows):
        if len(r):
            ids[i, t - len(r):] = torch.tensor(r, dtype=torch.long)
            mask[i, t - len(r):] = 1
    return ids, mask


def _item_prefixes(items: Sequence[EncodedItem], start: int) -> tuple[list[int], list[int]]:
    """For each row, the index of its group (rows of one base) and the length of the group's common prefix
    after `start` (0 for a group of one row)."""
    groups: dict[object, list[int]] = {}
    for row, x in enumerate(items):
        groups.setdefault(("base", x.base) if x.base is not None else ("own", row), []).append(row)
    group_of, length = [0] * len(items), [0] * len(items)
    for g, rows in enumerate(groups.values()):
        n = shared_prefix_length([items[r] for r in rows], start) if len(rows) > 1 else 0
        for r in rows:
            group_of[r], length[r] = g, n
    return group_of, length


def collate(items: Sequence[EncodedItem], pad_id: int, pad_to_multiple: int = 1,
            share_prefix: bool = False) -> dict[str, torch.Tensor]:
    """Left-pad prompts to the batch's longest (rounded up to a multiple of `pad_to_multiple`); pad options
    to the batch's largest K.

    Rounding T up bounds the number of distinct sequence lengths (GPU attention kernels plan per shape);
    left padding keeps the last position the prediction point. Returns input_ids/attention_mask [B, T],
    position_ids [B, T] (counted from the first real token, so a prompt's positions do not depend on its
    batch), option_ids/option_mask/target/option_scale [B, K] (scale positions, NaN off the scale), index [B],
    and anchor_base [B, K] when the items carry one.

    `share_prefix`, two levels, each computed once by the model:
    - the batch's prefix: when all prompts start with the same >= MIN_SHARED_PREFIX tokens (a chat template's
      system turn, the instruction's opening words), those go into `prefix_ids` [P];
    - an item's prefix: rows of one base (one item in several option orders) share the tokens before the
      options block; these go into `item_prefix_ids` [G, Q] (one row per group of rows, left-padded, a group
      of one row empty), with `item_prefix_mask` and `item_prefix_position_ids` [G, Q] and `item_of_row` [B],
      the group of each row.
    input_ids etc. then hold the rest of each prompt, position ids continuing after its prefixes.
    """
    if pad_to_multiple < 1:
        raise ValueError(f"pad_to_multiple must be >= 1, got {pad_to_multiple}")
    b = len(items)
    p = shared_prefix_length(items) if share_prefix and b > 1 else 0
    p = p if p >= MIN_SHARED_PREFIX else 0
    group_of, q = _item_prefixes(items, p) if share_prefix else ([0] * b, [0] * b)
    input_ids, attention_mask = _left_padded([x.input_ids[p + n:] for x, n in zip(items, q)], pad_id,
                                             pad_to_multiple)
    k = max(len(x.option_ids) for x in items)
    option_ids = torch.zeros((b, k), dtype=torch.long)
    option_mask = torch.zeros((b, k), dtype=torch.bool)
    target = torch.zeros((b, k), dtype=torch.float32)
    option_scale = torch.full((b, k), float("nan"), dtype=torch.float32)
    with_anchor = items[0].anchor_base is not None
    anchor_base = torch.zeros((b, k), dtype=torch.float32) if with_anchor else None
    for row, x in enumerate(items):
        m = len(x.option_ids)
        option_ids[row, :m] = torch.tensor(x.option_ids, dtype=torch.long)
        option_mask[row, :m] = True
        target[row, :m] = torch.tensor(x.target, dtype=torch.float32)
        option_scale[row, :m] = torch.tensor(x.scale or range(m), dtype=torch.float32)
        if with_anchor:
            anchor_base[row, :m] = torch.tensor(x.anchor_base, dtype=torch.float32)
    position_ids = (attention_mask.cumsum(-1) - 1).clamp(min=0) + p + torch.tensor(q)[:, None]
    batch = {
        "input_ids": input_ids, "attention_mask": attention_mask, "position_ids": position_ids,
        "option_ids": option_ids, "option_mask": option_mask, "target": target, "option_scale": option_scale,
        "index": torch.tensor([x.index for x in items], dtype=torch.long),
    }
    if with_anchor:
        batch["anchor_base"] = anchor_base
    if p:
        batch["prefix_ids"] = torch.tensor(items[0].input_ids[:p], dtype=torch.long)
    if any(q):
        first_row = {g: row for row, g in reversed(list(enumerate(group_of)))}
        ids, mask = _left_padded([items[r].input_ids[p:p + q[r]] for _, r in sorted(first_row.items())], pad_id)
        batch.update(item_prefix_ids=ids, item_prefix_mask=mask,
                     item_prefix_position_ids=(mask.cumsum(-1) - 1).clamp(min=0) + p,
                     item_of_row=torch.tensor(group_of, dtype=torch.long))
    return batch


def whole_rows(batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """input_ids, attention_mask and position_ids [B, T'] of every row with its shared prefixes put back in
    front (the batch's, then its item's, padding inside kept and masked): what a forward pass without
    a key/value cache needs."""
    ids, mask, pos = batch["input_ids"], batch["attention_mask"], batch["position_ids"]
    if "item_prefix_ids" in batch:
        rows = batch["item_of_row"]
        ids = torch.cat([batch["item_prefix_ids"][rows], ids], dim=1)
        mask = torch.cat([batch["item_prefix_mask"][rows], mask], dim=1)
        pos = torch.cat([batch["item_prefix_position_ids"][rows], pos], dim=1)
    prefix = batch.get("prefix_ids")
    if prefix is not None:
        b, p = ids.shape[0], prefix.shape[0]
        ids = torch.cat([prefix.expand(b, p), ids], dim=1)
        mask = torch.cat([mask.new_ones(b, p), mask], dim=1)
        pos = torch.cat([torch.arange(p, device=pos.device).expand(b, p), pos], dim=1)
    return ids, mask, pos
