"""Reading questionnaires: YAML, JSON and CSV give the same questions; bad rows are errors naming the row."""

from __future__ import annotations

import json

import pytest

from survey_sim.errors import SurveyDataError
from survey_sim.simulate.questionnaire import read_questionnaire

QUESTIONS = [
    {"id": "trust", "text": "How much do you trust scientists?",
     "options": ["A great deal", "Quite a lot", "Not very much", "None at all"], "ordinal": True},
    {"id": "wfh", "text": "Should employers allow working from home?", "options": ["Yes", "No", "It depends"]},
]


def _expected():
    return [("trust", QUESTIONS[0]["text"], tuple(QUESTIONS[0]["options"]), True),
            ("wfh", QUESTIONS[1]["text"], ("Yes", "No", "It depends"), False)]


def _as_tuples(questions):
    return [(q.id, q.text, q.options, q.ordinal) for q in questions]


def test_yaml_json_and_both_csv_layouts_agree(tmp_path):
    (tmp_path / "q.yaml").write_text(
        "questions:\n"
        "  - id: trust\n    text: How much do you trust scientists?\n"
        "    options: [A great deal, Quite a lot, Not very much, None at all]\n    ordinal: true\n"
        "  - id: wfh\n    text: Should employers allow working from home?\n    options: [Yes, No, It depends]\n")
    (tmp_path / "q.json").write_text(json.dumps(QUESTIONS))
    (tmp_path / "q.csv").write_text(
        "id,text,options,ordinal\n"
        "trust,How much do you trust scientists?,A great deal|Quite a lot|Not very much|None at all,yes\n"
        "wfh,Should employers allow working from home?,Yes | No | It depends,\n")
    (tmp_path / "cols.csv").write_text(
        "id,question,option_1,option_2,option_3,option_4,ordinal\n"
        "trust,How much do you trust scientists?,A great deal,Quite a lot,Not very much,None at all,true\n"
        "wfh,Should employers allow working from home?,Yes,No,It depends,,false\n")
    for name in ("q.yaml", "q.json", "q.csv", "cols.csv"):
        assert _as_tuples(read_questionnaire(tmp_path / name)) == _expected(), name


@pytest.mark.parametrize("record, field, words", [
    ({"id": "q", "text": "T", "options": [f"o{i}" for i in range(27)]}, "options", "27 options"),
    ({"id": "q", "text": "T", "options": ["a", "", "c"]}, "options", "[2] are empty"),
    ({"id": "q", "text": "T", "options": ["a"]}, "options", "at least 2"),
    ({"id": "q", "text": "T", "options": ["a", "a"]}, "options", "duplicate option"),
    ({"id": "q", "text": " ", "options": ["a", "b"]}, "text", "text is missing"),
    ({"id": "", "text": "T", "options": ["a", "b"]}, "id", "id is missing"),
    ({"id": "q", "text": "T", "options": "a, b"}, "options", "must be a list"),
    ({"id": "q", "text": "T", "options": ["a", "b"], "ordinal": "maybe"}, "ordinal", "true or false"),
    ({"id": "q", "txt": "T", "options": ["a", "b"]}, "txt", "unknown key"),
])
def test_bad_question_names_row_and_field(tmp_path, record, field, words):
    path = tmp_path / "q.json"
    path.write_text(json.dumps([QUESTIONS[0], record]))
    with pytest.raises(SurveyDataError) as err:
        read_questionnaire(path)
    assert err.value.record == 1 and err.value.field == field and words in str(err.value)
    assert str(path) in str(err.value)


def test_duplicate_ids_name_both_rows_in_csv(tmp_path):
    path = tmp_path / "q.csv"
    path.write_text("id,text,options\nq1,First?,a|b\nq2,Second?,a|b\n\nq1,Again?,a|b\n")
    with pytest.raises(SurveyDataError, match=r"record 3, field 'id': duplicate question id 'q1' \(first at "
                                               r"record 1\)"):
        read_questionnaire(path)


def test_csv_gap_between_option_columns_is_an_empty_option(tmp_path):
    path = tmp_path / "q.csv"
    path.write_text("id,text,option_1,option_2,option_3\nq1,First?,a,,c\n")
    with pytest.raises(SurveyDataError, match=r"record 1, field 'options'.*\[2\] are empty"):
        read_questionnaire(path)


@pytest.mark.parametrize("name, text, words", [
    ("q.txt", "x", "unsupported questionnaire format"),
    ("q.yaml", "questions: 3", "expected a list of questions"),
    ("q.yaml", "questions: []", "no questions"),
    ("q.json", "{not json", "cannot parse JSON"),
    ("q.csv", "id,text,colour\nq,T?,red\n", "unknown column"),
    ("q.csv", "id,text\nq,T?\n", "no options"),
])
def test_bad_files(tmp_path, name, text, words):
    (tmp_path / name).write_text(text)
    with pytest.raises(SurveyDataError, match=words):
        read_questionnaire(tmp_path / name)
    with pytest.raises(SurveyDataError, match="not found"):
        read_questionnaire(tmp_path / "missing.yaml")


@pytest.mark.parametrize("text, words", [
    ("id,text,options\nq1,How much?,Yes|No, maybe|Never\n",
     r"record 1, field 'options': row has 1 more cell\(s\) than the header \(an unquoted comma\?\)"),
    ("id,text,options\nq0,Fine?,a|b\nq1,How much?\n", r"record 2, field 'options': row has 1 fewer cell"),
    ("id,text,ordinal,options\nq1,How much?,a|b\n", r"record 1, field 'options': row has 1 fewer cell"),
])
def test_csv_row_longer_or_shorter_than_the_header_is_an_error(tmp_path, text, words):
    path = tmp_path / "q.csv"
    path.write_text(text)
    with pytest.raises(SurveyDataError, match=words) as err:
        read_questionnaire(path)
    assert str(path) in str(err.value)


def test_csv_row_may_leave_out_trailing_optional_cells(tmp_path):
    path = tmp_path / "q.csv"
    path.write_text("id,text,options,ordinal\nq1,How much?,a|b\nq2,Why?,c|d,,\n")
    assert [q.options for q in read_questionnaire(path)] == [("a", "b"), ("c", "d")]


@pytest.mark.parametrize("name, text", [
    ("q.csv", "id,text,options\nq1,Café question?,Oui|Non\n"),
    ("q.yaml", "- id: q1\n  text: Café question?\n  options: [Oui, Non]\n"),
])
def test_non_utf8_file_is_an_error_naming_the_file(tmp_path, name, text):
    path = tmp_path / name
    path.write_bytes(text.encode("latin-1"))
    with pytest.raises(SurveyDataError, match="not UTF-8 text") as err:
        read_questionnaire(path)
    assert err.value.file == str(path)
