"""Finding, loading and skipping run folders; grouping runs into table rows."""

import json

import pytest

from survey_sim.errors import ConfigError
from survey_sim.report import collect_runs, group_runs
from survey_sim.report.collect import SkippedRun, load_run


def test_collect_loads_complete_runs_and_lists_incomplete(results):
    root, _ = results
    runs, skipped = collect_runs([root])
    assert sorted(r.path.name for r in runs) == ["0-uniform", "1-prior", "2-prior", "3-ft"]  # .hydra ignored
    reasons = {s.path.name: s.reason for s in skipped}
    assert reasons["4-unfinished"].startswith("no metrics.json")
    assert "line" in reasons["5-truncated"] and "truncated" in reasons["5-truncated"]
    ft = next(r for r in runs if r.run["method"] == "ft")
    assert ft.label == "tiny / ft" and len(ft.history) == 10
    assert set(ft.predictions["split"]) == set(ft.splits)


def test_load_run_rejects_bad_metrics_and_count_mismatch(tmp_path, results):
    _, paths = results
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "config.yaml").write_text("x: 1\n")
    (bad / "metrics.json").write_text('{"run": ')
    assert "not valid JSON" in load_run(bad).reason
    (bad / "metrics.json").write_text(json.dumps({"splits": {}}))
    assert "lacks 'run'" in load_run(bad).reason
    # Whole lines missing: metrics.json's n_items disagrees with predictions.jsonl.
    short = tmp_path / "short"
    short.mkdir()
    src = paths["prior"]
    for name in ("config.yaml", "metrics.json"):
        (short / name).write_bytes((src / name).read_bytes())
    lines = (src / "predictions.jsonl").read_text().splitlines(keepends=True)
    (short / "predictions.jsonl").write_text("".join(lines[:-2]))
    result = load_run(short)
    assert isinstance(result, SkippedRun) and "items" in result.reason
    with pytest.raises(ConfigError, match="does not exist"):
        collect_runs([tmp_path / "nowhere"])


def test_folders_inside_a_run_are_not_runs(tmp_path, results):
    """A W&B run's wandb/run-*/files/config.yaml is not a run; runs of a Hydra sweep folder still are."""
    _, paths = results
    sweep = tmp_path / "multirun" / "12-00-00"
    (sweep / ".hydra").mkdir(parents=True)
    (sweep / "multirun.yaml").write_text("hydra: {}\n")
    for name in ("0-prior", "1-uniform"):
        src = paths[name.split("-")[1]]
        for f in ("config.yaml", "metrics.json", "predictions.jsonl"):
            (sweep / name).mkdir(exist_ok=True)
            (sweep / name / f).write_bytes((src / f).read_bytes())
        files = sweep / name / "wandb" / "run-20250101_120000-x" / "files"
        files.mkdir(parents=True)
        (files / "config.yaml").write_text("_wandb: {}\n")
    runs, skipped = collect_runs([tmp_path / "multirun"])
    assert sorted(r.path.name for r in runs) == ["0-prior", "1-uniform"] and skipped == []
    runs, skipped = collect_runs([sweep / "0-prior"])
    assert [r.path.name for r in runs] == ["0-prior"] and skipped == []


def test_group_runs_pools_seeds_and_averages_items(results):
    root, _ = results
    runs, _ = collect_runs([root])
    groups = group_runs(runs)
    assert [g.label for g in groups] == ["uniform", "prior", "tiny / ft"]
    prior = groups[1]
    assert len(prior.runs) == 2
    items = prior.items()
    assert len(items) == len(prior.runs[0].predictions) and set(items["n_runs"]) == {2}
    # Mixed labels: settings that vary among runs with one label are added to it.
    prior.runs[1].run["loss"] = "js"
    labels = [g.label for g in group_runs(runs)]
    prior.runs[1].run["loss"] = None
    assert "prior (loss=None)" in labels and "prior (loss=js)" in labels and "uniform" in labels


def test_runs_that_differ_in_any_config_key_get_their_own_rows(tmp_path):
    """A learning-rate sweep must not be pooled like seeds: the differing key labels each row."""
    from survey_sim.data.demo import make_demo_survey
    from tests.report.fake_runs import write_run

    splits = make_demo_survey(seed=0, n_countries=8, n_questions=10)
    for i, (lr, seed) in enumerate([(1e-4, 0), (1e-4, 1), (5e-4, 0)]):
        write_run(tmp_path / f"{i}", "ft", splits, seed=seed, model="tiny", mix_with_truth=0.5,
                  config={"trainer": {"optim": {"lr": lr}}, "logger": {"name": f"csv{i}"}})
    groups = group_runs(collect_runs([tmp_path])[0])
    assert sorted((g.label, len(g.runs)) for g in groups) == [
        ("tiny / ft (trainer.optim.lr=0.0001)", 2), ("tiny / ft (trainer.optim.lr=0.0005)", 1)]


def test_every_baseline_has_a_row_position():
    """Tables order rows by METHOD_ORDER; a baseline missing from it would be sorted after the models."""
    from survey_sim.baselines import BASELINES
    from survey_sim.report.collect import METHOD_ORDER

    assert set(BASELINES) | {"zs", "ft"} <= set(METHOD_ORDER)
