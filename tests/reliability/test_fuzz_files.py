"""Property tests of whole input files: item files through `load_splits` (the registry included), raw WVS
tables as arbitrary CSV text, and questionnaire files as arbitrary JSON. Valid records land in exactly their
split; anything malformed raises SurveyDataError (a file error) or ConfigError (an empty split), never
another exception. tests/data/test_sources_fuzz.py fuzzes single records and values of the sources.

Each property runs a few dozen examples by default and many more under `-m slow`. The regression tests at
the end are inputs these properties found that used to crash with pandas or numpy errors.
"""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from reliability_helpers import PAPER_INSTRUCTION, PAPER_TRAILER

from survey_sim.data.__main__ import compose_data
from survey_sim.data.sources import build_wvs_items
from survey_sim.data.sources.wvs_raw import read_questionnaire
from survey_sim.data.splits import load_splits
from survey_sim.errors import ConfigError, SurveyDataError


def fuzz(examples: int):
    return settings(max_examples=examples, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


def examples(fast: int, slow: int):
    return pytest.mark.parametrize("n", [pytest.param(fast, id="fast"),
                                         pytest.param(slow, id="thorough", marks=pytest.mark.slow)])


# The paper's registry, written out independently of conf/data/registry/paper.yaml, for a few countries.
SETS = {"C1": {"Japan", "Andorra", "Germany"}, "C2": {"Kenya", "Nigeria"}, "C3": {"Mexico", "Nigeria"}}
EXCLUDED = {82, *range(94, 106), 223}
QSETS = {"Q1": set(range(1, 164)) - EXCLUDED, "Q2": set(range(164, 199)), "Q3": set(range(199, 260)) - EXCLUDED}
SPLITS = {"train": ("C1", "Q1"), "val": ("C1", "Q2"), **{f"{c}-{q}": (c, q) for c in ("C1", "C2", "C3")
                                                          for q in ("Q1", "Q2", "Q3") if (c, q) not in
                                                          {("C1", "Q1"), ("C1", "Q2")}}}
COUNTRIES = sorted(set().union(*SETS.values()) | {"India"})  # India belongs to no WVS set
QUESTIONS = [1, 2, 82, 100, 163, 164, 198, 199, 223, 259, 260]
DATA_TYPES = ["train", "valid", "test_1", "test_2", "test_5", "test"]
FILES = ("train", "valid", "test")


def expected_split(country: str, qid: int) -> set[str]:
    return {name for name, (c, q) in SPLITS.items() if country in SETS[c] and qid in QSETS[q]}


@st.composite
def item_files(draw):
    """Records of distinct (country, question) spread over the three item files, each with its distribution."""
    keys = draw(st.lists(st.tuples(st.sampled_from(COUNTRIES), st.sampled_from(QUESTIONS)), min_size=1,
                         max_size=12, unique=True))
    files: dict[str, list] = {f: [] for f in FILES}
    expected: dict[tuple[str, str], list[float]] = {}
    for country, qid in keys:
        k = draw(st.integers(2, 6))
        shares = draw(st.lists(st.floats(0, 100, allow_nan=False), min_size=k, max_size=k).filter(lambda v: sum(v) > 0))
        letters = "ABCDEF"[:k]
        record = {"id": draw(st.sampled_from([qid, str(qid), f"Q{qid}"])),
                  "instruction": PAPER_INSTRUCTION.format(country),
                  "input": f"Question {qid}?" + PAPER_TRAILER,
                  "options": [f"({letter})option {letter}" for letter in letters],
                  "options_dist": dict(zip(letters, shares)), "data_type": draw(st.sampled_from(DATA_TYPES))}
        files[draw(st.sampled_from(FILES))].append(record)
        expected[country, str(qid)] = [v / sum(shares) for v in shares]
    return files, expected


@pytest.fixture(scope="module")
def paper_config(tmp_path_factory):
    root = tmp_path_factory.mktemp("items")
    cfg = compose_data(["data=wvs_en", f"data.root={root}"])
    from omegaconf import OmegaConf

    return root, OmegaConf.to_container(cfg, resolve=True)


def _write(root, files):
    (root / "wvs").mkdir(exist_ok=True)
    for stem, records in files.items():
        (root / "wvs" / f"{stem}_en.json").write_text(json.dumps(records, ensure_ascii=False), encoding="utf-8")


@examples(25, 300)
def test_valid_item_files_land_in_exactly_their_splits(n, paper_config):
    root, base = paper_config

    @fuzz(n)
    @given(item_files())
    def check(drawn):
        files, expected = drawn
        _write(root, files)
        want: dict[str, dict] = {name: {} for name in SPLITS}
        for (country, qid), dist in expected.items():
            for name in expected_split(country, int(qid.removeprefix("Q"))):
                want[name][country, qid] = dist
        non_empty = [name for name in SPLITS if want[name]]
        if not non_empty:
            return
        cfg = {**base, "train_split": "train" if want["train"] else None,
               "val_split": "val" if want["val"] else None,
               "test_splits": [s for s in non_empty if s not in ("train", "val")]}
        splits = load_splits(cfg)
        assert sorted(splits) == sorted(non_empty)
        for name, items in splits.items():
            got = {(it.group, str(int(it.question_id.removeprefix("Q")))): it for it in items}
            assert len(got) == len(items) and got.keys() == want[name].keys(), name
            for key, item in got.items():
                assert item.split == name and item.distribution == pytest.approx(want[name][key], abs=1e-12)

    check()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 300) | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
    max_leaves=6)


@examples(25, 300)
def test_corrupt_item_files_raise_only_our_errors(n, paper_config):
    root, base = paper_config
    cfg = {**base, "test_splits": ["C2-Q1"]}

    @fuzz(n)
    @given(item_files(), st.sampled_from(["delete", "replace", "record", "file", "text"]), json_values, st.randoms())
    def check(drawn, kind, junk, rnd):
        files, _ = drawn
        stem = rnd.choice([f for f in FILES if files[f]] or ["train"])
        records = files[stem]
        if kind == "file" or not records:
            files[stem] = junk
        elif kind == "record":
            records[rnd.randrange(len(records))] = junk
        else:
            record = records[rnd.randrange(len(records))]
            field = rnd.choice(sorted(record))
            if kind == "delete":
                del record[field]
            else:
                record[field] = junk if kind == "replace" else str(junk)
        _write(root, files)
        try:
            load_splits(cfg)
        except SurveyDataError as exc:
            assert exc.file and exc.file.startswith(str(root))
        except ConfigError as exc:
            assert "is empty after filtering" in str(exc)

    check()


QUESTIONNAIRE = [
    {"id": "1", "split": "Q1", "input": "One?" + PAPER_TRAILER, "options": ["(A)Yes", "(B)No", "(C)Maybe"]},
    {"id": "2", "split": "Q1", "input": "Two?" + PAPER_TRAILER, "options": ["(X)Hard to say", "(A)Agree", "(B)No"]},
]
HEADER = st.sampled_from(["B_COUNTRY", "Q1", "Q2", "W_WEIGHT", "q1", "b_country", "junk", "", "Q1 "])
CELL = st.one_of(st.sampled_from(["276", "20", "1", "2", "3", "0", "-1", "-5", "", "1.5", "1e308", "nan", "inf",
                                  "x", '"1"', '"', "999", "2.0"]), st.text(max_size=4))


@pytest.fixture(scope="module")
def questionnaire(tmp_path_factory):
    path = tmp_path_factory.mktemp("book") / "questionnaire.json"
    path.write_text(json.dumps(QUESTIONNAIRE), encoding="utf-8")
    return path


@examples(60, 1500)
def test_raw_tables_as_arbitrary_csv_text(n, questionnaire):
    raw = questionnaire.parent / "raw.csv"

    @fuzz(n)
    @given(st.lists(HEADER, max_size=6), st.lists(st.lists(CELL, max_size=7), max_size=8),
           st.sampled_from([",", ";", "\t"]), st.booleans(), st.sampled_from([1, 3]))
    def check(header, rows, sep, weighted, min_respondents):
        raw.write_text(sep.join(header) + "\n" + "".join(sep.join(r) + "\n" for r in rows), encoding="utf-8")
        try:
            result = build_wvs_items(raw, questionnaire, weighted=weighted, min_respondents=min_respondents)
        except SurveyDataError as exc:
            assert exc.file == str(raw)
            return
        for item in result.items:
            assert sum(item.distribution) == pytest.approx(1.0) and min(item.distribution) >= 0

    check()


QUESTION_FIELDS = st.sampled_from(["id", "input", "options", "split", "other"]) | st.text(max_size=3)
QUESTION_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 300) | st.floats() | st.text(max_size=8)
    | st.sampled_from(["(A)Yes", "(B)No", "(X)Hm", "Q1", "1", "(a)x", "()", "(AA)y", "Two?" + PAPER_TRAILER]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(QUESTION_FIELDS, inner, max_size=5), max_leaves=12)


@examples(60, 1500)
def test_questionnaires_as_arbitrary_json(n, tmp_path_factory):
    path = tmp_path_factory.mktemp("books") / "questionnaire.json"

    @fuzz(n)
    @given(QUESTION_VALUES, st.sampled_from([None, "en", "zh"]))
    def check(value, language):
        path.write_text(json.dumps(value), encoding="utf-8")
        try:
            questions, lang = read_questionnaire(path, language)
        except SurveyDataError as exc:
            assert exc.file == str(path)
            return
        assert lang in ("en", "zh") and all(len(q["letters"]) == len(q["options"]) >= 1 for q in questions)

    check()


# ---- inputs the properties found (each crashed with a pandas or numpy error before) ------------------------
@pytest.mark.parametrize(("text", "match"), [
    ('B_COUNTRY,Q1,Q2\n276,"1,2\n', r"cannot read the raw file: Error tokenizing data"),        # open quote
    ("B_COUNTRY,Q1,Q2\n", r"the file has a header but no respondent rows"),
    ("B_COUNTRY,Q1,q1,Q2\n276,1,2,1\n", r"field 'Q1': columns \['Q1', 'q1'\] all match Q1"),
    ("B_COUNTRY,Q1,Q2\n276,1,1,5,7\n276,2,x,1.5,2\n", r"record 1, field 'Q2': value 'x' is not an integer code"),
])
def test_malformed_raw_tables(questionnaire, text, match):
    raw = questionnaire.parent / "bad.csv"
    raw.write_text(text, encoding="utf-8")
    with pytest.raises(SurveyDataError, match=match):
        build_wvs_items(raw, questionnaire, min_respondents=1)


def test_countries_all_below_the_minimum_give_no_items_and_count_the_skips(questionnaire):
    raw = questionnaire.parent / "small.csv"
    raw.write_text("B_COUNTRY,Q1,Q2\n" + "276,1,2\n20,1,2\n" * 3, encoding="utf-8")
    result = build_wvs_items(raw, questionnaire, min_respondents=100)
    assert not result.items and sorted(c for c, _ in result.skipped) == ["Andorra", "Germany"]
