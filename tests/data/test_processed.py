"""The paper's item JSON: loading, normalisation, bad input, writing back, and the real files."""

from __future__ import annotations

import json
import logging
from collections import Counter

import pytest

from survey_sim.data.sources import SourceResult, load_processed, write_processed
from survey_sim.errors import ConfigError, SurveyDataError

EN = "How would someone from {} answer the following question:\n\n"
ZH = "来自{}的人会如何回答以下问题：\n\n"
TRAILER_EN = " \nHere are the options: \n"
TRAILER_ZH = " \n以下是选项：\n"


def wvs_record(country="Andorra", qid="119", **changes):
    record = {
        "id": qid,
        "instruction": EN.format(country),
        "input": "Women are less corrupt than men?" + TRAILER_EN,
        "options": ["(X)Hard to say", "(A)Strongly agree", "(B)Agree", "(C)Disagree", "(D)Strongly disagree"],
        "options_dist": {"B": 18.15, "C": 35.81, "D": 23.57, "X": 15.85, "A": 6.62},
        "data_type": "train",
        "source": "cao_custom_dataset_2dp",
    }
    record.update(changes)
    return record


def pew_record(country="Nigeria (Non-national sample)", qid=377, **changes):
    record = {
        "id": qid,
        "instruction": EN.format(country),
        "input": "Do you approve?" + TRAILER_EN,
        "options": ["(A)Approve", "(B)Disapprove", "(C)DK/Refused"],
        "options_dist": {"A": 0.6, "B": 0.3},
        "data_type": "test",
    }
    record.update(changes)
    return record


def write(tmp_path, records, name="items.json"):
    path = tmp_path / name
    path.write_text(records if isinstance(records, str) else json.dumps(records, ensure_ascii=False),
                    encoding="utf-8")
    return path


def test_loads_wvs_percentages_with_letter_x(tmp_path):
    path = write(tmp_path, [wvs_record(), wvs_record("Czech Rep.", "120", source=None)])
    result = load_processed(path)
    assert isinstance(result, SourceResult) and result.skipped == [] and result.file == str(path)
    item = result.items[0]
    assert item.group == "Andorra" and item.question_id == "119" and item.language == "en"
    assert item.question == "Women are less corrupt than men? "
    assert item.letters == ("X", "A", "B", "C", "D")
    assert item.options == ("Hard to say", "Strongly agree", "Agree", "Disagree", "Strongly disagree")
    assert item.distribution == pytest.approx([0.1585, 0.0662, 0.1815, 0.3581, 0.2357])
    assert sum(item.distribution) == pytest.approx(1.0)
    assert item.split == "train" and item.source == "cao_custom_dataset_2dp" and item.flags == ()
    second = result.items[1]
    assert second.group == "Czechia" and second.source == "items.json"  # source falls back to the file name
    assert "2 items (2 groups, 2 questions, language en), 0 skipped" in result.summary()


def test_loads_pew_fractions_missing_letters_and_sample_flags(tmp_path):
    records = [pew_record(), pew_record("Nigeria", options_dist={"A": 0.25, "B": 0.25, "C": 0.5}),
               pew_record("India (Old national sample)", qid=1530)]
    items = load_processed(write(tmp_path, records)).items
    assert [it.group for it in items] == ["Nigeria", "Nigeria", "India"]
    assert [it.flags for it in items] == [("non_national_sample",), (), ("old_national_sample",)]
    assert items[0].distribution == pytest.approx([2 / 3, 1 / 3, 0.0])
    assert items[0].question_id == "377" and items[1].distribution == pytest.approx([0.25, 0.25, 0.5])


def test_chinese_instruction_detected_and_language_override(tmp_path):
    record = wvs_record(instruction=ZH.format("Taiwan ROC"), input="您觉得家庭重要吗？" + TRAILER_ZH)
    path = write(tmp_path, [record])
    item = load_processed(path).items[0]
    assert (item.language, item.group, item.question) == ("zh", "Taiwan ROC", "您觉得家庭重要吗？ ")
    assert load_processed(path, language="en").items[0].language == "en"
    with pytest.raises(ConfigError, match="language"):
        load_processed(path, language="fr")


def test_missing_trailer_keeps_input_and_flags_it(tmp_path, caplog):
    path = write(tmp_path, [wvs_record(input="No trailer here?")])
    with caplog.at_level(logging.WARNING):
        item = load_processed(path).items[0]
    assert item.question == "No trailer here?" and item.flags == ("no_options_trailer",)
    assert "no options trailer" in caplog.text


def test_all_zero_distribution_is_a_counted_logged_skip(tmp_path, caplog):
    records = [pew_record(), pew_record("Mongolia", options_dist={"A": 0.0, "B": 0.0, "C": 0.0}),
               pew_record("Peru", options_dist={})]
    with caplog.at_level(logging.WARNING):
        result = load_processed(write(tmp_path, records))
    assert len(result.items) == 1
    assert [index for index, _ in result.skipped] == [1, 2]
    assert "skipped 2 record(s)" in caplog.text and "all zeros" in caplog.text


def test_same_item_in_two_data_types_is_allowed(tmp_path):
    """Nigeria is in C2 and C3: test_en.json holds its items under two data types."""
    records = [wvs_record("Nigeria", data_type="test_2"), wvs_record("Nigeria", data_type="test_5")]
    assert [it.split for it in load_processed(write(tmp_path, records)).items] == ["test_2", "test_5"]


def test_sum_far_from_scale_is_logged(tmp_path, caplog):
    records = [pew_record(), pew_record("Peru", options_dist={"A": 0.6, "B": 0.3, "C": 0.17})]
    with caplog.at_level(logging.WARNING):
        result = load_processed(write(tmp_path, records))
    assert len(result.items) == 2 and "record 1 sums to 1.07" in caplog.text


def _bad(field, **changes):
    return field, [wvs_record(), wvs_record("Peru", **changes)]


BAD_RECORDS = [
    ("record", [wvs_record(), ["not", "an", "object"]]),
    ("id", [wvs_record(), {k: v for k, v in wvs_record().items() if k != "id"}]),
    ("options_dist", [wvs_record(), {k: v for k, v in wvs_record().items() if k != "options_dist"}]),
    _bad("id", id=["1"]),
    _bad("id", id=True),
    _bad("id", id="  "),
    _bad("instruction", instruction=5),
    _bad("input", input=None),
    _bad("data_type", data_type=1),
    _bad("source", source=3),
    _bad("options", options="(A)Yes, (B)No"),
    _bad("options", options=["(A)Yes", "No"]),
    _bad("options", options=["(A)Yes", "(a)No"]),
    _bad("options", options=["(A)Yes", "(A)No"]),
    _bad("options", options=["(A)Yes", "(B)  "]),
    _bad("options", options=["(A)Only"], options_dist={"A": 1}),
    _bad("options", options=[f"({chr(65 + i % 26)})o{i}" for i in range(27)]),
    _bad("options_dist", options_dist=[1, 2]),
    _bad("options_dist", options_dist={"E": 1.0}),
    _bad("options_dist", options_dist={"A": -1.0, "B": 5.0}),
    _bad("options_dist", options_dist={"A": "5", "B": 5.0}),
    _bad("options_dist", options_dist={"A": True, "B": 5.0}),
    _bad("options_dist", options_dist={"A": 123456789.5, "B": 5.0}),  # written as 1e400 (infinite)
    _bad("instruction", instruction="What would a Peruvian say?\n\n"),
    _bad("instruction", instruction=EN.format("Narnia")),
    _bad("n_respondents", n_respondents=-3),
    _bad("instruction", instruction=EN.format("Narnia"), options_dist={}),  # checked before the zero skip
    ("id", [wvs_record(), wvs_record()]),
]


@pytest.mark.parametrize(("field", "records"), BAD_RECORDS)
def test_bad_record_names_file_record_and_field(tmp_path, field, records):
    path = write(tmp_path, json.dumps(records).replace("123456789.5", "1e400"))
    with pytest.raises(SurveyDataError) as info:
        load_processed(path)
    message = str(info.value)
    assert f"file {path}" in message and "record 1" in message and f"field '{field}'" in message
    assert (info.value.file, info.value.record, info.value.field) == (str(path), 1, field)


@pytest.mark.parametrize(("text", "expected"), [
    ('{"id": 1}', "expected a JSON list"), ("[{]", "not valid JSON"), ("[NaN]", "expected an object"),
    ("", "not valid JSON"),
])
def test_bad_file_names_the_file(tmp_path, text, expected):
    path = write(tmp_path, text)
    with pytest.raises(SurveyDataError, match=expected) as info:
        load_processed(path)
    assert info.value.file == str(path)


def test_missing_file(tmp_path):
    with pytest.raises(SurveyDataError, match="file not found"):
        load_processed(tmp_path / "nope.json")


def test_write_processed_round_trip(tmp_path):
    records = [wvs_record(), pew_record(), pew_record("India (Current national sample)", qid=5),
               wvs_record(instruction=ZH.format("China"), input="问题？" + TRAILER_ZH),
               wvs_record("Peru", input="No trailer")]
    items = load_processed(write(tmp_path, records)).items
    items[0] = items[0].with_(n_respondents=1203)
    out = write_processed(items, tmp_path / "sub" / "out.json")
    again = load_processed(out).items
    assert len(again) == len(items)
    for before, after in zip(items, again):
        for name in ("group", "question_id", "question", "options", "letters", "language", "split", "source",
                     "flags", "n_respondents"):
            assert getattr(after, name) == getattr(before, name), name
        assert after.distribution == pytest.approx(before.distribution, abs=1e-12)
    written = json.loads(out.read_text(encoding="utf-8"))
    assert written[2]["instruction"] == EN.format("India (Current national sample)")
    assert sum(written[0]["options_dist"].values()) == pytest.approx(100.0)
    assert not list((tmp_path / "sub").glob(".*.tmp"))  # atomic: no temporary file left behind


# --- the real files ($SURVEY_SIM_DATA) -------------------------------------------------------------------


def test_real_train(data_root):
    result = load_processed(data_root / "wvs/train_en.json")
    items = result.items
    assert len(items) == 6841 and result.skipped == []
    assert len({it.group for it in items}) == 46 and len({it.question_id for it in items}) == 150
    assert {it.split for it in items} == {"train"} and {it.language for it in items} == {"en"}
    assert Counter(it.letters[0] for it in items)["X"] > 0  # Q119, Q122-Q129 use letter X


def test_real_valid_en_and_zh_match(data_root):
    en = load_processed(data_root / "wvs/valid_en.json").items
    zh = load_processed(data_root / "wvs/valid_zh.json").items
    assert len(en) == len(zh) == 1586
    assert {it.language for it in zh} == {"zh"} and {it.language for it in en} == {"en"}
    assert {it.group for it in zh} == {it.group for it in en} and len({it.group for it in en}) == 46
    by_key = {(it.group, it.question_id): it.distribution for it in en}
    assert all(by_key[it.group, it.question_id] == pytest.approx(it.distribution) for it in zh)


def test_real_test_splits(data_root):
    items = load_processed(data_root / "wvs/test_en.json").items
    counts = Counter(it.split for it in items)
    assert len(items) == 3354
    assert [counts[f"test_{k}"] for k in range(1, 8)] == [942, 731, 166, 291, 749, 175, 300]


def test_real_pew(data_root, caplog):
    with caplog.at_level(logging.WARNING):
        result = load_processed(data_root / "pew/global_pew_test.json")
    n_records = len(json.loads((data_root / "pew/global_pew_test.json").read_text(encoding="utf-8")))
    assert n_records == 3991
    assert len(result.items) + len(result.skipped) == 3991
    assert len(result.skipped) == 8 and len(result.items) == 3983  # 8 records of question 2446 have no answers
    assert all("all zeros" in why for _, why in result.skipped)
    assert "skipped 8 record(s)" in caplog.text
    flagged = Counter(flag for it in result.items for flag in it.flags)
    assert flagged["non_national_sample"] > 0 and flagged["current_national_sample"] > 0
    groups = {it.group for it in result.items}
    assert {"Great Britain", "Czechia", "South Korea", "Taiwan ROC", "Palestine"} <= groups
    assert not {"Britain", "Czech Rep.", "S. Korea", "Taiwan"} & groups
