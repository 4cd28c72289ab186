"""Baseline runs: fit on the training split, predict every evaluation split, same outputs as model runs."""

from __future__ import annotations

import logging

from omegaconf import DictConfig

from survey_sim.baselines import BASELINES, make_baseline
from survey_sim.data.item import SurveyItem
from survey_sim.evaluation import expand_permutations, prediction_rows, split_metrics
from survey_sim.model.simulator import logged_metrics

log = logging.getLogger(__name__)


def run_baseline(cfg: DictConfig, splits: dict[str, list[SurveyItem]], eval_names: list[str],
                 logger) -> tuple[dict[str, list[dict]], list[dict], dict]:
    """Returns prediction rows per split, an empty history and the baseline's own counters. Each split's
    metrics go to `logger` (when given) under test/<split>/, the names a simulator run logs them by."""
    options = {k: v for k, v in cfg.method.items() if k not in ("name", "kind", "train", "uses_model")}
    if getattr(BASELINES.get(cfg.method.name), "needs_model", False):  # json_zs: the run's model
        options["model_cfg"] = cfg.model
    baseline = make_baseline(cfg.method.name, **options).fit(splits.get("train", []))
    rows = {}
    for name in eval_names:
        items, base = expand_permutations(splits[name], int(cfg.permutations))
        rows[name] = prediction_rows(items, baseline.predict(items), base)
    if logger is not None:
        logger.log_metrics({k: v for name in eval_names
                            for k, v in logged_metrics(f"test/{name}", split_metrics(rows[name])).items()}, step=0)
        logger.finalize("success")
    stats = getattr(baseline, "stats", None)
    return rows, [], ({"baseline_stats": dict(stats)} if stats else {})
