"""Hydra entry point: `python -m survey_sim.run model=distil_qwen_14b loss=kl` (add -m to sweep)."""

from __future__ import annotations

from pathlib import Path

import hydra
from omegaconf import DictConfig

CONFIG_DIR = str(Path(__file__).resolve().parent.parent / "conf")


@hydra.main(config_path=CONFIG_DIR, config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> float | None:
    from survey_sim.pipeline import run

    metrics = run(cfg)
    val = metrics["splits"].get("val", {})
    return val.get("jsd")  # lets Hydra sweepers optimise validation 1-JSD


if __name__ == "__main__":
    main()
