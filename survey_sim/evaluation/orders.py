"""Permutation averaging: copies of items in cyclic shifts of their option order, and their predictions mapped
back to the original option order and averaged per item (used by evaluation, calibration and simulate)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from survey_sim.data.item import SurveyItem
from survey_sim.data.transforms import cyclic_shift


def expand_permutations(items: Sequence[SurveyItem], n: int) -> tuple[list[SurveyItem], list[int]]:
    """Each item followed by its cyclic shifts 1..n-1 (capped at its option count); returns items and base index."""
    if n < 1:
        raise ValueError(f"permutations must be >= 1, got {n}")
    out, base = [], []
    for i, item in enumerate(items):
        for s in range(min(n, item.num_options)):
            out.append(item if s == 0 else cyclic_shift(item, s))
            base.append(i)
    return out, base


class OptionOrders:
    """Copies of base items in several option orders (`base[i]`: the base item of copy i; None: one copy each).

    Predictions [N, >= width] arrive in each copy's current option order; `original` maps them to the original
    order, `mean` averages them over each base item's copies, `spread` gives their min, max and std. Base
    items come in sorted order of their `base` index; `first[b]` is the first copy of base item b.
    """

    def __init__(self, items: Sequence[SurveyItem], base: Sequence[int] | None = None):
        n = len(items)
        base = np.arange(n) if base is None else np.asarray(base)
        if len(base) != n:
            raise ValueError(f"{n} items, {len(base)} base indices")
        self.items = list(items)
        self.width = max((it.num_options for it in items), default=0)
        self.valid = np.zeros((n, self.width), dtype=bool)
        self.inverse = np.zeros((n, self.width), dtype=np.int64)  # original index j -> current position
        for i, it in enumerate(items):
            self.valid[i, : it.num_options] = True
            self.inverse[i, list(it.option_order)] = np.arange(it.num_options)
        _, self.first, self.group = np.unique(base, return_index=True, return_inverse=True)
        self.group = self.group.reshape(-1)
        self.counts = np.bincount(self.group, minlength=len(self.first))

    def padded(self, probs) -> np.ndarray:
        """[N, width] float64 predictions in the copies' current order (a ragged list is zero-padded)."""
        if len(probs) != len(self.items):
            raise ValueError(f"{len(self.items)} items, {len(probs)} predictions")
        if isinstance(probs, np.ndarray) and probs.ndim == 2:
            return probs[:, : self.width].astype(np.float64)
        out = np.zeros((len(self.items), self.width))
        for i, (p, it) in enumerate(zip(probs, self.items)):
            out[i, : it.num_options] = np.asarray(p, dtype=np.float64)[: it.num_options]
        return out

    def original(self, probs) -> np.ndarray:
        """[N, width] each copy's prediction in its item's original option order (0 past its options)."""
        return np.where(self.valid, np.take_along_axis(self.padded(probs), self.inverse, axis=1), 0.0)

    def average(self, values: np.ndarray) -> np.ndarray:
        """Per base item, the mean of `values` ([N] or [N, width]) over its copies."""
        values = np.asarray(values, dtype=np.float64)
        out = np.zeros((len(self.counts), *values.shape[1:]))
        np.add.at(out, self.group, values)
        return out / self.counts.reshape(-1, *[1] * (values.ndim - 1))

    def mean(self, probs) -> np.ndarray:
        """[n_base, width] the copies' predictions in original order averaged per base item."""
        return self.average(self.original(probs))

    def spread(self, probs) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """[n_base, width] min, max and standard deviation of the copies' predictions in original order."""
        q = self.original(probs)
        low = np.full((len(self.counts), self.width), np.inf)
        high = np.full((len(self.counts), self.width), -np.inf)
        np.minimum.at(low, self.group, q)
        np.maximum.at(high, self.group, q)
        deviation = q - self.average(q)[self.group]
        return low, high, np.sqrt(self.average(deviation * deviation))
