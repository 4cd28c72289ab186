"""Baseline runs: fit on the training split, predict every evaluation split, same outputs as model runs."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from omegaconf import DictConfig

from survey_sim.baselines import BASELINES, TRIVIAL_BASELINES, Baseline, make_baseline
from survey_sim.data.item import SurveyItem
from survey_sim.evaluation.metrics import logged_metrics
from survey_sim.evaluation.orders import expand_permutations
from survey_sim.evaluation.rows import prediction_rows, split_metrics

log = logging.getLogger(__name__)


def run_baseline(cfg: DictConfig, splits: dict[str, list[SurveyItem]], eval_names: list[str],
                 logger) -> tuple[dict[str, list[dict]], list[dict], dict]:
    """Returns prediction rows per split, an empty history and the baseline's own counters. Each split's
    metrics go to `logger` (when given) under test/<split>/, the names a simulator run logs them by."""
    options = {k: v for k, v in cfg.method.items() if k not in ("name", "kind", "train", "uses_model")}
    if getattr(BASELINES.get(cfg.method.name), "needs_model", False):  # json_zs: the run's model
        options["model_cfg"] = cfg.model
    baseline = make_baseline(cfg.method.name, **options).fit(splits.get("train", []))
    rows = baseline_rows(baseline, splits, eval_names, int(cfg.permutations))
    if logger is not None:
        logger.log_metrics({k: v for name in eval_names
                            for k, v in logged_metrics(f"test/{name}", split_metrics(rows[name])).items()}, step=0)
        logger.finalize("success")
    stats = getattr(baseline, "stats", None)
    return rows, [], ({"baseline_stats": dict(stats)} if stats else {})


def baseline_rows(baseline: Baseline, splits: dict[str, list[SurveyItem]], eval_names: list[str],
                  permutations: int) -> dict[str, list[dict]]:
    """A fitted baseline's prediction rows for each evaluation split."""
    rows = {}
    for name in eval_names:
        items, base = expand_permutations(splits[name], permutations)
        rows[name] = prediction_rows(items, baseline.predict(items), base)
    return rows


def compare_with_baselines(baselines: Mapping[str, Mapping] | list[str], splits: dict[str, list[SurveyItem]],
                           eval_names: list[str], permutations: int) -> dict[str, dict[str, dict]]:
    """Metrics per split of each named baseline (a list of names: default options; a mapping: name -> options),
    fitted on the same training split and evaluated on the same splits as the run, plus `best_trivial`: per
    split the better of uniform and prior by 1-JSD (computed whether or not they are named)."""
    options = dict(baselines) if isinstance(baselines, Mapping) else {name: {} for name in baselines}
    names = list(options)
    out = {}
    for name in dict.fromkeys([*TRIVIAL_BASELINES, *names]):
        baseline = make_baseline(name, **dict(options.get(name) or {})).fit(splits.get("train", []))
        out[name] = {s: split_metrics(r) for s, r in
                     baseline_rows(baseline, splits, eval_names, permutations).items()}
    out["best_trivial"] = {s: {**max((out[b][s] for b in TRIVIAL_BASELINES), key=lambda m: m["jsd"]),
                               "baseline": max(TRIVIAL_BASELINES, key=lambda b: out[b][s]["jsd"])}
                           for s in eval_names}
    return {k: v for k, v in out.items() if k in names or k == "best_trivial"}
