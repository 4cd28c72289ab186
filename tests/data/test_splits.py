"""load_splits: membership by countries x question ids, checks, errors, subsets."""

import functools
import json
import logging
import os
import re
from pathlib import Path

import numpy as np
import pytest

from survey_sim.data.__main__ import compose_data, main
from survey_sim.data.data_config import data_files, split_names, validate_data_config
from survey_sim.data.item import LETTERS, SurveyItem
from survey_sim.data.sources import write_processed
from survey_sim.data.splits import load_splits
from survey_sim.errors import ConfigError

WVS_TESTS = ["C1-Q3", "C2-Q1", "C2-Q2", "C2-Q3", "C3-Q1", "C3-Q2", "C3-Q3"]
README_COUNTS = {"C1-Q3": 942, "C2-Q1": 731, "C2-Q2": 166, "C2-Q3": 291, "C3-Q1": 749, "C3-Q2": 175, "C3-Q3": 300}
# country -> splits of the paper's registry it appears in (India is in no WVS set)
COUNTRY_SETS = {"Japan": "C1", "Kenya": "C2", "Nigeria": "C2 C3", "Mexico": "C3", "India": ""}
QUESTIONS = {"1": "Q1", "82": "excluded", "164": "Q2", "199": "Q3"}
DATA_TYPE = {("C1", "Q1"): "train", ("C1", "Q2"): "valid", ("C1", "Q3"): "test_1", ("C2", "Q1"): "test_2",
             ("C2", "Q2"): "test_3", ("C2", "Q3"): "test_4", ("C3", "Q1"): "test_5", ("C3", "Q2"): "test_6",
             ("C3", "Q3"): "test_7"}


def item(group, qid, data_type, dist=(1.0, 2.0, 3.0)):
    return SurveyItem(group=group, question_id=qid, question=f"Question {qid}?",
                      options=[f"answer {i}" for i in range(len(dist))], letters=LETTERS[:len(dist)],
                      distribution=dist, split=data_type, source="test")


def paper_files(root: Path, extra=()):
    """The paper's three WVS item files for the countries and questions above, with correct data_type
    (an item of two country sets is written once per set, as in the paper's test file), plus Japan's
    excluded question Q82 marked "train"."""
    files = {"train": [item("Japan", "82", "train")], "valid": [], "test": list(extra)}
    for country, sets in COUNTRY_SETS.items():
        for cset in sets.split():
            for qid, qset in QUESTIONS.items():
                if qset != "excluded":
                    data_type = DATA_TYPE[cset, qset]
                    files.get(data_type, files["test"]).append(
                        item(country, qid, data_type, dist=(1.0, float(len(country)), float(qid))))
    for stem, items in files.items():
        write_processed(items, root / "wvs" / f"{stem}_en.json")
    return root


def cfg(root, *overrides, name="wvs_en"):
    return compose_data([f"data={name}", f"data.root={root}", *overrides])


def keys(items):
    return sorted((it.group, it.question_id) for it in items)


def test_assignment_by_countries_and_questions(tmp_path, caplog):
    root = paper_files(tmp_path)
    with caplog.at_level(logging.WARNING, logger="survey_sim.data.splits"):
        splits = load_splits(cfg(root))
    assert list(splits) == split_names(cfg(root)) == ["train", "val", *WVS_TESTS]
    assert keys(splits["train"]) == [("Japan", "1")]  # Q82 is excluded, India in no set
    assert keys(splits["val"]) == [("Japan", "164")]
    assert keys(splits["C1-Q3"]) == [("Japan", "199")]
    assert keys(splits["C2-Q1"]) == [("Kenya", "1"), ("Nigeria", "1")]
    assert keys(splits["C3-Q1"]) == [("Mexico", "1"), ("Nigeria", "1")]
    assert keys(splits["C3-Q3"]) == [("Mexico", "199"), ("Nigeria", "199")]
    assert all(it.split == name for name, items in splits.items() for it in items)
    # Q82 has data_type "train" in the file but belongs to no split: reported, not silently dropped
    assert re.search(r"split train .* 0 of 1 items .* 1 items with data_type 'train' fall outside", caplog.text)


def test_data_type_disagreement_is_logged(tmp_path, caplog):
    root = paper_files(tmp_path, extra=[item("Kenya", "2", "test_5")])  # Kenya is C2: test_2, not test_5
    with caplog.at_level(logging.WARNING, logger="survey_sim.data.splits"):
        splits = load_splits(cfg(root))
    assert ("Kenya", "2") in keys(splits["C2-Q1"])
    assert re.search(r"split C2-Q1 .* 1 of 3 items have a data_type other than 'test_2' \(\{'test_5': 1\}\)",
                     caplog.text)
    assert re.search(r"split C3-Q1 .* 1 items with data_type 'test_5' fall outside", caplog.text)


def test_unknown_and_empty_splits_are_config_errors(tmp_path):
    root = paper_files(tmp_path)
    with pytest.raises(ConfigError, match=r"unknown split\(s\) \['C4-Q1'\]; valid split names: train, val, C1-Q3"):
        load_splits(cfg(root, "data.test_splits=[C4-Q1]"))
    (root / "wvs" / "test_en.json").write_text(json.dumps([]))
    with pytest.raises(ConfigError, match=r"split 'C1-Q3' is empty after filtering: countries C1 \(Andorra"):
        load_splits(cfg(root))


def test_missing_data_gives_the_ways_to_get_data(tmp_path, monkeypatch):
    monkeypatch.delenv("SURVEY_SIM_DATA", raising=False)
    with pytest.raises(ConfigError, match="build-wvs"):
        validate_data_config(compose_data(["data=wvs_en"]))
    with pytest.raises(ConfigError, match=r"data file\(s\) not found: .*valid_en.json"):
        (tmp_path / "wvs").mkdir()
        (tmp_path / "wvs" / "train_en.json").write_text("this is not read by validation")
        (tmp_path / "wvs" / "test_en.json").write_text("[]")
        validate_data_config(cfg(tmp_path))


def test_max_items_subset_is_seeded_and_stable(tmp_path):
    root = paper_files(tmp_path)
    config = cfg(root, "data.test_splits=[C2-Q1,C3-Q3]", "data.max_items_per_split=1")
    a, b = load_splits(config), load_splits(config)
    assert a == b and all(len(v) == 1 for v in a.values())
    picks = set()
    for seed in range(8):
        picks.add(keys(load_splits(config, seed=seed)["C2-Q1"])[0])
    assert picks == {("Kenya", "1"), ("Nigeria", "1")}  # different seeds choose different items


def test_data_files_lists_what_is_read(tmp_path):
    root = paper_files(tmp_path)
    assert [p.name for p in data_files(cfg(root))] == ["train_en.json", "valid_en.json", "test_en.json"]
    assert data_files(compose_data(["data=demo"])) == []


def test_demo_config_needs_no_files(monkeypatch):
    monkeypatch.delenv("SURVEY_SIM_DATA", raising=False)
    splits = load_splits(compose_data(["data=demo", "data.max_items_per_split=10"]))
    assert list(splits) == ["train", "val", "test-unseen-country", "test-unseen-question", "test-unseen-both"]
    assert all(0 < len(v) <= 10 and all(it.source == "synthetic-demo" for it in v) for v in splits.values())


def write_raw(root: Path) -> None:
    """A tiny respondent-level WVS-7 file and questionnaire (ISO numeric country codes)."""
    rng = np.random.default_rng(0)
    codes = {"Japan": 392, "Kenya": 404, "Nigeria": 566, "Mexico": 484, "India": 356}
    rows = ["B_COUNTRY,W_WEIGHT," + ",".join(f"Q{q}" for q in QUESTIONS)]
    for code in codes.values():
        for _ in range(30):
            answers = rng.integers(-2, 5, size=len(QUESTIONS))
            rows.append(f"{code},{rng.uniform(0.5, 2):.3f}," + ",".join(str(max(a, -1) or 1) for a in answers))
    (root / "wvs").mkdir(parents=True, exist_ok=True)
    (root / "wvs" / "raw.csv").write_text("\n".join(rows) + "\n")
    book = [{"id": q, "split": s, "input": f"Question {q}?\nHere are the options: \n",
             "options": [f"({LETTERS[i]})answer {i}" for i in range(4)]} for q, s in QUESTIONS.items()]
    (root / "wvs" / "questionnaire_en.json").write_text(json.dumps(book))


def test_raw_build_and_processed_files_give_the_same_splits(tmp_path, capsys):
    write_raw(tmp_path)
    raw_cfg = cfg(tmp_path, "data.files.raw=wvs/raw.csv", "data.min_respondents=10", name="wvs_raw")
    from_raw = load_splits(raw_cfg)
    out = tmp_path / "built"
    assert main(["build-wvs", "--raw", str(tmp_path / "wvs" / "raw.csv"), "--questionnaire",
                 str(tmp_path / "wvs" / "questionnaire_en.json"), "--out", str(out),
                 "--min-respondents", "10"]) == 0
    assert "test_en.json" in capsys.readouterr().out
    from_files = load_splits(cfg(out))
    assert list(from_raw) == list(from_files)
    for name in from_raw:
        a = sorted(from_raw[name], key=lambda it: it.key)
        b = sorted(from_files[name], key=lambda it: it.key)
        assert [(x.key, x.options) for x in a] == [(y.key, y.options) for y in b]
        assert all(np.allclose(x.distribution, y.distribution) for x, y in zip(a, b))
    assert keys(from_raw["C3-Q2"]) == [("Mexico", "164"), ("Nigeria", "164")]


# --- real data (SURVEY_SIM_DATA) -------------------------------------------------------------------------


@functools.cache
def real(name):
    return load_splits(compose_data([f"data={name}", f"data.root={os.environ['SURVEY_SIM_DATA']}"]))


def test_real_wvs_en_reproduces_the_readme_counts(data_root, caplog):
    real.cache_clear()
    with caplog.at_level(logging.WARNING, logger="survey_sim.data.splits"):
        splits = real("wvs_en")
    assert "data_type" not in caplog.text  # registry membership agrees with every record's data_type
    train = splits["train"]
    assert len(train) == 6841 and len({it.group for it in train}) == 46
    assert len({it.question_id for it in train}) == 150
    assert len(splits["val"]) == 1586
    assert {name: len(splits[name]) for name in WVS_TESTS} == README_COUNTS
    nigeria = {it.question_id for it in splits["C2-Q1"] if it.group == "Nigeria"}
    assert nigeria == {it.question_id for it in splits["C3-Q1"] if it.group == "Nigeria"}
    assert len(nigeria) == 150


def test_real_pew_splits(data_root):
    splits = real("pew")
    assert list(splits) == ["train", "val", "Pew-C'1", "Pew-C3"]
    for name, n_countries in [("Pew-C'1", 10), ("Pew-C3", 11)]:
        items = splits[name]
        assert len({it.group for it in items}) == n_countries and 300 < len(items) < 1000
        assert not any({"non_national_sample", "old_national_sample"} & set(it.flags) for it in items)
        assert len({it.key for it in items}) == len(items)
    assert "Czechia" in {it.group for it in splits["Pew-C3"]}


def test_real_wvs_zh_has_no_english_text(data_root):
    zh, en = real("wvs_zh"), real("wvs_en")
    assert len(zh["val"]) == 1586
    english = {(it.group, it.question_id): it for v in en.values() for it in v}
    for name, items in zh.items():
        assert items and len(items) <= len(en[name])
        for it in items:
            assert it.language == "zh"
            assert not any(re.search(r"[A-Za-z]{2,}", o) for o in it.options), (name, it.question_id)
            assert it.question != english[(it.group, it.question_id)].question
            assert it.distribution == pytest.approx(english[(it.group, it.question_id)].distribution)


def test_per_split_item_cap_limits_only_the_named_split():
    full = load_splits(compose_data(["data=demo"]))
    capped = load_splits(compose_data(["data=demo", "data.max_items_per_split={train:7}"]))
    assert len(capped["train"]) == 7 < len(full["train"])
    assert {k: len(v) for k, v in capped.items() if k != "train"} == {
        k: len(v) for k, v in full.items() if k != "train"}


def test_run_item_cap_applies_unless_the_data_config_caps():
    """The run's max_items caps every split when the data config's max_items_per_split is null."""
    demo = compose_data(["data=demo"])
    assert {len(v) for v in load_splits(demo, max_items=5).values()} == {5}
    own = load_splits(compose_data(["data=demo", "data.max_items_per_split={train:7}"]), max_items=5)
    assert len(own["train"]) == 7 and len(own["val"]) == len(load_splits(demo)["val"]) > 5
    with pytest.raises(ConfigError, match=r"run config: max_items must be a positive integer or null, got 0"):
        load_splits(demo, max_items=0)


@pytest.mark.parametrize("cap, message", [
    ("{trian:7}", r"names split\(s\) \['trian'\] that the run does not load"),
    ("{train:0}", r"max_items_per_split\['train'\] must be a positive integer"),
    ("-3", r"max_items_per_split must be a positive integer"),
])
def test_bad_item_caps_are_named(cap, message):
    with pytest.raises(ConfigError, match=message):
        load_splits(compose_data(["data=demo", f"data.max_items_per_split={cap}"]))


def _disjoint_dev(splits) -> tuple[set, set]:
    train = {(it.group, it.question_id) for it in splits["train"]}
    dev = {(it.group, it.question_id) for it in splits["dev"]}
    assert dev and not train & dev
    assert not {g for g, _ in train} & {g for g, _ in dev}  # held-out countries, not only items
    return train, dev


def test_real_dev_split_is_held_out_of_training(data_root):
    splits = load_splits(compose_data(["data=wvs_en", "data.dev_split=dev", "data.test_splits=[C2-Q1]"]))
    train, dev = _disjoint_dev(splits)
    assert len(train) + len(dev) == 6841  # the paper's training set, split in two
    assert {g for g, _ in dev} == {"Ecuador", "Mongolia", "Kazakhstan", "Great Britain", "Argentina", "Serbia"}
    assert {q for _, q in dev} <= {q for _, q in train}  # the training questions, asked of unseen countries


def test_demo_dev_split_is_held_out_of_training(monkeypatch):
    splits = load_splits(compose_data(["data=demo", "data.dev_split=dev"]))
    _disjoint_dev(splits)
    assert len(splits["train"]) + len(splits["dev"]) == len(load_splits(compose_data(["data=demo"]))["train"])
    # without dev_split, the training split is whole and no dev split is loaded
    assert "dev" not in load_splits(compose_data(["data=demo"]))
