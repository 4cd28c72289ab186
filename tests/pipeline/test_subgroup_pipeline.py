"""Subgroup items through the pipeline: held-out groups, the country prior, per-group metrics, the report."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hydra import compose, initialize_config_dir

from survey_sim.baselines import make_baseline
from survey_sim.data.holdouts import HELDOUT_GROUP_SPLIT
from survey_sim.data.item import SurveyItem
from survey_sim.data.sources import load_processed, write_processed
from survey_sim.data.splits import load_splits
from survey_sim.data.transforms import shuffle_options
from survey_sim.errors import ConfigError
from survey_sim.evaluation.group_metrics import attribute_metrics, difference_points, difference_summary
from tests.conftest import REPO

SMALL = ["data.demo.n_countries=5", "data.demo.n_questions=8", "data.demo.n_respondents=1500",
         "data.demo.group_by=[sex,age_band]"]


def compose_cfg(*overrides):
    import survey_sim.run  # noqa: F401  (registers the run-name resolver)

    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        return compose(config_name="config", overrides=["data=demo", "logger=csv", *overrides])


def test_holdout_groups_leave_training_and_form_their_own_split():
    plain = load_splits(compose_cfg(*SMALL).data)
    held = load_splits(compose_cfg(*SMALL, "+data.holdout_groups={age: 50+}").data)
    old = {("age", "50+")}
    assert not any(old & set(it.attributes) for it in held["train"] + held["val"])
    assert {it.key for it in held[HELDOUT_GROUP_SPLIT]} == {it.key for it in plain["train"]
                                                            if old & set(it.attributes)}
    assert all(it.split == HELDOUT_GROUP_SPLIT for it in held[HELDOUT_GROUP_SPLIT])
    assert held["test-unseen-question"] == plain["test-unseen-question"]  # test splits keep every group
    # countries x subgroups: only one country's women
    country = plain["train"][0].country
    narrow = load_splits(compose_cfg(*SMALL, f"+data.holdout_groups={{sex: female, countries: [{country}]}}").data)
    assert {(it.country, dict(it.attributes)["sex"]) for it in narrow[HELDOUT_GROUP_SPLIT]} == {(country, "female")}
    with pytest.raises(ConfigError, match="matches no training item; attribute values present: .*age: 18-29"):
        load_splits(compose_cfg(*SMALL, "+data.holdout_groups={age: 90+}").data)
    with pytest.raises(ConfigError, match="items have no subgroup attributes"):
        load_splits(compose_cfg("+data.holdout_groups={age: 50+}").data)


def item(attrs, dist, country="Kenya", qid="1", whole=None, n=200.0):
    label = ", ".join(f"{k}: {v}" for k, v in attrs)
    return SurveyItem(group=f"{country} | {label}", country=country, attributes=attrs, question_id=qid,
                      question="Q?", options=("a", "b", "c"), letters=("A", "B", "C"), distribution=dist,
                      n_respondents=n, n_effective=n * 0.8, country_distribution=whole)


def test_country_prior_follows_the_option_order_and_round_trips(tmp_path):
    women = item((("sex", "female"),), (0.6, 0.3, 0.1), whole=(0.4, 0.4, 0.2))
    country = SurveyItem(group="Kenya", question_id="1", question="Q?", options=("a", "b", "c"),
                         letters=("A", "B", "C"), distribution=(0.4, 0.4, 0.2))
    shuffled = shuffle_options([women], seed=3)[0]
    assert shuffled.option_order != (0, 1, 2)
    baseline = make_baseline("country_prior").fit([])
    preds = baseline.predict([women, shuffled, country])
    assert preds[0] == pytest.approx([0.4, 0.4, 0.2])
    assert shuffled.to_original_order(preds[1]) == pytest.approx([0.4, 0.4, 0.2])
    assert preds[2] == pytest.approx([1 / 3] * 3) and baseline.n_fallback == 1
    path = write_processed([women, shuffled.with_(split="test")], tmp_path / "items.json")
    back = load_processed(path).items
    assert back[0].attributes == women.attributes and back[0].n_effective == women.n_effective
    assert back[0].country_distribution == pytest.approx(women.country_distribution)
    assert back[1].country_distribution == pytest.approx([[0.4, 0.4, 0.2][i] for i in shuffled.option_order])
    assert json.loads(path.read_text())[0]["attributes"] == {"sex": "female"}


def test_group_metrics_by_value_and_differences():
    rows = []
    for sex, human, pred in (("female", [0.8, 0.1, 0.1], [0.5, 0.3, 0.2]), ("male", [0.1, 0.1, 0.8], [0.2, 0.3, 0.5])):
        for age in ("18-29", "50+"):
            rows.append({"split": "t", "country": "A", "question_id": "1", "language": "en",
                         "attributes": {"sex": sex, "age": age}, "human": human, "pred": pred,
                         "jsd": 0.9 if sex == "female" else 0.7})
    by_value = attribute_metrics(rows)
    assert by_value["sex=female"]["jsd"] == 0.9 and by_value["sex=male"]["n_items"] == 2
    assert by_value["age=50+"]["jsd"] == pytest.approx(0.8)
    points = difference_points(rows)
    sex = [p for p in points if p["attribute"] == "sex"]
    age = [p for p in points if p["attribute"] == "age"]
    assert len(sex) == 2 and len(age) == 2  # female vs male per age band; 18-29 vs 50+ per sex
    assert sex[0]["values"] == "female vs male"
    assert sex[0]["human_diff"] == pytest.approx(-0.7) and sex[0]["model_diff"] == pytest.approx(-0.3)
    assert sex[0]["human_tv"] == pytest.approx(0.7) and age[0]["human_tv"] == 0.0
    summary = difference_summary(points)
    assert summary["sex"]["mae"] == pytest.approx(0.4) and summary["sex"]["corr"] is None  # 2 pairs
    assert summary["age"]["model_tv"] == 0.0


def test_subgroup_run_metrics_and_report(tmp_path):
    from survey_sim.pipeline.job import run
    from survey_sim.report import build_report

    for method in ("prior", "country_prior"):
        metrics = run(compose_cfg(*SMALL, f"method={method}", "data.demo.weighted=true",
                                  "+data.holdout_groups={age: 50+}", f"output_dir={tmp_path / 'runs' / method}"))
    assert HELDOUT_GROUP_SPLIT in metrics["splits"]
    block = metrics["groups"]["test-unseen-question"]
    assert set(block["by_value"]) == {"sex=female", "sex=male", "age=18-29", "age=30-49", "age=50+"}
    assert block["differences"]["sex"]["n_pairs"] > 0 and block["differences"]["sex"]["human_tv"] > 0.05
    assert block["differences"]["sex"]["model_tv"] == 0.0  # the country prior does not tell groups apart
    rows = [json.loads(line) for line in (tmp_path / "runs" / "country_prior" / "predictions.jsonl").open()]
    assert all(r["ceiling_n"] == r["n_effective"] < r["n_respondents"] for r in rows)  # weighted: Kish's N
    ceilings = {s: m["ceiling_jsd"] for s, m in metrics["splits"].items()}
    assert all(0.9 < c < 0.99 for c in ceilings.values())
    report = build_report([tmp_path / "runs"], tmp_path / "rep", n_boot=0)
    md = (tmp_path / "rep" / "report.md").read_text()
    assert "## Subgroups: test-unseen-question" in md and "| country_prior |" in md
    figure = tmp_path / "rep" / "plots" / "group_differences_test-unseen-question.png"
    assert figure in report.files and figure.read_bytes().startswith(b"\x89PNG")


def test_country_items_have_no_group_block(tmp_path):
    from survey_sim.pipeline.job import run

    metrics = run(compose_cfg("method=uniform", "data.demo.n_countries=5", "data.demo.n_questions=8",
                              f"output_dir={tmp_path}"))
    assert "groups" not in metrics
    assert np.isfinite(metrics["splits"]["val"]["ceiling_jsd"])


@pytest.mark.parametrize("steering", ["qa"])
def test_tiny_model_fine_tunes_on_subgroups(tmp_path, steering):
    from survey_sim.pipeline.job import run

    metrics = run(compose_cfg(*SMALL, "model=tiny_random", "method=ft", "trainer.max_steps=2",
                              "trainer.enable_progress_bar=false", "trainer.accelerator=cpu", f"steering={steering}",
                              f"output_dir={tmp_path}"))
    assert metrics["run"]["method"] == "ft" and "groups" in metrics
    assert (tmp_path / "adapter" / "adapter_config.json").is_file()
    config = (tmp_path / "config.yaml").read_text()
    assert "name: qa" in config and "Question: What is your sex?" in config


def test_raw_source_builds_subgroup_splits(tmp_path):
    from tests.data.test_subgroups import write_raw

    raw, book = write_raw(tmp_path)
    cfg = compose_cfg("data=wvs_raw", f"data.root={tmp_path}", f"data.files.raw={raw.name}",
                      f"data.files.questionnaire={book.name}", "data.group_by=[sex]", "data.min_cell=30",
                      "data.test_splits=[]")
    splits = load_splits(cfg.data)
    assert {it.group for it in splits["train"]} == {"Andorra | sex: female", "Andorra | sex: male",
                                                     "Germany | sex: female", "Germany | sex: male"}
    assert {it.question_id for it in splits["train"]} == {"1"} and {it.question_id for it in splits["val"]} == {"164"}
