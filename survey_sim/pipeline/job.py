"""One experiment run, from a composed config to a complete run folder.

Order: validate the config (no model loaded), load and transform the splits, tokenize every prompt
(rejecting over-long prompts and unusable option letters), then load the model, train and/or evaluate,
and write config.yaml, run_info.json, predictions.jsonl and metrics.json (last); in a multi-process
run only rank 0 writes and prints.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import lightning as L
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf

from survey_sim.baselines import BASELINES
from survey_sim.data.data_config import data_files
from survey_sim.data.holdouts import HELDOUT_GROUP_SPLIT
from survey_sim.data.item import SurveyItem
from survey_sim.data.splits import load_splits
from survey_sim.data.transforms import apply_transforms
from survey_sim.errors import ConfigError
from survey_sim.evaluation.group_metrics import group_metrics
from survey_sim.evaluation.metrics import METRIC_REGISTRY
from survey_sim.evaluation.noise_ceiling import add_ceiling
from survey_sim.evaluation.rows import split_metrics, warn_low_letter_mass
from survey_sim.io import atomic_write_json
from survey_sim.modeling.model_config import validate_model_config
from survey_sim.pipeline.outputs import run_info, write_config, write_results
from survey_sim.pipeline.preflight import check_run
from survey_sim.pipeline.printed import format_baselines, format_comparison, format_table
from survey_sim.pipeline.tracking import finish_run, log_results
from survey_sim.training.trainer import build_logger

log = logging.getLogger(__name__)

SIMULATOR_METHODS = ("zs", "ft")


def uses_model(cfg: DictConfig) -> bool:
    """Whether the run loads cfg.model: the simulator methods and a baseline that needs one (json_zs)."""
    return cfg.method.kind == "simulator" or getattr(BASELINES.get(cfg.method.name), "needs_model", False)


def validate(cfg: DictConfig) -> None:
    """Config checks that need no model and no data files."""
    method = cfg.method.name
    if method not in SIMULATOR_METHODS and method not in BASELINES:
        raise ConfigError(f"unknown method {method!r}; valid: {', '.join((*SIMULATOR_METHODS, *BASELINES))}")
    if int(cfg.permutations) < 1:
        raise ConfigError(f"permutations must be >= 1, got {cfg.permutations}")
    assumed_n = cfg.noise_ceiling.assumed_n
    if isinstance(assumed_n, bool) or not isinstance(assumed_n, (int, float)) or not assumed_n > 0:
        raise ConfigError(f"noise_ceiling.assumed_n must be a positive number of respondents, got {assumed_n!r}")
    if uses_model(cfg):
        validate_model_config(cfg.model)
    if cfg.method.kind != "simulator" and cfg.get("calibrate"):
        log.warning("calibrate=true applies to simulator methods (zs, ft) only; method %s is not calibrated", method)
    check_run(cfg)


def eval_split_names(cfg: DictConfig, splits: dict[str, list[SurveyItem]]) -> list[str]:
    names = list(cfg.eval_splits) if cfg.eval_splits else list(cfg.data.test_splits)
    if not cfg.eval_splits and HELDOUT_GROUP_SPLIT in splits:  # made by data.holdout_groups
        names.append(HELDOUT_GROUP_SPLIT)
    unknown = [n for n in names if n not in splits]
    if unknown:
        raise ConfigError(f"evaluation split(s) {unknown} unknown; available: {sorted(splits)}")
    empty = [n for n in names if not splits[n]]
    if empty:
        raise ConfigError(f"evaluation split(s) {empty} are empty after filtering")
    return names


def evaluated_data(cfg: DictConfig) -> DictConfig:
    """cfg.data with its test splits cut to those in `eval_splits` (when set): only the splits a run uses are
    loaded, required to be non-empty, and hashed into run_info.json."""
    if not cfg.eval_splits:
        return cfg.data
    data = OmegaConf.to_container(cfg.data, resolve=True)
    data["test_splits"] = [s for s in data.get("test_splits") or [] if s in set(cfg.eval_splits)]
    return OmegaConf.create(data)


def prepare_splits(cfg: DictConfig) -> tuple[dict[str, list[SurveyItem]], list[str]]:
    """Load the splits the run uses (capped by the run's max_items unless the data config caps them) and apply
    the run's control / shuffling transforms."""
    max_items = OmegaConf.to_container(cfg.max_items) if OmegaConf.is_config(cfg.max_items) else cfg.max_items
    splits = load_splits(evaluated_data(cfg), seed=int(cfg.seed), max_items=max_items)
    splits = apply_transforms(splits, {"seed": int(cfg.seed), "control": cfg.control, "shuffle": cfg.shuffle,
                                       "control_countries": cfg.data.get("control_countries")})
    return splits, eval_split_names(cfg, splits)


def is_main_process() -> bool:
    """Rank 0 of a multi-process run: from the launch environment before the trainer starts, from the
    strategy's global rank after (Lightning sets rank_zero_only.rank)."""
    return getattr(rank_zero_only, "rank", 0) == 0


#: Console lines of dependencies that say nothing about a survey-sim run: (logger or warning, message part).
NOISE = (("lightning.pytorch.utilities.rank_zero", "litlogger"),  # Lightning's advert for its cloud logger
         ("warning", "LeafSpec"),                                  # Lightning's use of a torch pytree API
         ("warning", "is_gradient_checkpointing"))                 # PEFT's call of a renamed transformers API


class DropLines(logging.Filter):
    """Drops log records whose message contains a given text."""

    def __init__(self, text: str):
        super().__init__()
        self.text = text

    def filter(self, record: logging.LogRecord) -> bool:
        return self.text not in record.getMessage()


def filter_dependency_noise() -> None:
    """Silence the NOISE lines (idempotent)."""
    import re
    import warnings

    for source, text in NOISE:
        if source == "warning":
            warnings.filterwarnings("ignore", message=f".*{re.escape(text)}")
            continue
        target = logging.getLogger(source)
        if not any(isinstance(f, DropLines) and f.text == text for f in target.filters):
            target.addFilter(DropLines(text))


def route_lightning_logs() -> None:
    """Lightning's top-level logger prints through its own console handler and then again through the root
    logger when Hydra has configured one: keep the root's handlers only (console and the job's log file)."""
    if logging.getLogger().hasHandlers():
        lightning_logger = logging.getLogger("lightning")
        for handler in list(lightning_logger.handlers):
            lightning_logger.removeHandler(handler)


def run_settings(cfg: DictConfig) -> dict:
    """What distinguishes the run among its sweep (metrics.json["run"], W&B tags and config): None for the
    model of a model-free baseline and for the loss of a run that does not train."""
    return {"model": cfg.model.name if uses_model(cfg) else None,
            "method": cfg.method.name, "control": bool(cfg.control),
            "loss": cfg.loss.name if cfg.method.name == "ft" else None, "data": cfg.data.name,
            "language": cfg.data.get("language", "en"), "shuffle": bool(cfg.shuffle.eval),
            "shuffle_train": bool(cfg.shuffle.train), "permutations": int(cfg.permutations),
            "seed": int(cfg.seed), "name": str(cfg.run_name),
            "anchor": f"{cfg.anchor.base}/{cfg.anchor.rule}" if cfg.get("anchor") and cfg.anchor.get("base") else None,
            **({"k": int(cfg.method.k)} if cfg.method.name == "knn" else {})}


def run(cfg: DictConfig) -> dict:
    """Run one configured experiment; returns the metrics written to metrics.json. The job's W&B run (if any)
    is finished on return and on error."""
    started = time.time()
    route_lightning_logs()
    filter_dependency_noise()
    validate(cfg)
    out_dir = Path(cfg.output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    L.seed_everything(int(cfg.seed), workers=True, verbose=False)
    splits, names = prepare_splits(cfg)
    eval_names = list(dict.fromkeys([s for s in ("val", "dev") if splits.get(s)] + names))
    if is_main_process():
        write_config(out_dir, cfg)
    settings = run_settings(cfg)
    logger = build_logger(cfg, out_dir, settings)
    finished = False
    try:
        metrics = run_and_write(cfg, splits, eval_names, out_dir, logger, settings, started)
        finished = True
    finally:
        finish_run(failed=not finished)
    return metrics


def run_and_write(cfg: DictConfig, splits: dict[str, list[SurveyItem]], eval_names: list[str], out_dir: Path,
                  logger, settings: dict, started: float) -> dict:
    """Predict every evaluation split, then (main process) write the results, log them and print the table."""
    if cfg.method.kind == "baseline":
        from survey_sim.baselines.runner import run_baseline
        rows, history, extra = run_baseline(cfg, splits, eval_names, logger)
    else:
        from survey_sim.pipeline.model_run import run_simulator
        rows, history, extra = run_simulator(cfg, splits, eval_names, out_dir, logger)

    for name in eval_names:
        add_ceiling(rows.get(name, []), float(cfg.noise_ceiling.assumed_n))
    by_split = {name: split_metrics(rows[name]) for name in eval_names if rows.get(name)}
    if uses_model(cfg):
        warn_low_letter_mass(by_split, float(cfg.get("letter_mass_warning", 0.5)), model=str(cfg.model.name),
                             prompt=f"{cfg.prompt.name}, chat_format={cfg.prompt.get('chat_format', 'official')}, "
                                    f"chat_template={bool(cfg.model.chat_template)}")
    if cfg.get("compare_with"):
        from survey_sim.baselines.runner import compare_with_baselines
        extra["baselines"] = compare_with_baselines(OmegaConf.to_container(cfg.compare_with, resolve=True),
                                                    splits, eval_names, int(cfg.permutations))
    metrics = {"run": settings, "splits": by_split, "history": history, **extra}
    groups = {name: group_metrics(rows[name]) for name in eval_names if rows.get(name)}
    if any(groups.values()):
        metrics["groups"] = {name: block for name, block in groups.items() if block}
    if not is_main_process():  # other ranks of a multi-process run: rank 0 writes and prints
        return metrics
    atomic_write_json(out_dir / "run_info.json", {**run_info(data_files(evaluated_data(cfg))),
                                                   "seconds": round(time.time() - started, 1)})
    write_results(out_dir, [r for name in eval_names for r in rows.get(name, [])], metrics)
    log_results(logger, cfg, rows, by_split, out_dir)
    print(f"\n{cfg.run_name}  ({'[ctrl] ' if cfg.control else ''}{cfg.method.name} on {cfg.data.name})")
    print(format_table(by_split))
    excluded = {name: m["n_emd_excluded"] for name, m in by_split.items() if m.get("n_emd_excluded")}
    if excluded:
        print(f"emd not scored (nominal questions): {', '.join(f'{k} {v}' for k, v in excluded.items())} items")
    if "before_training" in metrics:
        print(f"\nbefore training (zero-shot) -> after fine-tuning, {METRIC_REGISTRY['jsd'].label}")
        print(format_comparison(metrics["before_training"], by_split))
    if "baselines" in metrics:
        print(f"\nthe run beside the baselines (fitted on the same training split), {METRIC_REGISTRY['jsd'].label}")
        print(format_baselines(by_split, metrics["baselines"]))
    print(f"outputs: {out_dir}")
    return metrics
