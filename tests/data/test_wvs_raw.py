"""The WVS-7 raw-file builder, on synthetic files in the official layout and against the paper's items."""

from __future__ import annotations

import functools
import json
import logging
import time
from collections import Counter

import numpy as np
import pandas as pd
import pytest

from survey_sim.data.item import LETTERS
from survey_sim.data.sources import build_wvs_items, load_processed, write_processed
from survey_sim.data.sources.wvs_raw import DEFAULT_EXCLUDED
from survey_sim.errors import ConfigError, SurveyDataError

TRAILER = " \nHere are the options: \n"
QUESTIONNAIRE = [
    {"id": "1", "split": "Q1", "input": "How important is family?" + TRAILER,
     "options": ["(A)Very important", "(B)Rather important", "(C)Not very important", "(D)Not at all important"]},
    {"id": "82", "split": "Q1", "input": "Confidence in a regional organisation?" + TRAILER,
     "options": ["(A)A great deal", "(B)Quite a lot", "(C)Not very much", "(D)None at all"]},
    {"id": "119", "split": "Q1", "input": "Women are less corrupt than men?" + TRAILER,
     "options": ["(X)Hard to say", "(A)Strongly agree", "(B)Agree", "(C)Disagree", "(D)Strongly disagree"]},
    {"id": "164", "split": "Q2", "input": "How important is God in your life?" + TRAILER,
     "options": ["(A)Not at all important", *(f"({LETTERS[i]}){i + 1}" for i in range(1, 9)),
                 "(J)Very important"]},
]
CODES = {"1": [1, 2, 3, 4], "82": [1, 2, 3, 4], "119": [0, 1, 2, 3, 4], "164": list(range(1, 11))}
NEGATIVE = [-1, -2, -4, -5]
# B_COUNTRY -> respondents: Andorra, Germany, Taiwan ROC, and Libya under the 1,000 threshold.
SIZES = {20: 1200, 276: 1100, 158: 1005, 434: 300}


def make_raw(seed: int = 0, sizes=SIZES) -> pd.DataFrame:
    """Respondent rows in the official column layout: ids, weights, the questions and many others."""
    rng = np.random.default_rng(seed)
    country = np.repeat(list(sizes), list(sizes.values()))
    n = len(country)
    frame = {"version": ["5-0-0 (2022-12-23)"] * n, "A_WAVE": 7, "A_YEAR": 2018, "B_COUNTRY": country,
             "B_COUNTRY_ALPHA": "XXX", "D_INTERVIEW": np.arange(n) + 20_000_000,
             "W_WEIGHT": rng.uniform(0.2, 3.0, n).round(6), "S018": rng.uniform(0.5, 2, n)}
    for q in range(1, 291):
        codes = CODES.get(str(q), [1, 2, 3, 4, 5])
        column = rng.choice(codes + NEGATIVE, size=n, p=_probs(rng, len(codes)))
        frame[f"Q{q}"] = column
    frame["Q33_3"] = rng.integers(1, 4, n)
    frame["Y001"] = rng.integers(0, 6, n)
    frame = pd.DataFrame(frame)
    frame.loc[frame["B_COUNTRY"] == 276, "Q119"] = -4  # Germany was not asked Q119
    return frame


def _probs(rng, k: int) -> np.ndarray:
    weights = np.concatenate([rng.uniform(0.2, 1.0, k), np.full(len(NEGATIVE), 0.02)])
    return weights / weights.sum()


@functools.cache
def _raw_csv() -> tuple[pd.DataFrame, str]:
    frame = make_raw()
    return frame, frame.to_csv(index=False)


@pytest.fixture
def files(tmp_path):
    """(raw CSV, questionnaire, the raw rows): a fresh copy per test of one generated file."""
    frame, text = _raw_csv()
    raw = tmp_path / "WVS_Cross-National_Wave_7_csv_v5_0.csv"
    raw.write_text(text, encoding="utf-8")
    book = tmp_path / "questionnaire_en.json"
    book.write_text(json.dumps(QUESTIONNAIRE), encoding="utf-8")
    return raw, book, frame.copy()


def few_columns(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[["B_COUNTRY", "W_WEIGHT", "S018", "Q1", "Q82", "Q119", "Q164"]].copy()


def expected_counts(frame, code, qid, weighted=False):
    rows = frame[frame["B_COUNTRY"] == code]
    counts = Counter()
    for answer, weight in zip(rows[f"Q{qid}"], rows["W_WEIGHT"]):
        if answer >= 0:
            counts[int(answer)] += weight if weighted else 1
    return [counts[c] for c in CODES[qid]]


def test_builds_unweighted_distributions(files, caplog):
    raw, book, frame = files
    with caplog.at_level(logging.WARNING):
        result = build_wvs_items(raw, book, min_respondents=1000)
    items = {(it.group, it.question_id): it for it in result.items}
    assert sorted({g for g, _ in items}) == ["Andorra", "Germany", "Taiwan ROC"]  # Libya: 300 < 1000
    assert {q for _, q in items} == {"1", "119", "164"}  # Q82 is excluded by default
    assert ("Germany", "119") not in items and len(items) == 8
    assert ("Germany/Q119", "no valid answers (question not asked or all missing)") in result.skipped
    assert ("Libya", "300 respondents, fewer than min_respondents=1000") in result.skipped
    assert "skipped 2 record(s)" in caplog.text
    for (group, qid), item in items.items():
        code = {"Andorra": 20, "Germany": 276, "Taiwan ROC": 158}[group]
        counts = expected_counts(frame, code, qid)
        assert item.n_respondents == item.n_effective == sum(counts)
        assert item.distribution == pytest.approx([c / sum(counts) for c in counts], abs=1e-12)
    it = items["Andorra", "119"]
    assert it.letters == ("X", "A", "B", "C", "D") and it.options[0] == "Hard to say"
    assert (it.question, it.language, it.split, it.source) == (
        "Women are less corrupt than men? ", "en", "Q1", raw.name)


def test_weighted_sums_of_w_weight(tmp_path):
    frame = pd.DataFrame({"B_COUNTRY": [20] * 5 + [276] * 2, "W_WEIGHT": [0.5, 1.5, 2.0, 1.0, 9.0, 1.0, 3.0],
                          "Q1": [1, 1, 2, 4, -1, 2, 3], "Q7": [1, 2, 1, 1, 1, 2, 2]})
    raw = tmp_path / "raw.csv"
    frame.to_csv(raw, index=False)
    book = tmp_path / "q.json"
    book.write_text(json.dumps(QUESTIONNAIRE[:1]), encoding="utf-8")
    items = build_wvs_items(raw, book, weighted=True, min_respondents=1).items
    andorra, germany = items
    # Andorra: A = 0.5 + 1.5, B = 2.0, D = 1.0 (the -1 row with weight 9 is dropped): total 5.0
    assert andorra.distribution == pytest.approx([2 / 5, 2 / 5, 0, 1 / 5])
    # n_respondents counts the valid answers; n_effective is Kish's (sum w)^2 / sum w^2
    assert andorra.n_respondents == 4 and andorra.n_effective == pytest.approx(25 / 7.5)
    assert germany.distribution == pytest.approx([0, 1 / 4, 3 / 4, 0]) and germany.n_respondents == 2.0
    assert germany.n_effective == pytest.approx(16 / 10)
    unweighted = build_wvs_items(raw, book, min_respondents=1).items[0]
    assert unweighted.distribution == pytest.approx([2 / 4, 1 / 4, 0, 1 / 4]) and unweighted.n_respondents == 4


def test_filters_countries_questions_and_exclusions(files):
    raw, book, _ = files
    result = build_wvs_items(raw, book, countries=["TWN", "andorra"], questions=["Q1", 82], exclude=())
    assert sorted((it.group, it.question_id) for it in result.items) == [
        ("Andorra", "1"), ("Andorra", "82"), ("Taiwan ROC", "1"), ("Taiwan ROC", "82")]
    assert len(build_wvs_items(raw, book).items) == 11  # the paper keeps every country: Libya too
    assert "94" in DEFAULT_EXCLUDED and "223" in DEFAULT_EXCLUDED
    with pytest.raises(ConfigError, match="not in questionnaire"):
        build_wvs_items(raw, book, questions=["82"])  # excluded by default
    with pytest.raises(ConfigError, match="close matches: Germany"):
        build_wvs_items(raw, book, countries=["Germny"])
    with pytest.raises(ConfigError, match=r"\['Japan'\] have no respondents"):
        build_wvs_items(raw, book, countries=["Japan"])


def test_questionnaire_order_need_not_follow_the_file(files, tmp_path):
    raw, book, _ = files
    reverse = tmp_path / "reversed.json"
    reverse.write_text(json.dumps(QUESTIONNAIRE[::-1]), encoding="utf-8")
    forward = {(it.group, it.question_id): it.distribution for it in build_wvs_items(raw, book).items}
    backward = {(it.group, it.question_id): it.distribution for it in build_wvs_items(raw, reverse).items}
    assert forward == backward


def test_chinese_questionnaire(files, tmp_path):
    raw, _, _ = files
    book = tmp_path / "questionnaire_zh.json"
    book.write_text(json.dumps([{"id": "1", "split": "Q1", "input": "家庭重要吗？ \n以下是选项：\n",
                                 "options": ["(A)很重要", "(B)重要", "(C)不太重要", "(D)很不重要"]}],
                               ensure_ascii=False), encoding="utf-8")
    items = build_wvs_items(raw, book).items
    assert {it.language for it in items} == {"zh"} and items[0].question == "家庭重要吗？ "


def test_question_without_column_names_file_and_id(files, tmp_path):
    raw, _, frame = files
    few_columns(frame).drop(columns=["Q164"]).to_csv(raw, index=False)
    book = tmp_path / "questionnaire_en.json"
    with pytest.raises(SurveyDataError, match=r"no column Q164 for question id 164") as info:
        build_wvs_items(raw, book)
    assert info.value.file == str(raw)


@pytest.mark.parametrize(("column", "row", "value", "match"), [
    ("Q1", 17, 7, "answer code 7 has no option"),
    ("Q119", 3, 11, "answer code 11 has no option"),
    ("Q1", 40, "abc", "is not an integer code"),
    ("Q1", 41, 2.5, "is not an integer code"),
    ("B_COUNTRY", 5, 999, "country code 999 is not an ISO"),
    ("B_COUNTRY", 6, "", "country code is empty"),
])
def test_bad_values_name_file_row_and_column(files, column, row, value, match):
    raw, book, frame = files
    frame = few_columns(frame)
    frame[column] = frame[column].astype(object)
    frame.loc[row, column] = value
    frame.to_csv(raw, index=False)
    with pytest.raises(SurveyDataError, match=match) as info:
        build_wvs_items(raw, book)
    assert (info.value.file, info.value.record, info.value.field) == (str(raw), row, column)


def test_bad_weight(files):
    raw, book, frame = files
    frame = few_columns(frame)
    frame.loc[9, "W_WEIGHT"] = -1.0
    frame.to_csv(raw, index=False)
    assert build_wvs_items(raw, book).items  # weights are not read unless weighted
    with pytest.raises(SurveyDataError, match="not a non-negative number") as info:
        build_wvs_items(raw, book, weighted=True)
    assert info.value.record == 9


def test_huge_weights_keep_finite_effective_sizes_and_infinite_weights_are_an_error(files):
    """Weights as large as the fuzz test drew (1.34e154) overflowed w*w to inf and n_effective to nan."""
    raw, book, frame = files
    frame = few_columns(frame)
    frame["W_WEIGHT"] = frame["W_WEIGHT"].astype("float64")
    frame.loc[9, "W_WEIGHT"] = 1e155  # its square overflows float64
    frame.to_csv(raw, index=False)
    items = build_wvs_items(raw, book, weighted=True).items
    assert items and all(np.isfinite(it.n_effective) and it.n_effective > 0 for it in items)
    frame.loc[9, "W_WEIGHT"] = np.inf
    frame.to_csv(raw, index=False)
    with pytest.raises(SurveyDataError, match="is not a number") as info:
        build_wvs_items(raw, book, weighted=True)
    assert (info.value.file, info.value.record, info.value.field) == (str(raw), 9, "W_WEIGHT")


def test_bad_questionnaire(files, tmp_path):
    raw, _, _ = files
    book = tmp_path / "bad.json"
    book.write_text(json.dumps([{"id": "1", "input": "Q?", "options": ["Yes", "No"]}]), encoding="utf-8")
    with pytest.raises(SurveyDataError, match=r"record 0, field 'options'.*letter prefix"):
        build_wvs_items(raw, book)
    book.write_text(json.dumps([QUESTIONNAIRE[0], QUESTIONNAIRE[0]]), encoding="utf-8")
    with pytest.raises(SurveyDataError, match="appears twice"):
        build_wvs_items(raw, book)
    with pytest.raises(SurveyDataError, match="file not found"):
        build_wvs_items(tmp_path / "none.csv", book)


def test_stata_parquet_and_semicolon_csv_give_the_same_items(files, tmp_path):
    raw, book, frame = files
    small = few_columns(frame)
    reference = build_wvs_items(raw, book).items
    small.to_stata(tmp_path / "wvs.dta", write_index=False)
    small.to_parquet(tmp_path / "wvs.parquet")
    small.to_csv(tmp_path / "wvs_semicolon.csv", sep=";", index=False)
    for name in ("wvs.dta", "wvs.parquet", "wvs_semicolon.csv"):
        items = build_wvs_items(tmp_path / name, book).items
        assert [(it.group, it.question_id, it.distribution) for it in items] == [
            (it.group, it.question_id, it.distribution) for it in reference], name


def test_sav_needs_pyreadstat(files, tmp_path):
    try:
        import pyreadstat  # noqa: F401
    except ImportError:
        sav = tmp_path / "wvs.sav"
        sav.write_bytes(b"$FL2 not really")
        with pytest.raises(ConfigError, match=r"pyreadstat.*survey-sim\[raw\]"):
            build_wvs_items(sav, files[1])
    else:
        pytest.skip("pyreadstat is installed: the missing-package message cannot be shown")


def test_write_processed_round_trip(files, tmp_path):
    raw, book, _ = files
    items = build_wvs_items(raw, book).items
    again = load_processed(write_processed(items, tmp_path / "built.json")).items
    assert [(it.key, it.options, it.letters, it.n_respondents, it.split) for it in again] == [
        (it.key, it.options, it.letters, it.n_respondents, it.split) for it in items]
    for a, b in zip(items, again):
        assert a.distribution == pytest.approx(b.distribution, abs=1e-12)


def test_reproduces_the_paper_items_of_andorra(data_root, tmp_path):
    """Raw rows made from Andorra's published percentages rebuild the training items to 0.01 points."""
    path = data_root / "wvs/train_en.json"
    records = [r for r in json.loads(path.read_text(encoding="utf-8")) if " Andorra " in r["instruction"]]
    published = [it for it in load_processed(path).items if it.group == "Andorra"]
    qids = [r["id"] for r in records]
    rng = np.random.default_rng(1)
    columns = {}
    for record in records:  # 10,000 respondents: a 2-dp percentage p is round(100 p) answers
        letters = [option[1] for option in record["options"]]
        codes = [0 if letter == "X" else LETTERS.index(letter) + 1 for letter in letters]
        counts = [round(100 * record["options_dist"].get(letter, 0.0)) for letter in letters]
        columns[f"Q{record['id']}"] = np.repeat(codes, counts)
    rows = max(len(c) for c in columns.values()) + 57
    frame = {"B_COUNTRY": np.full(rows, 20), "W_WEIGHT": np.ones(rows)}
    for name, column in columns.items():
        padded = np.concatenate([column, rng.choice(NEGATIVE, rows - len(column))])
        frame[name] = rng.permutation(padded)
    frame["Q65"] = rng.choice(NEGATIVE, rows)  # Andorra has no Q65 in the paper's data
    raw = tmp_path / "andorra.csv"
    pd.DataFrame(frame).to_csv(raw, index=False)
    result = build_wvs_items(raw, data_root / "wvs/questionnaire_en.json", questions=[*qids, "65"])
    assert result.skipped == [("Andorra/Q65", "no valid answers (question not asked or all missing)")]
    built = {it.question_id: it for it in result.items}
    assert len(published) == len(built) == 149
    for it in published:
        mine = built[it.question_id]
        assert (mine.letters, mine.options, mine.question) == (it.letters, it.options, it.question)
        assert np.abs(np.array(mine.distribution) - np.array(it.distribution)).max() * 100 < 0.01


@pytest.mark.slow
def test_full_size_file_is_fast(tmp_path):
    """~97k respondents x ~600 columns, as in the official file: reading and building take seconds."""
    sizes = {code: 1500 for code in (20, 32, 36, 50, 51, 68, 76, 104, 124, 152, 156, 158, 170, 196, 203, 218,
                                     231, 276, 300, 320, 344, 360, 364, 368, 392, 398, 400, 404, 410, 417,
                                     422, 434, 446, 458, 462, 484, 496, 504, 528, 554, 558, 566, 586, 604,
                                     608, 630, 642, 643, 688, 702, 703, 704, 716, 762, 764, 788, 792, 804,
                                     818, 826, 840, 858, 862, 909)}
    frame = make_raw(sizes=sizes)
    for k in range(300):
        frame[f"X{k}"] = 1
    raw = tmp_path / "big.csv"
    frame.to_csv(raw, index=False)
    book = tmp_path / "q.json"
    questions = [{"id": str(q), "split": "Q1", "input": f"Question {q}?" + TRAILER,
                  "options": [f"({LETTERS[i]})o{i}" for i in range(5)]} for q in range(1, 260) if q != 119]
    book.write_text(json.dumps(questions), encoding="utf-8")
    start = time.perf_counter()
    result = build_wvs_items(raw, book, exclude=(*DEFAULT_EXCLUDED, "164"))
    elapsed = time.perf_counter() - start
    assert len(result.items) == 64 * (len(questions) - len(DEFAULT_EXCLUDED) - 1)
    assert elapsed < 60, elapsed
