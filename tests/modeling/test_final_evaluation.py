"""The final evaluation of a fine-tuning run: a split already predicted with the trained weights (the
validation at the end of training) is kept, not evaluated again; every split's predictions still equal a
separate zero-shot evaluation of the saved adapter."""

from __future__ import annotations

import csv
import json
import logging

import pytest
from hydra import compose, initialize_config_dir

from survey_sim.pipeline.job import run
from survey_sim.run import CONFIG_DIR

COMMON = ["data=demo", "model=tiny_random", "logger=csv", "trainer.enable_progress_bar=false",
          "data.demo.n_countries=6", "data.demo.n_questions=8", "model.batch_size=4"]
KEPT = "not evaluating them again"


def _run(out, *overrides: str) -> dict:
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(config_name="config", overrides=[*COMMON, f"output_dir={out}", *overrides])
    run(cfg)
    rows = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    return {(r["split"], r["group"], r["question_id"]): r["pred"] for r in rows}


@pytest.mark.parametrize(("training", "kept"), [(["trainer.max_epochs=1"], True),
                                                (["trainer.max_steps=2"], False)],  # stops before the epoch's end
                         ids=["validated-at-the-end", "stopped-mid-epoch"])
def test_final_evaluation_keeps_current_validation_predictions(tmp_path, caplog, training, kept):
    with caplog.at_level(logging.INFO, logger="survey_sim"):
        ft = _run(tmp_path / "ft", "method=ft", *training)
    assert (KEPT in caplog.text) == kept
    with open(tmp_path / "ft" / "csv_logs" / "metrics.csv") as f:
        logged = [row for row in csv.DictReader(f) if row.get("test/val/jsd")]
    metrics = json.loads((tmp_path / "ft" / "metrics.json").read_text())
    assert len(logged) == 1 and float(logged[0]["test/val/jsd"]) == pytest.approx(metrics["splits"]["val"]["jsd"])

    zs = _run(tmp_path / "zs", "method=zs", f"adapter_path={tmp_path / 'ft'}")
    assert ft.keys() == zs.keys() and {split for split, _, _ in ft} >= {"val", "test-unseen-country"}
    for key, pred in zs.items():
        assert ft[key] == pytest.approx(pred, abs=1e-6), key


def test_calibration_uses_the_validation_at_the_end_of_training(tmp_path, caplog):
    """Calibration fits T on the end-of-training validation (T = 1) instead of validating again; the final
    pass then evaluates val anew at the fitted T."""
    out = tmp_path / "ft"
    with caplog.at_level(logging.INFO, logger="survey_sim"):
        _run(out, "method=ft", "trainer.max_epochs=1", "calibrate=true")
    assert KEPT not in caplog.text  # T changed: val is evaluated again
    with open(out / "csv_logs" / "metrics.csv") as f:
        validated = [float(row["val/jsd"]) for row in csv.DictReader(f) if row.get("val/jsd")]
    record = json.loads((out / "calibration.json").read_text())
    metrics = json.loads((out / "metrics.json").read_text())
    assert len(validated) == 1, "one validation pass: the one at the end of training"
    assert record["val_before"]["jsd"] == pytest.approx(validated[0], abs=1e-6)
    assert metrics["splits"]["val"]["jsd"] == pytest.approx(record["val_after"]["jsd"], abs=1e-6)
