"""`SurveyDataModule`: split-aware, tokenized-once, length-grouped batches of survey items."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Any

import lightning as L
import torch
from torch.utils.data import DataLoader

from survey_sim.data.batching import EncodedItem, LengthGroupedBatchSampler, collate
from survey_sim.data.item import SurveyItem
from survey_sim.errors import ConfigError, TokenizerError
from survey_sim.modeling.option_tokens import check_prompt_end, option_token_ids, paper_letter_ids
from survey_sim.modeling.prompts import PromptBuilder

log = logging.getLogger(__name__)


def displayed_scale(item: SurveyItem) -> tuple[float, ...]:
    """Scale position of each option as displayed (after any shuffling): the ORIGINAL option's position, so
    distances never depend on the display order; NaN off the scale, all NaN for a nominal item."""
    nan = float("nan")
    if not item.ordinal:
        return (nan,) * item.num_options
    positions = item.scale_positions()
    return tuple(nan if positions[j] is None else positions[j] for j in item.option_order)


class SurveyDataModule(L.LightningDataModule):
    """Serves the train split, the validation split and any number of named evaluation splits.

    `splits` maps split names to items (already transformed: control, shuffling, language). Every item is
    tokenized once by `encode()`, which also rejects prompts longer than `max_length` and option letters
    the tokenizer cannot produce as one token, before any model is loaded. `train_epoch_items`: other
    versions of the training split (same items, e.g. options shuffled anew); epoch e trains on version
    e mod (1 + len(train_epoch_items)), version 0 being `splits[train_split]`. Batches carry
    input_ids/attention_mask/position_ids [B, T] (left-padded per batch), option_ids/option_mask/target
    [B, K] and the item index within its split; with `base_fn` (items -> their base distributions, for
    anchored simulators) also base [B, K]. `val_split` may name several splits (val and dev), each its own
    validation dataloader. `bucket_multiple` > 1 rounds each batch's padded length up
    to a multiple of it (fewer distinct shapes for GPU attention kernels); `share_prefix` puts the leading
    tokens common to a batch's prompts into `prefix_ids`, computed once per batch, and marks the copies of
    one item in several option orders (`order_bases`: permutation averaging, simulate's shifts); evaluation
    batches keep them together and compute the prompt tokens they share once per item (see `collate`).

    Its `state_dict` (saved in every training checkpoint) holds the training data position, the epoch and
    the batches of it already trained on, so a run resumed from a mid-epoch checkpoint goes on with the
    batches it had not seen yet instead of starting the epoch again. Loaders draw no global random numbers,
    so resuming leaves the random stream (dropout) as in an uninterrupted run.
    """

    def __init__(self, splits: Mapping[str, Sequence[SurveyItem]], tokenizer, prompt_builder: PromptBuilder, *,
                 batch_size: int = 8, eval_batch_size: int = 32, seed: int = 0, max_length: int | None = None,
                 train_split: str | None = "train", val_split: str | Sequence[str] | None = "val",
                 eval_splits: Sequence[str] = (), num_workers: int = 0, bucket_multiple: int = 1,
                 share_prefix: bool = False, train_epoch_items: Sequence[Sequence[SurveyItem]] = (),
                 base_fn: Callable[[Sequence[SurveyItem]], Sequence[Sequence[float]]] | None = None):
        super().__init__()
        val_splits = [val_split] if isinstance(val_split, str) else list(val_split or [])
        missing = [s for s in [train_split, *val_splits, *eval_splits] if s is not None and s not in splits]
        if missing:
            raise ConfigError(f"split(s) {missing} not available; available splits: {sorted(splits)}")
        self.items = {name: list(items) for name, items in splits.items()}
        base = len(self.items[train_split]) if train_split is not None else 0
        if any(len(v) != base for v in train_epoch_items):
            raise ConfigError(f"train_epoch_items: every version must hold the {base} items of the training split")
        self.train_versions = [list(v) for v in train_epoch_items]
        self.tokenizer, self.prompt_builder = tokenizer, prompt_builder
        self.batch_size, self.eval_batch_size, self.seed = batch_size, eval_batch_size, seed
        self.max_length, self.num_workers = max_length, num_workers
        self.train_split, self.val_splits = train_split, val_splits
        self.val_split = val_splits[0] if val_splits else None  # the new-question validation split
        self.eval_split_names = list(eval_splits)
        self.base_fn = base_fn
        self.encoded: dict[str, list[EncodedItem]] = {}
        self.encoded_train_versions: list[list[EncodedItem]] = []
        pad = tokenizer.pad_token_id
        if pad is None:
            raise TokenizerError(f"tokenizer {tokenizer.name_or_path!r} has no pad token")
        if bucket_multiple < 1:
            raise ConfigError(f"bucket_multiple must be >= 1, got {bucket_multiple}")
        self.share_prefix = share_prefix
        self._collate = partial(collate, pad_id=pad, pad_to_multiple=bucket_multiple, share_prefix=share_prefix)
        self._train_sampler: LengthGroupedBatchSampler | None = None
        self._position = (0, 0)  # (epoch, training batches done in it)
        self._resume: tuple[int, int] | None = None

    @property
    def used_splits(self) -> list[str]:
        names = [self.train_split, *self.val_splits, *self.eval_split_names]
        return list(dict.fromkeys(s for s in names if s is not None))

    def encode(self) -> None:
        """Tokenize every item of the used splits once (idempotent)."""
        for name in self.used_splits:
            if name not in self.encoded:
                self.encoded[name] = self._encode_items(name, self.items[name])
                log.info("split %s: %d items encoded", name, len(self.encoded[name]))
        if len(self.encoded_train_versions) < len(self.train_versions):
            self.encoded_train_versions = [self._encode_items(self.train_split, v) for v in self.train_versions]
            log.info("split %s: %d more versions encoded (one per epoch)", self.train_split,
                     len(self.train_versions))

    def _encode_items(self, split: str, items: Sequence[SurveyItem]) -> list[EncodedItem]:
        """Encoded items; with prefix sharing, the copies of one item in several option orders share a `base`
        (see `order_bases`); with `base_fn`, each carries its anchor's base distribution."""
        bases = order_bases(items) if self.share_prefix else [None] * len(items)
        anchors = self.base_fn(items) if self.base_fn is not None else [None] * len(items)
        return [self._encode_item(split, i, item, base, anchor)
                for i, (item, base, anchor) in enumerate(zip(items, bases, anchors))]

    def _encode_item(self, split: str, index: int, item: SurveyItem, base: int | None = None,
                     anchor_base=None) -> EncodedItem:
        ids = self.prompt_builder.encode(item)
        if self.max_length is not None and len(ids) > self.max_length:
            raise TokenizerError(
                f"split {split}, item {index} ({item.group!r}, question {item.question_id!r}): the prompt has "
                f"{len(ids)} tokens, longer than the model's context of {self.max_length}")
        try:
            prompt_end = self.prompt_builder.answer_prefix(item.language)
            check_prompt_end(self.tokenizer, ids, prompt_end)
            if self.prompt_builder.letter_rule == "paper":
                options = paper_letter_ids(self.tokenizer, item.letters, item.options)
            else:
                options = option_token_ids(self.tokenizer, item.letters, prompt_end)
        except TokenizerError as err:
            raise TokenizerError(f"split {split}, item {index} ({item.group!r}, question "
                                 f"{item.question_id!r}): {err}") from err
        return EncodedItem(index, tuple(ids), tuple(options), item.distribution, displayed_scale(item), base,
                           None if anchor_base is None else tuple(float(b) for b in anchor_base))

    def setup(self, stage: str | None = None) -> None:
        self.encode()

    def _rank(self) -> tuple[int, int]:
        trainer = getattr(self, "trainer", None)
        if trainer is None:
            return 1, 0
        return trainer.world_size, trainer.global_rank

    def _loader(self, split: str, *, train: bool) -> DataLoader:
        data = self.encoded[split]
        replicas, rank = self._rank()
        sampler = LengthGroupedBatchSampler(
            [len(x.input_ids) for x in data], self.batch_size if train else self.eval_batch_size,
            shuffle=train, seed=self.seed, num_replicas=replicas, rank=rank,
            bases=None if train or not self.share_prefix else [x.base for x in data])
        if train:
            self._train_sampler = sampler
            if self.encoded_train_versions:
                data = EpochVersions([data, *self.encoded_train_versions], sampler)
            if self._resume is not None:
                sampler.resume_at(*self._resume)
                self._resume = None
        # A private generator: a DataLoader draws its base seed from the global one otherwise.
        return DataLoader(data, batch_sampler=sampler, collate_fn=self._collate, num_workers=self.num_workers,
                          generator=torch.Generator().manual_seed(self.seed))

    # ---- training data position (checkpointed) ---------------------------------------------------------
    def on_before_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """Counts the training batches handed to the model (after Lightning's prefetching)."""
        trainer = self.trainer
        if trainer is not None and trainer.training and self._train_sampler is not None:
            epoch, done = self._position
            epoch_now = self._train_sampler.epoch
            self._position = (epoch_now, (done if epoch == epoch_now else 0) + 1)
        return batch

    def state_dict(self) -> dict[str, int]:
        epoch, done = self._position
        return {"train_epoch": epoch, "train_batches_done": done}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._position = (int(state_dict["train_epoch"]), int(state_dict["train_batches_done"]))
        self._resume = self._position

    def train_dataloader(self) -> DataLoader:
        if self.train_split is None:
            raise ConfigError("no training split configured")
        return self._loader(self.train_split, train=True)

    def val_dataloader(self) -> DataLoader | list[DataLoader]:
        loaders = [self._loader(s, train=False) for s in self.val_splits]
        return loaders[0] if len(loaders) == 1 else loaders

    def test_dataloader(self) -> list[DataLoader]:
        return [self._loader(s, train=False) for s in self.eval_split_names]

    def predict_dataloader(self) -> list[DataLoader]:
        return self.test_dataloader()


def order_bases(items: Sequence[SurveyItem]) -> list[int | None]:
    """Per item, the index of the first item of `items` that is the same item in some option order (same
    group, prompt group, question and option set, any order), or None when it is the only one."""
    first: dict[tuple, int] = {}
    keys = [(it.group, it.prompt_group, it.question_id, it.question, it.language, tuple(sorted(it.options)))
            for it in items]
    for i, key in enumerate(keys):
        first.setdefault(key, i)
    counts = {key: 0 for key in first}
    for key in keys:
        counts[key] += 1
    return [first[key] if counts[key] > 1 else None for key in keys]


class EpochVersions(torch.utils.data.Dataset):
    """Item i of the version that the sampler's current epoch uses (epoch mod the number of versions)."""

    def __init__(self, versions: Sequence[Sequence[EncodedItem]], sampler: LengthGroupedBatchSampler):
        self.versions, self.sampler = versions, sampler

    def __len__(self) -> int:
        return len(self.versions[0])

    def __getitem__(self, index: int) -> EncodedItem:
        return self.versions[self.sampler.epoch % len(self.versions)][index]
