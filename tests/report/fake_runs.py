"""Run folders in the run-output format, made from the synthetic demo survey and real baselines.

Used by the report tests and the notebook test; written with the run's own writers
(survey_sim.evaluation.rows.prediction_rows, survey_sim.pipeline.outputs.write_results).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from omegaconf import OmegaConf

from survey_sim.baselines import make_baseline
from survey_sim.data.demo import make_demo_survey
from survey_sim.evaluation.rows import prediction_rows, split_metrics
from survey_sim.pipeline.outputs import write_config, write_results

EVAL_SPLITS = ("val", "test-unseen-country", "test-unseen-question")


def write_run(out: Path, method: str, splits, *, seed: int = 0, model: str | None = None, control=False,
              history=(), mix_with_truth: float | None = None, config: dict | None = None) -> Path:
    """A complete run folder. `mix_with_truth` fakes a trained model: prior mixed with the human answers."""
    baseline = make_baseline("prior" if mix_with_truth is not None else method).fit(splits["train"])
    rows = {}
    for name in EVAL_SPLITS:
        items = splits[name]
        preds = baseline.predict(items)
        if mix_with_truth is not None:
            preds = [(1 - mix_with_truth) * p + mix_with_truth * np.asarray(it.distribution)
                     for p, it in zip(preds, items)]
        rows[name] = prediction_rows(items, preds)
    run = {"model": model, "method": method, "control": control, "loss": "kl" if method == "ft" else None,
           "data": "demo", "language": "en", "shuffle": False, "seed": seed, "name": out.name}
    write_config(out, OmegaConf.create({"method": {"name": method}, "seed": seed, "data": {"name": "demo", "seed": seed},
                                        "output_dir": str(out), **(config or {})}))
    metrics = {"run": run, "splits": {n: split_metrics(r) for n, r in rows.items()}, "history": list(history)}
    write_results(out, [r for name in EVAL_SPLITS for r in rows[name]], metrics)
    return out


def make_results(root: Path) -> dict[str, Path]:
    """A multirun-like folder: uniform, prior (two seeds), a fake fine-tuned model, and two broken runs."""
    splits = make_demo_survey(seed=0, n_countries=8, n_questions=10)
    loss = [{"step": s, "epoch": s // 5, "train/loss": 1.0 / (1 + s)} for s in range(10)]
    runs = {
        "uniform": write_run(root / "0-uniform", "uniform", splits),
        "prior": write_run(root / "1-prior", "prior", splits, seed=1),
        "prior_seed2": write_run(root / "2-prior", "prior", splits, seed=2),
        "ft": write_run(root / "3-ft", "ft", splits, model="tiny", history=loss, mix_with_truth=0.6),
    }
    unfinished = write_run(root / "4-unfinished", "uniform", splits)
    (unfinished / "metrics.json").unlink()
    truncated = write_run(root / "5-truncated", "prior", splits)
    text = (truncated / "predictions.jsonl").read_text()
    (truncated / "predictions.jsonl").write_text(text[: len(text) - 40])
    (root / "3-ft" / ".hydra").mkdir()
    (root / "3-ft" / ".hydra" / "config.yaml").write_text("seed: 0\n")
    runs.update(unfinished=unfinished, truncated=truncated)
    return runs
