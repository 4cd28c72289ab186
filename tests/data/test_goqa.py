"""GlobalOpinionQA: literal parsing without eval, local copies in every format, the hub loader, bad rows."""

from __future__ import annotations

import json
import logging
import sys
import types

import pandas as pd
import pytest

from survey_sim.data.sources import load_goqa, parse_options, parse_selections
from survey_sim.errors import ConfigError, SurveyDataError

DD = "defaultdict(<class 'list'>, {})"


def dd(body: str) -> str:
    return DD.replace("{}", "{" + body + "}")


ROWS = [
    {"question": "Do you think people should be free to say what they want?",
     "selections": dd("'Belgium': [0.1, 0.9], 'Britain': [0.45, 0.55], 'Nigeria (Non-national sample)': [0.3, 0.7]"),
     "options": "['Yes', 'No']", "source": "GAS"},
    {"question": "How important is family in your life?",
     "selections": dd("'Andorra': [0.2, 0.3, 0.5], 'Taiwan ROC': [0.6, 0.3, 0.1]"),
     "options": "['Very important', \"Don't know\", 'Not important']", "source": "WVS"},
    {"question": "", "selections": dd("'Peru': [0.5, 0.5]"), "options": "['Yes', 'No']", "source": "GAS"},
    {"question": "Please tell me if you have a favorable opinion of the EU.",
     "selections": dd("'Mongolia': [0.0, 0.0, 0.0], 'Czech Rep.': [0.5, 0.5], 'S. Korea': [0.25, 0.5, 0.25]"),
     "options": "['Favorable', 'Unfavorable', 'DK/Refused']", "source": "GAS"},
]


@pytest.fixture
def goqa_csv(tmp_path):
    path = tmp_path / "global_opinions.csv"
    pd.DataFrame(ROWS).to_csv(path, index=False)
    return path


def test_parse_selections_and_options():
    assert parse_selections(dd("'Belgium': [0.1, 0.9], \"Cote d'Ivoire\": [1, 0]")) == {
        "Belgium": [0.1, 0.9], "Cote d'Ivoire": [1.0, 0.0]}
    assert parse_selections("{'Peru': [0.5, 0.5]}") == {"Peru": [0.5, 0.5]}
    assert parse_selections(DD) == {}
    assert parse_options("['Yes', \"Don't know\", 'It\\'s \"fine\"']") == ["Yes", "Don't know", "It's \"fine\""]
    assert parse_options("['1', 2, 3.5]") == ["1", "2", "3.5"]


@pytest.mark.parametrize("text", [
    "__import__('os').system('echo hacked')",
    dd("'a': [__import__('os')]"),
    "defaultdict(<class 'list'>, __import__('os'))",
    "defaultdict(<class 'set'>, {'a': [1]})",
    "{'a': (1, 2)}", "{'a': [1, 'x']}", "{1: [0.5]}", "{'a': [True]}", "{'a': [1e999]}", "{'a': [1+2j]}",
    "{'a': [1, 2]", "[1, 2]", "", "{" * 5000, "{'a': [1], **x}", "{'a': [x for x in range(3)]}", 5,
])
def test_parse_selections_rejects_junk(text):
    with pytest.raises(SurveyDataError):
        parse_selections(text)


@pytest.mark.parametrize("text", [
    "os.system('ls')", "['a', None]", "['a', ['b']]", "{'a': 1}", "('a', 'b'", "['a', b]", None, "",
])
def test_parse_options_rejects_junk(text):
    with pytest.raises(SurveyDataError):
        parse_options(text)


def test_load_pew_rows_from_csv(goqa_csv, caplog):
    with caplog.at_level(logging.WARNING):
        result = load_goqa(goqa_csv)
    keys = [(it.question_id, it.group, it.flags) for it in result.items]
    assert keys == [("0", "Belgium", ()), ("0", "Great Britain", ()), ("0", "Nigeria", ("non_national_sample",)),
                    ("3", "South Korea", ())]
    first = result.items[0]
    assert first.options == ("Yes", "No") and first.letters == ("A", "B")
    assert first.distribution == pytest.approx((0.1, 0.9)) and first.language == "en"
    assert first.question == ROWS[0]["question"] and first.source == "GlobalOpinionQA:GAS"
    assert result.skipped == [(2, "no question text"), ("3/Mongolia", "distribution is all zeros (no answers)"),
                              ("3/Czech Rep.", "2 values for 3 options")]
    assert "skipped 3 record(s)" in caplog.text
    # the prompt names the country as the table does ("Britain", "S. Korea"); the group is the canonical name
    assert [it.prompt_group for it in result.items] == ["Belgium", "Britain", "Nigeria (Non-national sample)",
                                                        "S. Korea"]


def test_source_selection(goqa_csv):
    wvs = load_goqa(goqa_csv, source="WVS").items
    assert [(it.question_id, it.group) for it in wvs] == [("1", "Andorra"), ("1", "Taiwan ROC")]
    assert wvs[0].options[1] == "Don't know"
    assert len(load_goqa(goqa_csv, source="gas").items) == 4
    assert len(load_goqa(goqa_csv, source=None).items) == 6
    with pytest.raises(ConfigError, match="source must be one of"):
        load_goqa(goqa_csv, source="ess")


def test_json_jsonl_and_parquet_copies_load_alike(goqa_csv, tmp_path):
    reference = [(it.key, it.distribution) for it in load_goqa(goqa_csv, source=None).items]
    (tmp_path / "g.json").write_text(json.dumps(ROWS), encoding="utf-8")
    (tmp_path / "g.jsonl").write_text("".join(json.dumps(r) + "\n" for r in ROWS), encoding="utf-8")
    pd.DataFrame(ROWS).to_parquet(tmp_path / "g.parquet")
    native = [{**r, "options": parse_options(r["options"]), "selections": parse_selections(r["selections"])}
              for r in ROWS]  # a copy with decoded columns
    (tmp_path / "native.json").write_text(json.dumps(native), encoding="utf-8")
    for name in ("g.json", "g.jsonl", "g.parquet", "native.json"):
        assert [(it.key, it.distribution) for it in load_goqa(tmp_path / name, source=None).items] == reference


def _with(**changes):
    return [ROWS[0], {**ROWS[3], **changes}]


@pytest.mark.parametrize(("rows", "field", "match"), [
    (_with(selections="{'Peru': [0.5, 0.5]"), "selections", "not a valid literal"),
    (_with(selections=dd("'Peru': [0.5, -0.5, 1.0]")), "selections", "negative"),
    (_with(selections=dd("'Narnia': [0.5, 0.5, 0.0]")), "selections", "unknown country"),
    (_with(selections=dd("'Britain': [0.5, 0.5, 0.0], 'Great Britain': [0.2, 0.8, 0.0]")), "selections",
     "same country"),
    (_with(options="Yes, No"), "options", "not a list literal"),
    (_with(options=str([f"o{i}" for i in range(27)])), "options", "more than the 26"),
    (_with(options="['Yes', ' ']", selections=dd("'Peru': [0.5, 0.5]")), "options", "empty"),
    (_with(source=""), "source", "expected a source name"),
])
def test_bad_rows_name_file_row_and_field(tmp_path, rows, field, match):
    path = tmp_path / "bad.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    with pytest.raises(SurveyDataError, match=match) as info:
        load_goqa(path)
    assert (info.value.file, info.value.record, info.value.field) == (str(path), 1, field)


def test_bad_tables(tmp_path):
    path = tmp_path / "g.csv"
    pd.DataFrame([{k: v for k, v in ROWS[0].items() if k != "selections"}]).to_csv(path, index=False)
    with pytest.raises(SurveyDataError, match="field 'selections': missing"):
        load_goqa(path)
    (tmp_path / "g.json").write_text('{"question": "x"}', encoding="utf-8")
    with pytest.raises(SurveyDataError, match="list of row objects"):
        load_goqa(tmp_path / "g.json")
    (tmp_path / "g.jsonl").write_text("{not json\n", encoding="utf-8")
    with pytest.raises(SurveyDataError, match="cannot read the table"):
        load_goqa(tmp_path / "g.jsonl")
    with pytest.raises(SurveyDataError, match="file not found"):
        load_goqa(tmp_path / "missing.csv")


def test_hub_loader(monkeypatch):
    calls = []

    class FakeDataset:
        def to_pandas(self):
            return pd.DataFrame(ROWS)

    def load_dataset(name, split):
        calls.append((name, split))
        return FakeDataset()

    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=load_dataset))
    result = load_goqa()
    assert calls == [("Anthropic/llm_global_opinions", "train")]
    assert result.file == "Anthropic/llm_global_opinions" and len(result.items) == 4


def test_hub_loader_errors(monkeypatch):
    monkeypatch.setitem(sys.modules, "datasets", None)  # not installed
    with pytest.raises(ConfigError, match=r"survey-sim\[hub\]"):
        load_goqa()

    def offline(name, split):
        raise ConnectionError("no network")

    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=offline))
    with pytest.raises(ConfigError, match="ConnectionError: no network.*local copy"):
        load_goqa()


@pytest.mark.parametrize("rows, expected", [("pew", {"GAS"}), ("wvs", {"WVS"}), ("all", {"GAS", "WVS"})])
def test_splits_select_goqa_rows_by_source(tmp_path, rows, expected):
    """data.goqa_rows chooses the GlobalOpinionQA rows of the Pew splits (pew_source=goqa): Pew/GAS, WVS or both."""
    from hydra import compose, initialize_config_dir

    from survey_sim.data.splits import load_splits
    from survey_sim.run import CONFIG_DIR

    table = [{"question": "Is it right?", "selections": dd("'Peru': [0.2, 0.8]"), "options": "['Yes', 'No']",
              "source": "GAS"},
             {"question": "Is it wrong?", "selections": dd("'Peru': [0.6, 0.4], 'Greece': [0.5, 0.5]"),
              "options": "['Yes', 'No']", "source": "WVS"}]
    path = tmp_path / "goqa.csv"
    pd.DataFrame(table).to_csv(path, index=False)
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(config_name="config", overrides=[
            "data=pew", f"data.root={tmp_path}", "data.pew_source=goqa", f"data.files.pew={path.name}",
            "data.train_split=null", "data.val_split=null", "data.test_splits=[Pew-C3]", f"data.goqa_rows={rows}"])
    items = load_splits(cfg.data)["Pew-C3"]
    assert {it.source.split(":")[1] for it in items} == expected
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        bad = compose(config_name="config", overrides=[
            "data=pew", f"data.root={tmp_path}", "data.pew_source=goqa", f"data.files.pew={path.name}",
            "data.train_split=null", "data.val_split=null", "data.test_splits=[Pew-C3]", "data.goqa_rows=ess"])
    with pytest.raises(ConfigError, match="goqa_rows must be one of pew, wvs, all"):
        load_splits(bad.data)
