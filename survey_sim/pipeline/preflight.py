"""Run-level config checks that need no model and no data file: each mistake is a ConfigError naming the key
and the valid choices, raised before anything slow starts (`survey_sim.pipeline.job.validate` calls
`check_run`).

Hydra itself rejects unknown group options (`model=foo` lists the available models) and unknown keys
(`trainer.foo=1`); the checks here cover values inside the configs. They stay checks by hand rather than a
dataclass schema in Hydra's ConfigStore: a schema checks types, not ranges (lr > 0, finite), and OmegaConf
reads the string 'no' as false for a bool field.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from survey_sim.errors import ConfigError
from survey_sim.evaluation.metrics import METRIC_REGISTRY, SELECTION_METRIC, VALIDATION_SPLITS
from survey_sim.modeling.anchoring import fitted_groups
from survey_sim.modeling.losses import get_loss
from survey_sim.modeling.optim import SCHEDULES
from survey_sim.pipeline.outputs import flat_config
from survey_sim.training.trainer import LOGGERS

log = logging.getLogger(__name__)

PRECISIONS = ("32-true", "bf16-mixed", "16-mixed", "bf16-true", "16-true", "64-true", "32", "16", "bf16", "64",
              "transformer-engine", "transformer-engine-float16")
#: Keys that may differ between a run and its resumption.
RESUME_FREE_KEYS = ("resume",)


def _int(value, key: str, *, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{key} must be an integer >= {minimum}, got {value!r}")
    return value


def _number(value, key: str, *, minimum: float, strict: bool = False) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value < minimum or (strict and value == minimum):
        raise ConfigError(f"{key} must be a finite number {'>' if strict else '>='} {minimum}, got {value!r}")
    return float(value)


def _bool(value, key: str) -> None:
    if not isinstance(value, bool):
        raise ConfigError(f"{key} must be true or false, got {value!r}")


def _cuda_accelerator(accelerator) -> bool:
    """Whether Lightning's `accelerator` setting picks CUDA GPUs here."""
    import torch

    return accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available())


def check_trainer(t: Mapping) -> None:
    """Numbers of the `trainer` group that Lightning would only reject after the model is loaded."""
    if t.get("strategy") == "fsdp" and not _cuda_accelerator(t.get("accelerator")):
        raise ConfigError(f"trainer=fsdp needs CUDA GPUs (Lightning runs FSDP on GPUs only), but "
                          f"trainer.accelerator={t.get('accelerator')!r} on this machine is not a GPU; use "
                          "trainer=ddp for several CPU processes")
    _int(t.get("checkpoint_every_n_steps"), "trainer.checkpoint_every_n_steps", minimum=1)
    _int(t.get("max_steps"), "trainer.max_steps", minimum=-1)
    if t.get("max_epochs") is not None:
        _int(t.get("max_epochs"), "trainer.max_epochs", minimum=-1)
    _int(t.get("accumulate_grad_batches"), "trainer.accumulate_grad_batches", minimum=1)
    _int(t.get("log_every_n_steps"), "trainer.log_every_n_steps", minimum=1)
    if t.get("gradient_clip_val") is not None:
        _number(t.get("gradient_clip_val"), "trainer.gradient_clip_val", minimum=0)
    precision = t.get("precision")
    if precision is not None and str(precision) not in PRECISIONS:
        raise ConfigError(f"trainer.precision={precision!r} is not one of null (automatic), {', '.join(PRECISIONS)}")


def check_selection(cfg: DictConfig) -> None:
    """`trainer.selection` of a fine-tuning run: a monitor that validation logs (Lightning would only miss it at
    the first validation, after training steps), a mode that keeps its better end, a patience >= 1 or null."""
    sel = cfg.trainer.get("selection")
    if sel is None:
        return
    mode, monitor = sel.get("mode"), str(sel.get("monitor"))
    if mode not in ("min", "max"):
        raise ConfigError(f"trainer.selection.mode must be 'min' or 'max', got {mode!r}")
    splits = [s for s in VALIDATION_SPLITS if cfg.data.get(f"{s}_split")]
    higher = {SELECTION_METRIC: True, **{f"{s}/loss": False for s in splits},
              **{f"{s}/{name}": m.higher_is_better for s in splits for name, m in METRIC_REGISTRY.items()}}
    if monitor not in higher:
        raise ConfigError(f"trainer.selection.monitor={monitor!r} is not logged by validation (validation splits "
                          f"loaded: {splits}); valid: {', '.join(higher)}")
    if higher[monitor] is not None and (mode == "max") != higher[monitor]:
        better = "higher" if higher[monitor] else "lower"
        raise ConfigError(f"trainer.selection.mode={mode} would keep the worst {monitor} ({better} is better): "
                          f"set trainer.selection.mode={'max' if higher[monitor] else 'min'}")
    patience = sel.get("early_stopping_patience")
    if patience is not None:
        _int(patience, "trainer.selection.early_stopping_patience", minimum=1)


def check_optim(optim: Mapping) -> None:
    """The `optim` group's numbers, which the optimiser would only reject when training starts."""
    _number(optim.get("lr"), "optim.lr", minimum=0, strict=True)
    _number(optim.get("weight_decay"), "optim.weight_decay", minimum=0)
    _int(optim.get("warmup_steps"), "optim.warmup_steps", minimum=0)
    if optim.get("schedule", "constant") not in SCHEDULES:
        raise ConfigError(f"optim.schedule={optim.get('schedule')!r} is not one of {list(SCHEDULES)}")


def check_speed(speed: Mapping) -> None:
    """The `speed` group's switches (the string 'no' would read as true)."""
    for key in ("share_prefix", "gradient_checkpointing", "cudnn_attention"):
        if speed.get(key) is not None:
            _bool(speed.get(key), f"speed.{key}")


def check_splits(cfg: DictConfig) -> None:
    """A training method needs a training split; evaluation splits must be splits the data config loads."""
    from survey_sim.data.data_config import split_names

    names = split_names(cfg.data)
    if cfg.method.get("train") and "train" not in names:
        raise ConfigError(f"method {cfg.method.name!r} trains, but data config {cfg.data.get('name')!r} has no "
                          "train_split")
    unknown = [n for n in (cfg.eval_splits or []) if n not in names]
    if unknown:
        raise ConfigError(f"evaluation split(s) {unknown} unknown; available: {sorted(names)} (set eval_splits to "
                          "some of these, or data.test_splits to choose others from the split registry)")


def check_adapter(path) -> None:
    """adapter_path: a run folder holding adapter/, an adapter folder, or a Hugging Face adapter id."""
    if not path:
        return
    p = Path(str(path)).expanduser()
    looks_local = p.is_absolute() or str(path).startswith((".", "~"))
    if p.is_dir():
        if not ((p / "adapter_config.json").is_file() or (p / "adapter" / "adapter_config.json").is_file()):
            raise ConfigError(f"adapter_path={path}: neither {p / 'adapter_config.json'} nor "
                              f"{p / 'adapter' / 'adapter_config.json'} exists (is the run finished?)")
    elif looks_local or p.exists():
        raise ConfigError(f"adapter_path={path} is not a folder (give a run folder, an adapter folder or a "
                          "Hugging Face adapter id)")


def check_output_dir(cfg: DictConfig) -> None:
    """A new run never writes into the folder of another: resume=true continues a run; its recorded config
    must be this one."""
    out_dir = Path(str(cfg.output_dir))
    if not cfg.get("resume"):
        held = [name for name in ("metrics.json", "checkpoints/last.ckpt") if (out_dir / name).is_file()]
        if held:
            raise ConfigError(f"output folder {out_dir} already holds a run ({', '.join(held)}); continue it with "
                              "resume=true, or give a new folder (hydra.run.dir=... or output_dir=...)")
        return
    recorded = out_dir / "config.yaml"
    if not (out_dir / "checkpoints" / "last.ckpt").is_file():
        log.warning("resume=true but %s holds no checkpoints/last.ckpt: training starts from the beginning",
                    out_dir)
    if not recorded.is_file():
        return
    old = flat_config(OmegaConf.to_container(OmegaConf.load(recorded), resolve=False))
    new = flat_config(OmegaConf.to_container(cfg, resolve=True))
    changed = sorted(k for k in old.keys() | new.keys()
                     if k not in RESUME_FREE_KEYS and old.get(k, "<absent>") != new.get(k, "<absent>"))
    if changed:
        shown = ", ".join(f"{k}: {old.get(k, '<absent>')!r} -> {new.get(k, '<absent>')!r}" for k in changed[:8])
        raise ConfigError(f"resume=true in {out_dir}, but the config differs from the run's config.yaml in "
                          f"{len(changed)} key(s): {shown}{' ...' if len(changed) > 8 else ''}; resume with "
                          "the same overrides, or start a new run folder")


def check_loss_order(cfg: DictConfig) -> None:
    """A Wasserstein loss whose cost is over DISPLAYED positions (`squared`, or a matrix) cannot be
    meaningful when training shuffles the options (shuffle.train): the ordinal cost uses each option's scale
    position and the `binary` cost no order, so those are fine."""
    cost = cfg.loss.get("cost", "ordinal")
    if (cfg.method.get("train") and cfg.loss.name == "wasserstein" and bool(cfg.shuffle.get("train"))
            and not (isinstance(cost, str) and cost in ("ordinal", "binary"))):
        shown = cost if isinstance(cost, str) else "a cost matrix"
        raise ConfigError(f"loss wasserstein with cost {shown} is over the displayed option positions, which "
                          "shuffle.train=true reorders at random; use cost=ordinal (scale positions) or binary")


def check_run(cfg: DictConfig) -> None:
    """All run-level checks (see the module docstring)."""
    seed = cfg.get("seed")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ConfigError(f"seed must be an integer, got {seed!r}")
    if cfg.logger.get("name") not in LOGGERS:
        raise ConfigError(f"unknown logger {cfg.logger.get('name')!r}; valid: {', '.join(LOGGERS)}")
    if cfg.method.get("kind") == "simulator":
        check_trainer(cfg.trainer)
        if cfg.model.get("device_map") and str(cfg.trainer.strategy) not in ("auto", "single_device"):
            raise ConfigError(f"model.device_map places the model itself, in one process; trainer.strategy="
                              f"{cfg.trainer.strategy} would place or shard it again: use trainer.strategy=auto "
                              "(or drop model.device_map)")
        check_optim(cfg.optim)
        check_speed(cfg.speed)
        if cfg.method.get("train"):
            check_selection(cfg)
        get_loss(cfg.loss.name, **{k: v for k, v in cfg.loss.items() if k != "name"})  # the loss's options
        check_loss_order(cfg)
    anchor = cfg.get("anchor")
    if anchor is not None and anchor.get("base") and anchor.get("fit"):
        fitted_groups(anchor)
    check_splits(cfg)
    check_adapter(cfg.get("adapter_path"))
    check_output_dir(cfg)
