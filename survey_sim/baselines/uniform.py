"""The uniform baseline: 1/K for each of an item's K options."""

from __future__ import annotations

import numpy as np

from survey_sim.baselines.base import Baseline, uniform
from survey_sim.data.item import SurveyItem


class UniformBaseline(Baseline):
    """Predicts 1/K for every option; fitting learns nothing."""

    name = "uniform"

    def _fit(self, train_items: list[SurveyItem]) -> None:
        pass

    def _predict(self, items: list[SurveyItem]) -> list[np.ndarray]:
        return [uniform(item) for item in items]
