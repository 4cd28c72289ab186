"""A run's anchored simulator in `simulate`: the base refitted on the run's training split, with the rule's
parameters as the run fitted them (metrics.json "anchor"), applied to each option order's prediction."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

from omegaconf import DictConfig

from survey_sim.errors import ConfigError, SurveySimError
from survey_sim.modeling.anchoring import Anchor

log = logging.getLogger(__name__)


def run_anchor(run_dir: Path, cfg: DictConfig, metrics: Mapping, use: bool) -> tuple[Anchor | None, dict]:
    """The run's Anchor with its fitted parameters (None when the run is not anchored or `use` is False) and
    what was applied, for the metadata."""
    base = (cfg.get("anchor") or {}).get("base")
    if not base:
        return None, {"applied": False, "reason": "the run is not anchored"}
    if not use:
        return None, {"applied": False, "reason": "--no-anchor: the model alone, without the run's base"}
    summary = metrics.get("anchor")
    if not summary:
        raise ConfigError(f"{run_dir}: the run is anchored (anchor.base={base}) but its metrics.json has no "
                          "'anchor' record (the run did not finish); pass --no-anchor for the model alone")
    from survey_sim.pipeline.job import prepare_splits

    try:
        train = prepare_splits(cfg)[0].get("train") or []
    except SurveySimError as e:
        raise type(e)(f"{run_dir}: the anchored run's base is fitted on its training split, which could not be "
                      f"loaded ({e}); make the run's data available (SURVEY_SIM_DATA) or pass --no-anchor") from e
    anchor = Anchor(summary["base"], summary["rule"], train, base_options=cfg.anchor.get("base_options"),
                    fit_model_scale=bool(summary.get("fit_model_scale", True)))
    anchor.use_params(summary["params"])
    fitted = summary.get("fitted") or {}
    record = {"applied": True, "base": summary["base"], "rule": summary["rule"], "params": summary["params"],
              "model_used": {g: f.get("model_used") for g, f in fitted.items()},
              "fitted_on": {g: f.get("split") for g, f in fitted.items()}, "train_items": len(train)}
    log.info("anchored run: base %s refitted on %d training items, rule %s with the run's parameters %s",
             summary["base"], len(train), summary["rule"], summary["params"])
    return anchor, record
