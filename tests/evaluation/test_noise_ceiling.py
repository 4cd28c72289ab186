"""The noise ceiling: its approximations against seeded Monte-Carlo, and its place in runs and reports."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hydra import compose, initialize_config_dir

from survey_sim.errors import ConfigError
from survey_sim.evaluation.noise_ceiling import (
    add_ceiling,
    ceiling_summary,
    expected_emd,
    expected_jsd,
    item_ceiling,
    monte_carlo,
)
from survey_sim.pipeline.printed import format_table
from tests.conftest import REPO

# Dirichlet concentrations 0.2 and 0.3 give options with almost no mass (the Monte-Carlo fallback's regime).
CASES = [(k, a, n) for n in (50, 120, 400, 1200, 5000)
         for k, a in ((2, 1.0), (3, 0.2), (4, 1.0), (5, 0.3), (7, 3.0), (10, 0.2), (10, 1.0))]


@pytest.mark.parametrize(("k", "alpha", "n"), CASES)
def test_approximations_match_monte_carlo_within_0002(k, alpha, n):
    """Random distributions (Dirichlet, some with near-empty options), N from 50 to 5,000."""
    rng = np.random.default_rng(1000 * k + n)
    for _ in range(3):
        p = rng.dirichlet(np.full(k, alpha))
        reference = monte_carlo(p, n, draws=40000, seed=int(rng.integers(1 << 30)))
        assert expected_jsd(p, n) == pytest.approx(reference["jsd"], abs=0.002)
        assert expected_emd(p, n) == pytest.approx(reference["emd"], abs=0.002)


def test_monte_carlo_is_seeded_and_ceiling_grows_with_n():
    p = [0.1, 0.2, 0.3, 0.4]
    assert monte_carlo(p, 300, draws=500, seed=3) == monte_carlo(p, 300, draws=500, seed=3)
    assert monte_carlo(p, 300, draws=500, seed=3) != monte_carlo(p, 300, draws=500, seed=4)
    scores = [expected_jsd(p, n) for n in (50, 200, 1200, 5000)]
    assert scores == sorted(scores) and scores[-1] < 1.0
    emds = [expected_emd(p, n) for n in (50, 200, 1200, 5000)]
    assert emds == sorted(emds, reverse=True) and emds[-1] > 0.0
    # ~0.977 for a typical 5-10 option WVS question at N=1,200 (issue 17)
    assert 0.96 < expected_jsd(np.full(8, 1 / 8), 1200) < 0.98


def test_point_mass_and_bad_sizes():
    assert expected_jsd([0.0, 1.0, 0.0], 100) == 1.0
    assert expected_emd([0.0, 1.0, 0.0], 100) == 0.0
    for bad in (0, -5, float("nan"), None):
        with pytest.raises(ValueError, match="respondent count"):
            expected_jsd([0.5, 0.5], bad)


def test_rows_use_their_own_n_or_the_assumed_one():
    rows = [{"human": [0.5, 0.5], "n_respondents": 80.4}, {"human": [0.2, 0.8], "n_respondents": None},
            {"human": [0.3, 0.7]}]
    add_ceiling(rows, assumed_n=1200)
    assert rows[0]["ceiling_n"] == 80.4 and not rows[0]["ceiling_n_assumed"]
    assert rows[0]["ceiling_jsd"] == expected_jsd([0.5, 0.5], 80)
    assert [r["ceiling_n_assumed"] for r in rows[1:]] == [True, True]
    assert rows[1] == {"human": [0.2, 0.8], "n_respondents": None, **item_ceiling([0.2, 0.8], None, 1200)}
    summary = ceiling_summary(rows)
    assert summary["ceiling_n_assumed"] == 2 and summary["assumed_n"] == 1200
    assert summary["ceiling_jsd"] == pytest.approx(np.mean([r["ceiling_jsd"] for r in rows]))
    assert ceiling_summary([{"human": [1.0]}]) == {}
    text = format_table({"val": {"n_items": 3, "jsd": 0.9, **summary}})
    assert "ceiling_jsd" in text.splitlines()[0] and "N=1,200 ASSUMED for 2 items" in text


DEMO = ["data=demo", "data.demo.n_countries=6", "data.demo.n_questions=8"]


def _run(tmp_path, name, *overrides):
    import survey_sim.run  # noqa: F401  (registers the run-name resolver)
    from survey_sim.pipeline.job import run

    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose(config_name="config", overrides=[
            "logger=csv", f"output_dir={tmp_path / 'runs' / name}",
            *([] if any(o.startswith("data=") for o in overrides) else DEMO), *overrides])
    return run(cfg)


def test_run_and_report_show_the_ceiling(tmp_path, capsys):
    from survey_sim.report import build_report

    metrics = _run(tmp_path, "prior", "method=prior")
    printed = capsys.readouterr().out
    assert "ceiling_jsd" in printed
    for split, m in metrics["splits"].items():
        assert 0.5 < m["ceiling_jsd"] < 1.0 and 0.0 < m["ceiling_emd"] < 0.2
        assert m["ceiling_n_assumed"] == 0  # demo items carry their respondent count
    rows = [json.loads(line) for line in (tmp_path / "runs" / "prior" / "predictions.jsonl").open()]
    assert all(r["n_respondents"] == r["ceiling_n"] for r in rows)
    report = build_report([tmp_path / "runs"], tmp_path / "rep", n_boot=0, plots=False)
    split = report.splits[0]
    assert report.tables["jsd"].ceiling[split].value == pytest.approx(metrics["splits"][split]["ceiling_jsd"])
    assert "accuracy" not in {t for t, table in report.tables.items() if table.ceiling}
    md = (tmp_path / "rep" / "report.md").read_text()
    assert "| *noise ceiling* |" in md and r"\textit{noise ceiling}" in (tmp_path / "rep" / "tables.tex").read_text()


def test_assumed_n_must_be_positive(tmp_path):
    with pytest.raises(ConfigError, match="noise_ceiling.assumed_n"):
        _run(tmp_path, "bad", "method=uniform", "noise_ceiling.assumed_n=0")


@pytest.mark.real_data
def test_real_wvs_split_ceiling_against_monte_carlo(tmp_path):
    """C2-Q2 of the real WVS data (no respondent counts: the assumed N=1,200), approximation vs Monte-Carlo."""
    import os

    from survey_sim.paths import DATA_ENV

    root = os.environ.get(DATA_ENV)
    if not root:
        pytest.skip(f"{DATA_ENV} not set: real WVS data unavailable")
    metrics = _run(tmp_path, "wvs", "data=wvs_en", f"data.root={root}", "method=uniform", "data.test_splits=[C2-Q2]",
                   "data.val_split=null")
    split = metrics["splits"]["C2-Q2"]
    assert split["ceiling_n_assumed"] == split["n_items"] == 166 and split["assumed_n"] == 1200
    rows = [json.loads(line) for line in (tmp_path / "runs" / "wvs" / "predictions.jsonl").open()]
    reference = np.mean([monte_carlo(r["human"], 1200, draws=4000, seed=i)["jsd"] for i, r in enumerate(rows)])
    assert split["ceiling_jsd"] == pytest.approx(reference, abs=5e-4)
    assert split["ceiling_jsd"] == pytest.approx(0.9765, abs=5e-4)
