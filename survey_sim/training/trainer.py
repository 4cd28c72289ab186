"""Build the Lightning Trainer and its logger from the `trainer` and `logger` config groups, and set the CUDA
kernels of the `speed` group."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import EarlyStopping, LearningRateMonitor, ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger, Logger, WandbLogger
from omegaconf import DictConfig

from survey_sim.errors import ConfigError
from survey_sim.pipeline.tracking import wandb_init_args
from survey_sim.training.checkpointing import AtomicCheckpointIO, RandomState
from survey_sim.training.strategy import accelerator_of, build_strategy

log = logging.getLogger(__name__)

LOGGERS = ("wandb", "csv")


def default_precision() -> str:
    """bf16 autocast on GPUs that support it, full fp32 elsewhere."""
    if torch.cuda.is_available() and torch.cuda.is_bf16_supported():
        return "bf16-mixed"
    return "32-true"


def build_logger(cfg: DictConfig, out_dir: Path, settings: Mapping) -> Logger:
    """W&B (offline unless logged in and mode=online; one run per job, see survey_sim.pipeline.tracking) or CSV logs
    inside the run folder. `settings` is the run's metrics.json["run"] entry."""
    name = cfg.logger.name
    if name == "csv":
        return CSVLogger(save_dir=str(out_dir), name="csv_logs", version="")
    if name == "wandb":
        return WandbLogger(save_dir=str(out_dir), offline=cfg.logger.mode == "offline",
                           **wandb_init_args(cfg, settings, out_dir))
    raise ConfigError(f"unknown logger {name!r}; valid: {', '.join(LOGGERS)}")


def configure_cuda_kernels(speed: DictConfig) -> None:
    """On CUDA: TF32 matmuls, and SDPA's cuDNN attention backend only with `speed.cudnn_attention` (it
    plans again for every new sequence length, and per-batch padding makes many; the issue measured batch-8
    steps 3-6x slower on an H200). Without it SDPA runs flash or memory-efficient attention."""
    if not torch.cuda.is_available():
        return
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    if hasattr(torch.backends.cuda, "enable_cudnn_sdp"):
        torch.backends.cuda.enable_cudnn_sdp(bool(speed.cudnn_attention))


BEST_CHECKPOINT = "best"


def selection_callbacks(t: DictConfig, out_dir: Path, *, validates: bool) -> list:
    """Keeping the best adapter by the monitored validation metric (checkpoints/best.ckpt), and early
    stopping when configured; none without validation splits."""
    sel = t.get("selection")
    if not validates or sel is None:
        return []
    callbacks = [ModelCheckpoint(dirpath=str(out_dir / "checkpoints"), filename=BEST_CHECKPOINT,
                                 auto_insert_metric_name=False, monitor=str(sel.monitor), mode=str(sel.mode),
                                 save_top_k=1, save_last=False, enable_version_counter=False)]
    patience = sel.get("early_stopping_patience")  # checked by the preflight (check_selection)
    if patience is not None:
        callbacks.append(EarlyStopping(monitor=str(sel.monitor), mode=str(sel.mode), patience=int(patience)))
    return callbacks


def build_trainer(cfg: DictConfig, out_dir: Path, logger: Logger | None, *, validates: bool = False,
                  placed_on: torch.device | None = None) -> L.Trainer:
    """A Trainer writing adapter-only checkpoints every N steps (and `last.ckpt`) under out_dir/checkpoints,
    atomically, with the random state (see survey_sim.training.checkpointing); with validation splits (`validates`)
    also the best one by the selection monitor (`selection_callbacks`). `placed_on`: the device of a model its
    `device_map` placed, which the Trainer must leave where it is (see `build_strategy`)."""
    t = cfg.trainer
    callbacks = [ModelCheckpoint(dirpath=str(out_dir / "checkpoints"), filename="step-{step}",
                                 auto_insert_metric_name=False, every_n_train_steps=int(t.checkpoint_every_n_steps), save_last=True,
                                 save_top_k=1, monitor=None), RandomState(),
                 *selection_callbacks(t, out_dir, validates=validates)]
    if logger is not None:
        callbacks.append(LearningRateMonitor(logging_interval="step"))  # lr-AdamW/... (the schedule)
    return L.Trainer(
        max_epochs=t.max_epochs, max_steps=t.max_steps,
        accelerator=t.accelerator if placed_on is None else accelerator_of(placed_on),
        devices=1 if placed_on is not None else t.devices,
        strategy=build_strategy(t, placed_on), num_nodes=t.num_nodes, precision=t.precision or default_precision(),
        accumulate_grad_batches=t.accumulate_grad_batches, gradient_clip_val=t.gradient_clip_val,
        val_check_interval=t.val_check_interval, check_val_every_n_epoch=t.get("check_val_every_n_epoch", 1),
        log_every_n_steps=t.log_every_n_steps,
        limit_train_batches=t.limit_train_batches, enable_progress_bar=t.enable_progress_bar,
        deterministic=t.deterministic, logger=logger if logger is not None else False, callbacks=callbacks,
        default_root_dir=str(out_dir), use_distributed_sampler=False, enable_model_summary=False,
        num_sanity_val_steps=0, plugins=[AtomicCheckpointIO()],
    )
