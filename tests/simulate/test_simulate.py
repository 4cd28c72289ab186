"""`survey_sim.simulate` end to end: a tiny_random run folder (trained and calibrated by the pipeline) and
zero-shot SmolLM2 answer a small questionnaire; the table, JSON copy, metadata and figures are checked."""

from __future__ import annotations

import json
import os

import numpy as np
import pandas as pd
import pytest

from survey_sim.simulate.__main__ import main
from survey_sim.simulate.countries import resolve_countries
from survey_sim.simulate.outputs import CAUTION

QUESTIONNAIRE = """\
questions:
  - id: trust_science
    text: How much do you trust scientists?
    options: [A great deal, Quite a lot, Not very much, None at all]
    ordinal: true
  - id: remote_work
    text: Should employers allow working from home?
    options: [Yes, No, It depends]
"""
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def questionnaire(tmp_path_factory):
    path = tmp_path_factory.mktemp("q") / "questions.yaml"
    path.write_text(QUESTIONNAIRE)
    return path


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A run folder from the pipeline: tiny_random, 2 LoRA steps on the demo survey, calibrate=true."""
    from hydra import compose, initialize_config_dir

    from survey_sim.pipeline.job import run
    from survey_sim.run import CONFIG_DIR

    out = tmp_path_factory.mktemp("run")
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(config_name="config", overrides=[
            "data=demo", "model=tiny_random", "method=ft", "trainer.max_steps=2", "logger=csv", "calibrate=true",
            "data.demo.n_countries=6", "data.demo.n_questions=8", "trainer.enable_progress_bar=false",
            f"output_dir={out}"])
    return out, run(cfg)


def _check_outputs(out, countries, question_ids, permutations):
    table = pd.read_csv(out / "simulation.csv")
    sums = table.groupby(["country", "question_id"])["probability"].sum()
    assert set(sums.index) == {(c, q) for c in countries for q in question_ids}
    assert np.allclose(sums.to_numpy(), 1.0)
    assert (table["probability_low"] <= table["probability"] + 1e-9).all()
    assert (table["probability"] <= table["probability_high"] + 1e-9).all()
    assert set(table["n_permutations"]) == permutations
    per_item = table.groupby(["country", "question_id"])
    assert (per_item["predicted_majority"].nunique() == 1).all()
    for _, part in per_item:
        assert part.loc[part["probability"].idxmax(), "option"] == part["predicted_majority"].iloc[0]
        p = part["probability"].to_numpy()
        assert part["entropy_bits"].iloc[0] == pytest.approx(-(p * np.log2(p)).sum())
    parquet = pd.read_parquet(out / "simulation.parquet")
    pd.testing.assert_frame_equal(parquet.reset_index(drop=True), table, check_dtype=False)
    copy = json.loads((out / "simulation.json").read_text())
    assert len(copy["table"]) == len(table) and copy["metadata"]["caution"] == CAUTION
    figures = [out / "figures" / f"question_{q}.png" for q in question_ids]
    figures += [out / "figures" / f"country_{c.replace(' ', '_')}.png" for c in countries]
    figures.append(out / "figures" / "diversity.png")
    for fig in figures:
        data = fig.read_bytes()
        assert data.startswith(PNG) and len(data) > 5000, fig
    assert CAUTION in (out / "README.md").read_text()
    return table, json.loads((out / "metadata.json").read_text())


def test_pipeline_calibrates_and_simulate_applies_it(tiny_run, questionnaire, tmp_path, monkeypatch, capsys):
    run_dir, metrics = tiny_run
    record = json.loads((run_dir / "calibration.json").read_text())
    assert metrics["calibration"]["temperature"] == pytest.approx(record["temperature"])
    assert record["val_after"]["kl"] <= record["val_before"]["kl"]
    # the test pass ran at the fitted temperature: val metrics in metrics.json are the calibrated ones
    assert metrics["splits"]["val"]["jsd"] == pytest.approx(record["val_after"]["jsd"], abs=1e-5)

    monkeypatch.delenv("SURVEY_SIM_DATA", raising=False)
    out = tmp_path / "sim"
    assert main(["--questionnaire", str(questionnaire), "--countries", "Kenya,JPN,Peru", "--run", str(run_dir),
                 "--out", str(out)]) == 0
    assert "not survey evidence" in capsys.readouterr().out
    table, meta = _check_outputs(out, ["Kenya", "Japan", "Peru"], ["trust_science", "remote_work"], {3, 4})
    assert meta["calibration"]["applied"] and meta["calibration"]["temperature"] == record["temperature"]
    assert meta["adapter"] == str(run_dir / "adapter") and meta["model"]["name"] == "tiny_random"
    assert meta["training_data"]["name"] == "demo" and meta["method"] == "ft"
    assert "no human reference" in meta["human_reference"]
    assert set(table.loc[table["question_id"] == "remote_work", "option"]) == {"Yes", "No", "It depends"}

    # the same adapter without calibration (and given as an adapter folder) predicts differently
    out2 = tmp_path / "sim2"
    assert main(["--questionnaire", str(questionnaire), "--countries", "Kenya", "--adapter",
                 str(run_dir / "adapter"), "--model", "tiny_random", "--out", str(out2), "--permutations", "1",
                 "--no-figures"]) == 0
    meta2 = json.loads((out2 / "metadata.json").read_text())
    assert not meta2["calibration"]["applied"] and meta2["adapter"] == str(run_dir / "adapter")
    one = pd.read_csv(out2 / "simulation.csv")
    assert set(one["n_permutations"]) == {1} and (one["probability_low"] == one["probability_high"]).all()
    if record["temperature"] != 1.0:
        first = table[table["country"] == "Kenya"]["probability"].to_numpy()
        assert not np.allclose(first, one["probability"].to_numpy(), atol=1e-6)


def test_zero_shot_smollm2(questionnaire, tmp_path, caplog):
    out = tmp_path / "zs"
    with caplog.at_level("INFO", logger="survey_sim.simulate.predict"):
        assert main(["--questionnaire", str(questionnaire), "--countries", "KE,Great Britain", "--model",
                     "smollm2_135m", "--out", str(out), "--permutations", "2"]) == 0
    table, meta = _check_outputs(out, ["Kenya", "Great Britain"], ["trust_science", "remote_work"], {2})
    assert "simulated 8 of 8 prompts (2 questions x 2 countries x 2 option orders)" in caplog.text
    speed = meta["throughput"]
    assert speed["prompts"] == 8 and speed["prompts_per_s"] == pytest.approx(8 / speed["inference_s"], rel=0.01)
    assert 0 < speed["inference_s"] < speed["total_s"] and speed["device"] == "cpu"
    assert meta["adapter"] is None and meta["method"] == "zs" and not meta["calibration"]["applied"]
    assert meta["model"]["name"] == "smollm2_135m" and meta["permutations"]["requested"] == 2
    if os.environ.get("SURVEY_SIM_DATA"):
        assert meta["human_reference"].startswith("human reference: WVS-7 train split")
    else:
        assert "no human reference" in meta["human_reference"]
    assert (table["probability_high"] - table["probability_low"]).max() > 0  # two orders disagree somewhat


def test_human_reference_is_loaded_once_per_process(monkeypatch):
    from survey_sim.simulate import reference as simulate

    calls = []

    def load():
        calls.append(1)
        return pd.DataFrame({"question_id": ["q"], "n_options": [3], "human": [0.8], "n_groups": [2]}), "note"

    monkeypatch.setattr(simulate, "_REFERENCES", {})
    monkeypatch.setattr(simulate, "_load_human_reference", load)
    first, note = simulate.human_diversity_reference()
    first.loc[0, "human"] = 0.0  # a caller changing its copy changes nothing cached
    second, _ = simulate.human_diversity_reference()
    assert len(calls) == 1 and note == "note" and second.loc[0, "human"] == 0.8


def test_countries_by_name_code_and_set():
    assert resolve_countries("Kenya, jpn,PE,392") == ["Kenya", "Japan", "Peru"]
    assert resolve_countries("C2,Kenya")[:2] == ["Egypt", "Ethiopia"] and len(resolve_countries("C2")) == 8
    assert resolve_countries("avaloria,Kenya", extra=["Avaloria"]) == ["Avaloria", "Kenya"]


@pytest.mark.parametrize("args, words", [
    (["--countries", "Kenyaa", "--model", "tiny_random"], "close matches: Kenya"),
    (["--countries", "C4", "--model", "tiny_random"], "named sets: C1, C2, C3"),
    (["--countries", "Kenya", "--model", "tiny_rando"], "close matches: tiny_random"),
    (["--countries", "Kenya", "--adapter", "someone/adapter"], "--adapter needs --model"),
    (["--countries", "Kenya", "--adapter", "someone/missing-adapter", "--model", "tiny_random"],
     "cannot load adapter 'someone/missing-adapter'"),
    (["--countries", "Kenya"], "name the model"),
])
def test_guard_rails(questionnaire, tmp_path, capsys, args, words):
    assert main(["--questionnaire", str(questionnaire), "--out", str(tmp_path / "o"), *args]) == 2
    assert words in capsys.readouterr().err
    assert not (tmp_path / "o" / "simulation.csv").exists()


def test_bad_questionnaire_row_is_an_error(tmp_path, capsys):
    path = tmp_path / "q.csv"
    path.write_text("id,text,options\nq1,First?,a|b\nq1,Again?,a|b\n")
    assert main(["--questionnaire", str(path), "--countries", "Kenya", "--model", "tiny_random",
                 "--out", str(tmp_path / "o")]) == 2
    assert "record 2, field 'id': duplicate question id 'q1'" in capsys.readouterr().err


def test_groups_per_country_with_the_steering_format(questionnaire, tmp_path):
    out = tmp_path / "groups"
    assert main(["--questionnaire", str(questionnaire), "--countries", "Kenya,JPN", "--model", "tiny_random",
                 "--out", str(out), "--permutations", "1", "--groups", "sex=female;sex=male,age=50+",
                 "--steering", "portray"]) == 0
    table = pd.read_csv(out / "simulation.csv")
    groups = {"Kenya | sex: female", "Kenya | sex: male, age: 50+", "Japan | sex: female",
              "Japan | sex: male, age: 50+"}
    assert set(table["group"]) == groups and set(table["country"]) == {"Kenya", "Japan"}
    assert set(table["attribute:sex"]) == {"female", "male"}
    sums = table.groupby(["group", "question_id"])["probability"].sum()
    assert len(sums) == 8 and np.allclose(sums.to_numpy(), 1.0)
    # the groups' prompts differ, so do the predictions of one country
    kenya = table[table["country"] == "Kenya"].groupby("group")["probability"].apply(list)
    assert not np.allclose(*kenya.to_list())
    meta = json.loads((out / "metadata.json").read_text())
    assert meta["groups"] == [{"sex": "female"}, {"sex": "male", "age": "50+"}] and meta["steering"] == "portray"
    assert len(list((out / "figures").glob("country_*.png"))) == 4
    assert "- groups: sex=female; sex=male, age=50+ (steering format portray)" in (out / "README.md").read_text()


@pytest.mark.parametrize("groups, words", [
    ("religion=none", "unknown attribute 'religion'"),
    ("sex=other", "sex has no value 'other'"),
    ("sex female", "expected attribute=value pairs"),
    ("sex=female,sex=male", "an attribute appears twice"),
])
def test_bad_groups(questionnaire, tmp_path, capsys, groups, words):
    assert main(["--questionnaire", str(questionnaire), "--countries", "Kenya", "--model", "tiny_random",
                 "--out", str(tmp_path / "o"), "--groups", groups]) == 2
    assert words in capsys.readouterr().err


def test_simulate_applies_an_anchored_runs_fitted_parameters(tmp_path, monkeypatch):
    """An anchored run (anchor=prior on the demo survey, 2 dev countries): simulate refits the base on the run's
    training split and applies the parameters of metrics.json. With the model's weight set to 0 there, it
    returns the base exactly: the question prior on a trained question, uniform on a new one."""
    from hydra import compose, initialize_config_dir

    from survey_sim.pipeline.job import prepare_splits, run
    from survey_sim.run import CONFIG_DIR

    run_dir = tmp_path / "run"
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(config_name="config", overrides=[
            "data=demo", "model=tiny_random", "method=ft", "anchor=prior", "data.dev_split=dev",
            "trainer.max_steps=2", "logger=csv", "data.demo.n_countries=6", "data.demo.n_questions=8",
            "trainer.enable_progress_bar=false", f"output_dir={run_dir}"])
    metrics = run(cfg)
    assert metrics["anchor"]["base"] == "prior" and set(metrics["anchor"]["params"]) == {"trained", "new"}
    train = prepare_splits(cfg)[0]["train"]
    trained = train[0]
    questions = tmp_path / "q.yaml"
    questions.write_text(json.dumps({"questions": [
        {"id": trained.question_id, "text": trained.question, "options": list(trained.options)},
        {"id": "remote_work", "text": "Should employers allow working from home?", "options": ["Yes", "No"]}]}))
    monkeypatch.delenv("SURVEY_SIM_DATA", raising=False)

    def simulate(out, *extra):
        assert main(["--questionnaire", str(questions), "--countries", "Kenya", "--run", str(run_dir), "--out",
                     str(tmp_path / out), "--no-figures", "--permutations", "2", *extra]) == 0
        table = pd.read_csv(tmp_path / out / "simulation.csv")
        return ({q: part["probability"].to_numpy() for q, part in table.groupby("question_id")},
                json.loads((tmp_path / out / "metadata.json").read_text()))

    record = json.loads((run_dir / "metrics.json").read_text())
    record["anchor"]["params"] = {g: {"model_weight": 0.0, "base_weight": 1.0, "temperature": 1.0}
                                  for g in ("trained", "new")}
    (run_dir / "metrics.json").write_text(json.dumps(record))
    base_only, meta = simulate("base")
    assert meta["anchor"]["applied"] and meta["anchor"]["base"] == "prior"
    assert meta["anchor"]["train_items"] == len(train)
    per_country = {}
    for it in train:
        if it.question_id == trained.question_id:
            per_country.setdefault(it.group, []).append(it.distribution)
    prior = np.mean([np.mean(d, axis=0) for d in per_country.values()], axis=0)
    np.testing.assert_allclose(base_only[trained.question_id], prior, atol=1e-6)
    np.testing.assert_allclose(base_only["remote_work"], [0.5, 0.5], atol=1e-9)

    model_alone, meta = simulate("model", "--no-anchor")
    assert not meta["anchor"]["applied"] and "--no-anchor" in meta["anchor"]["reason"]
    assert not np.allclose(model_alone[trained.question_id], prior, atol=1e-3)
