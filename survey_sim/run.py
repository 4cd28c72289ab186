"""Hydra entry point: `python -m survey_sim.run model=distil_qwen_14b loss=kl` (add -m to sweep).

A SurveySimError (bad data, config or model) prints one `error: ...` line and exits with status 2;
HYDRA_FULL_ERROR=1 shows its traceback instead. Other exceptions keep Hydra's report.
"""

from __future__ import annotations

import os
import sys

import hydra
from omegaconf import DictConfig, OmegaConf

from survey_sim.paths import config_dir

CONFIG_DIR = str(config_dir())


def run_name(kind: str, model: str, method: str, loss: str, control, uses_model=False) -> str:
    """Folder-friendly run name: model-method(-loss for fine-tuning)(-ctrl); model-free baselines by method."""
    model_free = kind == "baseline" and str(uses_model).lower() != "true"
    parts = [method] if model_free else [model, method] + ([loss] if method == "ft" else [])
    return "-".join(parts + (["ctrl"] if str(control).lower() == "true" else []))


OmegaConf.register_new_resolver("survey_sim_run_name", run_name, replace=True)


@hydra.main(config_path=CONFIG_DIR, config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> float | None:
    from survey_sim.errors import SurveySimError
    from survey_sim.pipeline.job import run

    try:
        metrics = run(cfg)
    except SurveySimError as err:
        if os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    val = metrics["splits"].get("val", {})
    return val.get("jsd")  # lets Hydra sweepers optimise validation 1-JSD


if __name__ == "__main__":
    main()
