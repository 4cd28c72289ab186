"""The country prior of subgroup items: each group predicted by its whole country's answers."""

from __future__ import annotations

import numpy as np

from survey_sim.baselines.base import Baseline, current_order
from survey_sim.data.item import SurveyItem


class CountryPriorBaseline(Baseline):
    """A subgroup item's country-level distribution (`item.country_distribution`: every respondent of its
    country with a valid answer, whatever their attributes; built with the subgroup items).

    It knows the country's answer to the question and nothing of the group: a simulator that steers by
    group should beat it, and its gap to the noise ceiling is what subgroup differences leave to explain.
    Items without a country distribution (country items, for which it would be the answer itself) fall back
    to uniform, recorded in `fallbacks`.
    """

    name = "country_prior"

    def _fit(self, train_items: list[SurveyItem]) -> None:
        pass  # nothing is learned from training items

    def _predict(self, items: list[SurveyItem]) -> list[np.ndarray]:
        return [current_order(item, item.country_distribution) if item.country_distribution is not None
                else self._fallback(item, "no country-level distribution (not a subgroup item)") for item in items]
