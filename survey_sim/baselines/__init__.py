"""Baselines (uniform, question prior, leave-one-out prior, nearest neighbour, nearest countries, the model's JSON
answer, the country prior of subgroup items) and their registry."""

from __future__ import annotations

import inspect

from survey_sim.baselines.base import Baseline
from survey_sim.baselines.country_knn import CountryKNNBaseline
from survey_sim.baselines.country_prior import CountryPriorBaseline
from survey_sim.baselines.json_zs import JSONZeroShotBaseline
from survey_sim.baselines.knn import KNNBaseline
from survey_sim.baselines.prior import PriorBaseline, PriorLOOBaseline
from survey_sim.baselines.uniform import UniformBaseline
from survey_sim.errors import ConfigError

BASELINES: dict[str, type[Baseline]] = {
    cls.name: cls for cls in (UniformBaseline, PriorBaseline, PriorLOOBaseline, KNNBaseline, CountryKNNBaseline,
                               JSONZeroShotBaseline, CountryPriorBaseline)
}
#: The free baselines a simulator must beat: uniform on new questions, the question prior on trained ones.
TRIVIAL_BASELINES = ("uniform", "prior")


def make_baseline(name: str, **cfg) -> Baseline:
    """The baseline registered as `name`, built with the keyword options `cfg`."""
    if name not in BASELINES:
        raise ConfigError(f"unknown baseline {name!r}; choose one of: {', '.join(sorted(BASELINES))}")
    cls = BASELINES[name]
    params = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
    unknown = sorted(set(cfg) - set(params))
    if unknown:
        accepted = ", ".join(params) if params else "none"
        raise ConfigError(f"baseline {name!r} got unknown option(s) {', '.join(unknown)}; accepted: {accepted}")
    return cls(**cfg)


__all__ = ["BASELINES", "TRIVIAL_BASELINES", "Baseline", "CountryKNNBaseline", "CountryPriorBaseline",
           "JSONZeroShotBaseline", "KNNBaseline", "PriorBaseline", "PriorLOOBaseline", "UniformBaseline",
           "make_baseline"]
