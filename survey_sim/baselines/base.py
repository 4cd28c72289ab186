"""`Baseline`: the interface shared by the non-model predictors, and option-order helpers."""

from __future__ import annotations

import logging

import numpy as np

from survey_sim.data.item import SurveyItem
from survey_sim.errors import SurveySimError

log = logging.getLogger(__name__)


def original_order(item: SurveyItem, values) -> np.ndarray:
    """Values given in the item's current option order, rearranged into its original order."""
    out = np.empty(item.num_options, dtype=np.float64)
    out[list(item.option_order)] = np.asarray(values, dtype=np.float64)
    return out


def current_order(item: SurveyItem, values) -> np.ndarray:
    """Values given in the item's original option order, rearranged into its current order."""
    return np.asarray(values, dtype=np.float64)[list(item.option_order)]


def uniform(item: SurveyItem) -> np.ndarray:
    return np.full(item.num_options, 1.0 / item.num_options)


class Baseline:
    """A predictor fitted on training items that returns one distribution per item.

    `predict` returns, for each item, probabilities over the item's options in its
    CURRENT order (the runner maps them back to the original order). Items that a
    baseline cannot predict get the uniform distribution; those are recorded in
    `fallbacks` (item key, reason) for the last `predict` call and logged, and
    counted in `stats` over all `predict` calls since `fit` (items, fallbacks,
    fallbacks per split and per reason), which a run stores in its metrics.json.
    """

    name: str = ""

    def __init__(self) -> None:
        self.fallbacks: list[tuple[tuple[str, str, str], str]] = []
        self._fitted = False
        self.stats: dict = {}

    @property
    def n_fallback(self) -> int:
        """How many items of the last `predict` call got the uniform fallback."""
        return len(self.fallbacks)

    def fit(self, train_items: list[SurveyItem]) -> Baseline:
        train_items = list(train_items)
        self._fit(train_items)
        self._fitted = True
        self.stats = {"train_items": len(train_items), "items": 0, "fallback": 0, "fallback_by_split": {},
                      "fallback_reasons": {}}
        return self

    def predict(self, items: list[SurveyItem], *, warn: bool = True) -> list[np.ndarray]:
        """Distributions in each item's current option order; fallbacks are counted, and logged as a warning
        unless `warn` is false (a caller for which uniform is the intended answer, e.g. an anchor's base on
        new questions, logs them itself)."""
        if not self._fitted:
            raise SurveySimError(f"baseline {self.name!r}: call fit(train_items) before predict()")
        self.fallbacks = []
        items = list(items)
        preds = self._predict(items)
        self.stats["items"] += len(items)
        self.stats["fallback"] += len(self.fallbacks)
        if self.fallbacks:
            reasons: dict[str, int] = {}
            for _, why in self.fallbacks:
                reasons[why] = reasons.get(why, 0) + 1
            detail = "; ".join(f"{n} {why}" for why, n in sorted(reasons.items()))
            log.log(logging.WARNING if warn else logging.INFO, "%s: %d of %d items fell back to the uniform "
                    "distribution (%s)", self.name, len(self.fallbacks), len(items), detail)
        return preds

    def _fallback(self, item: SurveyItem, reason: str) -> np.ndarray:
        self.fallbacks.append((item.key, reason))
        by_split, by_reason = self.stats["fallback_by_split"], self.stats["fallback_reasons"]
        by_split[item.split] = by_split.get(item.split, 0) + 1
        by_reason[reason] = by_reason.get(reason, 0) + 1
        return uniform(item)

    def _fit(self, train_items: list[SurveyItem]) -> None:
        raise NotImplementedError

    def _predict(self, items: list[SurveyItem]) -> list[np.ndarray]:
        raise NotImplementedError
