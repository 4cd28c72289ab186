"""Hydra entry point: `python -m survey_sim.run model=distil_qwen_14b loss=kl` (add -m to sweep)."""

from __future__ import annotations

from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

CONFIG_DIR = str(Path(__file__).resolve().parent.parent / "conf")


def run_name(kind: str, model: str, method: str, loss: str, control, uses_model=False) -> str:
    """Folder-friendly run name: model-method(-loss for fine-tuning)(-ctrl); model-free baselines by method."""
    model_free = kind == "baseline" and str(uses_model).lower() != "true"
    parts = [method] if model_free else [model, method] + ([loss] if method == "ft" else [])
    return "-".join(parts + (["ctrl"] if str(control).lower() == "true" else []))


OmegaConf.register_new_resolver("survey_sim_run_name", run_name, replace=True)


@hydra.main(config_path=CONFIG_DIR, config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> float | None:
    from survey_sim.pipeline import run

    metrics = run(cfg)
    val = metrics["splits"].get("val", {})
    return val.get("jsd")  # lets Hydra sweepers optimise validation 1-JSD


if __name__ == "__main__":
    main()
