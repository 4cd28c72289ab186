"""Tables: values, intervals, Avg, the paper reference column, markdown and LaTeX."""

import numpy as np
import pytest

from survey_sim.errors import SurveyDataError
from survey_sim.report import (
    build_table,
    collect_runs,
    group_runs,
    load_paper_numbers,
    results_frame,
    table_frame,
)
from survey_sim.report.render import latex_escape, to_latex, to_markdown

SPLITS = ["test-unseen-country", "test-unseen-question"]


@pytest.fixture(scope="module")
def groups(results):
    runs, _ = collect_runs([results[0]])
    return runs, group_runs(runs)


def test_cells_match_metrics_json_with_intervals(groups):
    _, grps = groups
    table = build_table(grps, "jsd", SPLITS, n_boot=200, seed=0)
    uniform = table.rows[0]
    for split in SPLITS:
        cell = uniform.cells[split]
        assert cell.value == pytest.approx(grps[0].runs[0].splits[split]["jsd"])
        assert cell.low <= cell.value <= cell.high and cell.n_items == 12
    assert uniform.avg(SPLITS) == pytest.approx(np.mean([uniform.cells[s].value for s in SPLITS]))
    assert uniform.avg([*SPLITS, "C1-Q3"]) is None  # a split the row lacks
    frame = table_frame(table)
    assert list(frame.columns) == [*SPLITS, "Avg"] and frame.loc["tiny / ft", "Avg"] > frame.loc["uniform", "Avg"]
    # Two prior seeds: the row averages them (identical predictions here, so equal to one run).
    assert table.rows[1].n_runs == 2
    assert table.rows[1].cells[SPLITS[0]].value == pytest.approx(grps[1].runs[0].splits[SPLITS[0]]["jsd"])


def test_markdown_and_latex(groups):
    _, grps = groups
    table = build_table(grps, "emd", SPLITS, n_boot=0)
    md = to_markdown(table)
    assert "| tiny / ft | 1 |" in md and "**" in md and "[" not in md.split("\n")[2]
    best = min(r.cells[SPLITS[0]].value for r in table.rows)
    assert f"**{best:.3f}**" in md
    tex = to_latex(build_table(grps, "jsd", SPLITS, n_boot=50))
    assert r"\begin{tabular}{lccc}" in tex and r"\scriptsize" in tex and "test-unseen-country" in tex
    assert latex_escape("a_b & 50%") == r"a\_b \& 50\%"


def test_paper_reference_column(tmp_path, groups):
    _, grps = groups
    ref = tmp_path / "paper.yaml"
    ref.write_text("numbers:\n  - {model: tiny, method: ft, split: test-unseen-country, jsd: 0.5}\n")
    table = build_table(grps, "jsd", SPLITS, n_boot=0, paper=load_paper_numbers(ref))
    assert table.paper_splits == ["test-unseen-country"]
    assert "test-unseen-country (paper)" in to_markdown(table)
    frame = table_frame(table)
    assert frame.loc["tiny / ft", "test-unseen-country (paper)"] == 0.5
    assert np.isnan(frame.loc["uniform", "test-unseen-country (paper)"])
    ref.write_text("numbers:\n  - {method: ft, split: C1-Q3, jsd: high}\n")
    with pytest.raises(SurveyDataError, match="record 0.*jsd"):
        load_paper_numbers(ref)


def test_results_frame_is_tidy(groups):
    runs, _ = groups
    frame = results_frame(runs, n_boot=50)
    assert set(frame["metric"]) >= {"jsd", "emd", "accuracy", "a_bias"}
    assert not frame.duplicated(["path", "split", "metric"]).any()
    assert len(frame) == sum(len(m) - 1 for r in runs for m in r.splits.values())
    row = frame[(frame["method"] == "uniform") & (frame["split"] == "val") & (frame["metric"] == "jsd")].iloc[0]
    assert row["ci_low"] <= row["value"] <= row["ci_high"]


@pytest.mark.parametrize("setting, matches", [
    ("", True), ("loss: kl, language: en, shuffle: false, permutations: 1", True), ("loss: js", False),
    ("language: zh", False), ("shuffle: true", False), ("permutations: 6", False), ("control: true", False),
])
def test_paper_numbers_match_only_the_same_setting(tmp_path, groups, setting, matches):
    _, grps = groups
    ref = tmp_path / "paper.yaml"
    ref.write_text("numbers:\n  - {model: tiny, method: ft, split: test-unseen-country, jsd: 0.5"
                   + (f", {setting}" if setting else "") + "}\n")
    table = build_table(grps, "jsd", SPLITS, n_boot=0, paper=load_paper_numbers(ref))
    assert table.paper_splits == (["test-unseen-country"] if matches else [])


def test_shipped_paper_numbers():
    """The published Tables 4, 5, 6, 7 and 11, keyed by this framework's model and split names."""
    from survey_sim.report.paper import PAPER_NUMBERS

    records = load_paper_numbers()
    assert len(records) == 208
    models = {p.stem for p in (PAPER_NUMBERS.parents[2] / "conf" / "model").glob("*.yaml")}
    assert {r["model"] for r in records} - {None} <= models
    assert {r["split"] for r in records} == {"C1-Q3", "C2-Q1", "C2-Q3", "C3-Q1", "C3-Q3", "Pew-C'1", "Pew-C3"}
    keys = {(r["table"], r["model"], r["method"], bool(r.get("control")), r.get("loss"), r.get("language"),
             bool(r.get("shuffle")), r["split"]) for r in records}
    assert len(keys) == len(records)  # one number per setting and split

    def one(**want):
        (hit,) = [r for r in records if all(r.get(k) == v for k, v in want.items())]
        return hit

    assert one(table=4, model="llama3_8b_instruct", method="ft", control=False, split="C2-Q1")["jsd"] == 0.881
    assert one(table=4, model="vicuna_13b", method="zs", control=True, split="C3-Q1")["emd_paper_code"] == 0.096
    assert one(table=5, model="distil_qwen_7b", method="zs", split="C3-Q3")["emd_paper_code"] == 0.190
    assert one(table=6, model="vicuna_7b", method="ft", split="Pew-C3")["accuracy"] == 0.456
    assert one(table=7, loss="kl", shuffle=True, split="C1-Q3")["jsd"] == 0.753
    assert one(table=11, method="knn", split="C3-Q1")["jsd"] == 0.541


def test_simulators_are_compared_with_the_best_trivial_baseline_per_split(tmp_path):
    """The report names the better of uniform and prior per split and gives each simulator row's paired
    difference against it with a question-clustered interval; it equals the difference of the two rows' means."""
    from fake_runs import make_results

    from survey_sim.report import build_report

    make_results(tmp_path / "runs")
    report = build_report([tmp_path / "runs"], tmp_path / "out", n_boot=200, plots=False)
    (label, by_split), = report.against_best.items()
    assert set(by_split) == set(report.splits)
    jsd = report.tables["jsd"]
    means = {r.label: r.cells for r in jsd.rows}
    for split, (best, interval) in by_split.items():
        baseline = {"uniform": "uniform", "prior": "prior"}[best]
        base_row = next(r for r in jsd.rows if r.label.startswith(baseline))
        other = next(r for r in jsd.rows if r.label.startswith("prior" if best == "uniform" else "uniform"))
        assert base_row.cells[split].value >= other.cells[split].value
        assert interval.value == pytest.approx(means[label][split].value - base_row.cells[split].value, abs=1e-9)
        assert interval.clustering == "question" and interval.low <= interval.value <= interval.high
    text = (tmp_path / "out" / "report.md").read_text()
    assert "## Against the best trivial baseline (1-JSD)" in text and f"| {label} minus it |" in text


def test_the_wvs_split_order_names_the_shipped_wvs_splits():
    """The tables' and the dashboard's split order lists exactly the WVS data config's evaluation splits."""
    from omegaconf import OmegaConf

    from survey_sim.paths import config_dir
    from survey_sim.report.tables import WVS_SPLITS

    data = OmegaConf.load(config_dir() / "data" / "wvs_en.yaml")
    assert list(WVS_SPLITS) == [data.val_split, "dev", *data.test_splits]
