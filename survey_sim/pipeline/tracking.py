"""W&B tracking of one job: one run per job, grouped by sweep, with the setting as tags and the
result-affecting config flat, per-split metrics in the run summary, a predictions table and, optionally, the
trained adapter as an artifact.

Lightning's WandbLogger adopts an active `wandb.run`: with Hydra's sequential launcher every job of a sweep
would log into the first job's run unless each job finishes its own (`finish_run`, called by the pipeline
whether the job succeeds or fails).
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Mapping
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from survey_sim.evaluation.metrics import FIDELITY_METRICS, METRIC_REGISTRY
from survey_sim.pipeline.outputs import flat_config

#: The run settings (metrics.json["run"]) that become `key=value` tags.
TAG_SETTINGS = ("model", "loss", "control", "shuffle", "shuffle_train", "permutations", "language")
#: Top-level config keys that do not change a run's results: left out of the W&B config.
NON_RESULT_KEYS = ("output_dir", "run_name", "resume", "logger")
#: Prefix of the run settings in the W&B config (`run.model`, `run.loss`, ...), as in metrics.json["run"].
SETTINGS_PREFIX = "run."

log = logging.getLogger(__name__)


def _text(value) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def sweep_group(cfg: DictConfig) -> str | None:
    """The W&B group: `logger.group` when set; else, in a Hydra multirun, the experiment's name (or `sweep`)
    and the sweep folder's date and time (one group per multirun, the same in every job and launcher); in a
    single run the experiment's name, or no group."""
    if cfg.logger.get("group"):
        return str(cfg.logger.group)
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized():
        return None
    hydra_cfg = HydraConfig.get()
    experiment = hydra_cfg.runtime.choices.get("experiment")
    if hydra_cfg.mode != RunMode.MULTIRUN:
        return experiment
    sweep_dir = Path(hydra_cfg.runtime.output_dir).parent  # the job folder's parent: resolved once per sweep
    return f"{experiment or 'sweep'}-{sweep_dir.parent.name}_{sweep_dir.name}"


def setting_tags(settings: Mapping) -> list[str]:
    """`model=...`, `loss=...`, `control=...`, ... for the settings a run has (a model-free baseline has no
    model, a run that does not train no loss)."""
    return [f"{key}={_text(settings[key])}" for key in TAG_SETTINGS if settings.get(key) is not None]


def result_config(cfg: DictConfig, settings: Mapping) -> dict[str, object]:
    """The run settings (`run.model`, ...) and the dotted leaves of the config groups the run uses, without
    paths and switches that do not change its results."""
    unused = set(NON_RESULT_KEYS)
    if settings.get("model") is None:
        unused |= {"model", "prompt", "trainer", "optim", "speed"}
    if settings.get("loss") is None:
        unused.add("loss")
    flat = flat_config(OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False))
    return {**{f"{SETTINGS_PREFIX}{k}": v for k, v in settings.items()},
            **{k: v for k, v in flat.items() if k.split(".")[0] not in unused}}


def previous_wandb_run_id(out_dir: Path) -> str | None:
    """The id of the newest W&B run logged in the run folder (`wandb/run-<time>-<id>` or
    `wandb/offline-run-<time>-<id>`), or None."""
    found = [(m[1], m[2]) for p in (Path(out_dir) / "wandb").glob("*run-*")
             if p.is_dir() and (m := re.fullmatch(r"(?:offline-)?run-(\d{8}_\d{6})-(\w+)", p.name))]
    return max(found)[1] if found else None


def wandb_init_args(cfg: DictConfig, settings: Mapping, out_dir: Path) -> dict:
    """WandbLogger's arguments naming and describing the run (project, group, job type, tags, config). A resumed
    job (`resume=true`) continues the W&B run it logged before in `out_dir`, by its id."""
    args = {"project": cfg.logger.project, "entity": cfg.logger.get("entity"), "name": str(cfg.run_name),
            "group": sweep_group(cfg), "job_type": settings["method"],
            "tags": setting_tags(settings) + [str(t) for t in cfg.logger.get("tags") or []],
            "config": result_config(cfg, settings)}
    if cfg.get("resume") and (run_id := previous_wandb_run_id(out_dir)):
        log.info("resume: continuing W&B run %s", run_id)
        args["id"] = run_id
    return args


def summary_metrics(by_split: Mapping[str, Mapping]) -> dict[str, float]:
    """`<split>/<metric>` for every numeric metric of every split (`C2-Q1/jsd`, `val/emd`, ...)."""
    return {f"{split}/{key}": value for split, metrics in by_split.items() for key, value in metrics.items()
            if isinstance(value, (int, float)) and not isinstance(value, bool)}


def logs_adapter(cfg: DictConfig) -> bool:
    """logger.log_adapter: true, false, or auto (on when the run logs online)."""
    setting = cfg.logger.get("log_adapter", "auto")
    return cfg.logger.get("mode") == "online" if setting == "auto" else bool(setting)


def log_results(logger, cfg: DictConfig, rows: Mapping[str, list[dict]], by_split: Mapping[str, Mapping],
                out_dir: Path) -> None:
    """When logging to W&B: the per-split metrics into the run summary, a predictions table, a per-country
    1-JSD bar chart per split, and the trained adapter as a `model` artifact (see `logs_adapter`)."""
    from lightning.pytorch.loggers import WandbLogger

    if not isinstance(logger, WandbLogger):
        return
    import wandb

    run = logger.experiment
    run.summary.update(summary_metrics(by_split))
    columns = ["split", "group", "prompt_group", "question_id", "human", "pred", *FIDELITY_METRICS]
    data = [[r[c] if not isinstance(r[c], list) else str([round(x, 4) for x in r[c]]) for c in columns]
            for split_rows in rows.values() for r in split_rows]
    logger.log_table(key="predictions", columns=columns, data=data)
    for split, split_rows in rows.items():
        by_country: dict[str, list[float]] = {}
        for r in split_rows:
            by_country.setdefault(r["group"], []).append(r["jsd"])
        table = wandb.Table(columns=["country", "jsd"],
                            data=[[c, sum(v) / len(v)] for c, v in sorted(by_country.items())])
        run.log({f"charts/{split}/jsd_by_country":
                 wandb.plot.bar(table, "country", "jsd", title=f"{METRIC_REGISTRY['jsd'].label} by country ({split})")})
    adapter = out_dir / "adapter"
    if logs_adapter(cfg) and adapter.is_dir():
        artifact = wandb.Artifact(f"adapter-{cfg.run_name}", type="model",
                                  metadata={k: v for k, v in by_split.get("val", {}).items()
                                            if isinstance(v, (int, float))})
        artifact.add_dir(str(adapter))
        run.log_artifact(artifact)


def finish_run(*, failed: bool) -> None:
    """Finish the job's W&B run (exit code 1 when the job failed), so that the next job of a sweep starts its
    own; nothing when W&B is not in use."""
    wandb = sys.modules.get("wandb")
    if wandb is not None and wandb.run is not None:
        wandb.finish(exit_code=1 if failed else 0)
