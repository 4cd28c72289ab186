"""The country prior of subgroup items: each group predicted by its whole country's answers."""

from __future__ import annotations

import numpy as np

from survey_sim.baselines.base import Baseline, current_order, original_order
from survey_sim.data.item import SurveyItem


class CountryPriorBaseline(Baseline):
    """A subgroup item's country-level distribution: the mean of the human distributions of every subgroup
    of its country on its question (in the same evaluation split), weighted by their respondent counts.

    The cells of one attribute partition the country's respondents (less those without a value and the
    cells under the minimum size), so this is the country's distribution among them. It knows the country's
    answer to the question and nothing of the group: a simulator that steers by group should beat it, and
    its gap to the noise ceiling is what subgroup differences leave to explain. Items without attributes
    (country items, for which it would be the answer itself) fall back to uniform, recorded in `fallbacks`.
    """

    name = "country_prior"

    def _fit(self, train_items: list[SurveyItem]) -> None:
        pass  # nothing is learned from training items

    def _predict(self, items: list[SurveyItem]) -> list[np.ndarray]:
        sums: dict[tuple, np.ndarray] = {}
        weights: dict[tuple, float] = {}
        seen = set()
        for item in items:
            if not item.attributes or item.key in seen:  # permutation copies share the key
                continue
            seen.add(item.key)
            key = (item.country, item.question_id, item.language, len(item.options))
            weight = float(item.n_respondents or 1.0)
            sums[key] = sums.get(key, 0.0) + weight * original_order(item, item.distribution)
            weights[key] = weights.get(key, 0.0) + weight
        out = []
        for item in items:
            key = (item.country, item.question_id, item.language, len(item.options))
            if not item.attributes:
                out.append(self._fallback(item, "not a subgroup item (no attributes)"))
            else:
                out.append(current_order(item, sums[key] / weights[key]))
        return out
