"""`python -m survey_sim.report`: the files it writes, item selection and errors."""

import pandas as pd
import pytest

from survey_sim.report.__main__ import main

PNG = b"\x89PNG\r\n\x1a\n"


def test_cli_writes_report_tables_csv_and_plots(results, tmp_path, capsys):
    root, _ = results
    out = tmp_path / "rep"
    assert main([str(root), "--out", str(out), "--bootstrap", "100"]) == 0
    assert "2 skipped" in capsys.readouterr().out
    md = (out / "report.md").read_text()
    assert "5-truncated" in md and "4-unfinished" in md and "## 1-JSD" in md and "## Accuracy" in md
    assert "| tiny / ft |" in md and "(100 resamples)" in md
    assert md.count(r"\begin{tabular}") == 0 and (out / "tables.tex").read_text().count(r"\begin{tabular}") == 5
    # no run has a letter mass (fake runs): no empty table for it
    assert "## Letter mass" not in md and "resampling questions (all countries of a question together)" in md
    assert "## A-bias: mass on the option shown first minus the human share (closer to 0 is better)" in md
    frame = pd.read_csv(out / "results.csv")
    assert {"val", "test-unseen-country"} <= set(frame["split"]) and frame["path"].nunique() == 4
    plots = {p.name for p in (out / "plots").iterdir()}
    assert {"per_country_jsd_test-unseen-country.png", "accuracy_per_country_test-unseen-question.png",
            "diversity_test-unseen-country.png", "loss_curves.png", "items_02_tiny_ft.png"} <= plots
    assert all((out / "plots" / p).read_bytes().startswith(PNG) for p in plots)
    assert not any(p.name.endswith(".tmp") for p in out.rglob("*"))


def test_cli_splits_items_and_errors(results, tmp_path, capsys):
    root, paths = results
    out = tmp_path / "rep"
    item = pd.read_json(paths["ft"] / "predictions.jsonl", lines=True).iloc[0]
    spec = f"{item['split']}:{item['group']}:{item['question_id']}"
    assert main([str(paths["ft"]), str(paths["uniform"]), "--out", str(out), "--splits", "val",
                 "--metrics", "jsd", "--bootstrap", "0", "--items", spec]) == 0
    md = (out / "report.md").read_text()
    assert "| val | Avg |" in md and "## EMD" not in md and "Skipped" not in md
    assert len(list((out / "plots").glob("items_*.png"))) == 2
    assert main([str(root), "--out", str(out), "--splits", "C1-Q3"]) == 2
    assert "C1-Q3" in capsys.readouterr().err
    assert main([str(root), "--out", str(out), "--items", "Atlantis:Q1"]) == 2
    assert main([str(paths["unfinished"]), "--out", str(out)]) == 1
    assert "No complete runs" in (out / "report.md").read_text()


def test_report_reads_real_pipeline_runs(tmp_path):
    """Run folders written by survey_sim.pipeline.job (two baselines on the demo survey) go through the report."""
    from hydra import compose, initialize_config_dir

    from survey_sim.pipeline.job import run
    from survey_sim.run import CONFIG_DIR

    written = {}
    for method, extra in (("prior", []), ("uniform", ["control=true", "shuffle.eval=true"])):
        with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
            cfg = compose(config_name="config", overrides=[
                "data=demo", f"method={method}", "logger=csv", f"output_dir={tmp_path / 'runs' / method}",
                "data.demo.n_countries=6", "data.demo.n_questions=8", *extra])
        written[method] = run(cfg)
    out = tmp_path / "rep"
    assert main([str(tmp_path / "runs"), "--out", str(out), "--bootstrap", "50"]) == 0
    frame = pd.read_csv(out / "results.csv")
    for method, metrics in written.items():
        for split, values in metrics["splits"].items():
            got = frame[(frame["method"] == method) & (frame["split"] == split) & (frame["metric"] == "jsd")]
            assert got["value"].item() == pytest.approx(values["jsd"])
    md = (out / "report.md").read_text()
    assert "| prior | 1 |" in md and "| uniform [ctrl] | 1 |" in md
    assert len(list((out / "plots").glob("items_*.png"))) == 2


@pytest.mark.slow
def test_cli_logs_results_to_wandb_offline(results, tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_SILENT", "true")
    out = tmp_path / "rep"
    assert main([str(results[0]), "--out", str(out), "--no-plots", "--bootstrap", "0", "--wandb"]) == 0
    assert list((out / "wandb").glob("offline-run-*/run-*.wandb"))


def test_cli_paired_difference_and_clustering(results, tmp_path):
    """--diff A B adds A minus B per split with its clustered interval; --cluster picks what is resampled."""
    from survey_sim.evaluation.intervals import paired_difference

    _, paths = results
    out = tmp_path / "rep"
    assert main([str(paths["ft"]), str(paths["uniform"]), "--out", str(out), "--splits", "val",
                 "--metrics", "jsd", "--bootstrap", "200", "--no-plots", "--diff", "tiny / ft", "uniform"]) == 0
    md = (out / "report.md").read_text()
    assert "## Paired difference: tiny / ft minus uniform" in md
    ft = pd.read_json(paths["ft"] / "predictions.jsonl", lines=True)
    uniform = pd.read_json(paths["uniform"] / "predictions.jsonl", lines=True)
    diff = paired_difference(ft[ft["split"] == "val"], uniform[uniform["split"] == "val"], "jsd", n_boot=200)
    assert f"| 1-JSD | {diff.value:+.3f} [{diff.low:+.3f}, {diff.high:+.3f}] |" in md
    frame = pd.read_csv(out / "results.csv")
    assert set(frame["ci_clustering"].dropna()) == {"question"}
    assert main([str(paths["ft"]), "--out", str(out), "--no-plots", "--cluster", "item", "--metrics", "jsd"]) == 0
    assert "resampling items (" in (out / "report.md").read_text()
    assert main([str(paths["ft"]), "--out", str(out), "--no-plots", "--diff", "tiny / ft", "nope"]) == 2


def test_report_shows_the_fitted_anchor_weights(tmp_path):
    """An anchored run's metrics.json "anchor" (here a real Anchor fitted on val with a fake model that knows
    part of the answers) becomes a table of the fitted weights and the anchor_weights figure."""
    import json

    import numpy as np

    from survey_sim.data.demo import make_demo_survey
    from survey_sim.modeling.anchoring import Anchor
    from tests.report.fake_runs import write_run

    splits = make_demo_survey(seed=0, n_countries=8, n_questions=10)
    val = splits["val"]
    width = max(it.num_options for it in val)
    lm = np.zeros((len(val), width))
    for i, it in enumerate(val):
        lm[i, : it.num_options] = 0.5 * np.asarray(it.distribution) + 0.5 / it.num_options
    anchor = Anchor("prior", "loglinear", splits["train"])
    anchor.fit("new", val, lm, anchor.bases(val))
    run_dir = write_run(tmp_path / "anchored", "ft", splits, model="tiny", mix_with_truth=0.5)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    metrics["anchor"] = anchor.summary()
    (run_dir / "metrics.json").write_text(json.dumps(metrics))

    out = tmp_path / "rep"
    assert main([str(run_dir), "--out", str(out), "--bootstrap", "0"]) == 0
    md = (out / "report.md").read_text()
    fit = anchor.summary()["fitted"]["new"]
    assert "## Anchored simulators: fitted weights" in md
    row = next(line for line in md.splitlines() if line.startswith("| tiny / ft | 0 | prior, loglinear | new |"))
    assert f"| val ({len(val)}) |" in row and f"{fit['cv_gain_per_cluster']:+.4f}" in row
    assert ("| yes |" if fit["model_used"] else "| no |") in row
    assert (out / "plots" / "anchor_weights.png").read_bytes().startswith(PNG)
