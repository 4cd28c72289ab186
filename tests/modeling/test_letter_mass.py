"""Letter mass end to end: per item in predictions.jsonl, per split in metrics.json and the printed table, and
a warning naming model and prompt when the option letters get little of the next-token probability."""

from __future__ import annotations

import json
import logging

import pytest
from hydra import compose, initialize_config_dir

from survey_sim.pipeline.job import run
from survey_sim.report import build_report
from survey_sim.run import CONFIG_DIR

COMMON = ["data=demo", "model=smollm2_135m", "method=zs", "logger=csv", "trainer.enable_progress_bar=false",
          "data.demo.n_countries=4", "data.demo.n_questions=6", "eval_splits=[test-unseen-country]"]
#: An answer prefix after which SmolLM2 writes the digits of a year, not an option letter.
NOT_A_LETTER = "prompt.answer_prefix_en=' This survey was run in the year 20'"


def _run(out, *overrides: str) -> tuple[dict, list[dict]]:
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(config_name="config", overrides=[*COMMON, f"output_dir={out}", *overrides])
    run(cfg)
    rows = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    return json.loads((out / "metrics.json").read_text()), rows


def test_letter_mass_recorded_and_warned_about(tmp_path, caplog, capsys):
    with caplog.at_level(logging.WARNING, logger="survey_sim"):
        paper, paper_rows = _run(tmp_path / "paper", "model.chat_template=false")
    assert "letter mass" not in caplog.text
    assert "letter_mass" in capsys.readouterr().out
    for split, summary in paper["splits"].items():
        masses = [r["letter_mass"] for r in paper_rows if r["split"] == split]
        assert all(0.0 < m <= 1.0 for m in masses)
        assert summary["letter_mass"] == pytest.approx(sum(masses) / len(masses))
        assert summary["letter_mass"] > 0.5

    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="survey_sim"):
        year, _ = _run(tmp_path / "year", "model.chat_template=false", NOT_A_LETTER)
    assert all(s["letter_mass"] < 0.1 for s in year["splits"].values())
    warned = [r.getMessage() for r in caplog.records if "letter mass" in r.getMessage()]
    assert len(warned) == len(year["splits"]) and all("smollm2_135m" in w and "paper" in w for w in warned)

    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="survey_sim"):
        _run(tmp_path / "lowered", "model.chat_template=false", NOT_A_LETTER, "letter_mass_warning=0.0")
    assert "letter mass" not in caplog.text

    report = build_report([tmp_path / "paper", tmp_path / "year"], tmp_path / "report", plots=False, n_boot=50)
    assert "letter_mass" in report.tables
    md = (tmp_path / "report" / "report.md").read_text()
    assert "## Letter mass: the option letters' share of the next-token probability" in md
