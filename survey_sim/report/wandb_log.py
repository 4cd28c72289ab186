"""The report's tidy results as a wandb.Table in an offline W&B run."""

from __future__ import annotations

from pathlib import Path

from survey_sim.errors import ConfigError


def log_to_wandb(frame, out: Path, project: str) -> None:
    """Log the tidy results as a wandb.Table in an offline W&B run under `out`."""
    try:
        import wandb
    except ImportError as exc:
        raise ConfigError("--wandb needs the wandb package: pip install wandb") from exc
    run = wandb.init(project=project, mode="offline", dir=str(out), job_type="report")
    run.log({"results": wandb.Table(dataframe=frame.astype(object).where(frame.notna(), None))})
    run.finish()
