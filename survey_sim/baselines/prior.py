"""The question prior (the paper's Avg_Culture) and its leave-own-country-out variant."""

from __future__ import annotations

import numpy as np

from survey_sim.baselines.base import Baseline, current_order, original_order
from survey_sim.data.item import SurveyItem

QuestionKey = tuple[str, tuple[str, ...]]


def question_key(item: SurveyItem) -> QuestionKey:
    """A question is identified by its id and its set of option letters (so distributions align)."""
    return (item.question_id, tuple(sorted(item.letters)))


class PriorBaseline(Baseline):
    """Mean human distribution of the question over the training countries.

    Training items are grouped by question (id and option letters, see
    `question_key`); within a question the distributions of one country are first
    averaged (in the original option order, so shuffled or duplicated items, e.g.
    English and Chinese copies, count once per country), then the country means are
    averaged with equal weight. A question not seen in training gets the uniform
    distribution, recorded in `fallbacks`. Languages share the prior: the key has no
    language.
    """

    name = "prior"

    def _fit(self, train_items: list[SurveyItem]) -> None:
        per_group: dict[QuestionKey, dict[str, list[np.ndarray]]] = {}
        for item in train_items:
            dist = original_order(item, item.distribution)
            per_group.setdefault(question_key(item), {}).setdefault(item.group, []).append(dist)
        self._country_means = {
            key: {group: np.mean(dists, axis=0) for group, dists in groups.items()}
            for key, groups in per_group.items()
        }
        self._sums = {key: np.sum(list(means.values()), axis=0) for key, means in self._country_means.items()}

    @property
    def questions(self) -> list[QuestionKey]:
        """The questions seen in training."""
        return sorted(self._country_means)

    def _prior(self, item: SurveyItem) -> np.ndarray | str:
        """The prior in the item's original order, or the reason there is none."""
        key = question_key(item)
        means = self._country_means.get(key)
        if not means:
            return "question not seen in training"
        return self._sums[key] / len(means)

    def _predict(self, items: list[SurveyItem]) -> list[np.ndarray]:
        out = []
        for item in items:
            prior = self._prior(item)
            out.append(self._fallback(item, prior) if isinstance(prior, str) else current_order(item, prior))
        return out


class PriorLOOBaseline(PriorBaseline):
    """The question prior leaving out the item's own country.

    For an item of country g and question q: the equal-weight mean, over the
    training countries c != g that answered q, of country c's mean distribution of
    q (as in `PriorBaseline`). When g did not answer q in training this equals the
    prior. It falls back to uniform (recorded in `fallbacks`) when q was not seen in
    training, or when g is the only training country that answered q. Use it to
    evaluate on questions and countries that were both in training (e.g. the train
    split itself) without the item's own answer leaking into its prediction.
    """

    name = "prior_loo"

    def _prior(self, item: SurveyItem) -> np.ndarray | str:
        key = question_key(item)
        means = self._country_means.get(key)
        if not means:
            return "question not seen in training"
        if item.group not in means:
            return self._sums[key] / len(means)
        if len(means) == 1:
            return "question seen in training only for the item's own country"
        return (self._sums[key] - means[item.group]) / (len(means) - 1)
