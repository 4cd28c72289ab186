"""Property tests of the sources: valid input is never dropped, corrupt input only raises SurveyDataError.

Each property runs ~40 examples by default; the `slow`-marked variant runs many more.
"""

from __future__ import annotations

import json
import math
from collections import Counter, defaultdict

import pandas as pd
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from survey_sim.data.countries import ISO_NUMERIC, parse_country_label
from survey_sim.data.item import LETTERS
from survey_sim.data.sources import build_wvs_items, load_processed, parse_options, parse_selections
from survey_sim.data.sources.processed import INSTRUCTION_TEMPLATES, OPTIONS_TRAILERS
from survey_sim.errors import SurveyDataError

EXAMPLES = [pytest.param(40, id="fast"), pytest.param(400, id="thorough", marks=pytest.mark.slow)]
LABELS = ["Andorra", "Britain", "Czech Rep.", "S. Korea", "Taiwan ROC", "Macau SAR", "Palest. ter.",
          "Nigeria (Non-national sample)", "India (Old national sample)", "Côte d'Ivoire", "United States"]


def fuzz(examples: int):
    return settings(max_examples=examples, deadline=None, suppress_health_check=[HealthCheck.too_slow])


text = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=30).filter(str.strip)
finite = st.floats(min_value=0, max_value=1e6, allow_nan=False, allow_infinity=False)


@st.composite
def records(draw):
    """A valid record of the paper's format, with the distribution it must load to (None: all zeros)."""
    k = draw(st.integers(2, 26))
    letters = ["X", *LETTERS[: k - 1]] if draw(st.booleans()) and k <= 24 else list(LETTERS[:k])
    labels = draw(st.lists(text, min_size=k, max_size=k))
    values = draw(st.lists(st.one_of(st.just(0.0), finite), min_size=k, max_size=k))
    keep = draw(st.lists(st.booleans(), min_size=k, max_size=k))  # letters left out of options_dist are 0
    language = draw(st.sampled_from(["en", "zh"]))
    label = draw(st.sampled_from(LABELS))
    question = draw(text.filter(lambda q: not any(q.endswith(t) for t in OPTIONS_TRAILERS.values())))
    record = {
        "id": draw(st.one_of(st.integers(0, 10**6), text)),
        "instruction": INSTRUCTION_TEMPLATES[language].format(country=label),
        "input": question + OPTIONS_TRAILERS[language],
        "options": [f"({letter}){lab}" for letter, lab in zip(letters, labels)],
        "options_dist": {letter: v for letter, v, kept in zip(letters, values, keep) if kept},
        "data_type": draw(st.sampled_from(["train", "valid", "test_3", "test"])),
    }
    dist = [v if kept else 0.0 for v, kept in zip(values, keep)]
    return record, (None if sum(dist) <= 0 else [v / sum(dist) for v in dist]), language, label, question


@pytest.mark.parametrize("examples", EXAMPLES)
def test_valid_records_are_never_dropped(examples, tmp_path_factory):
    folder = tmp_path_factory.mktemp("valid")

    @fuzz(examples)
    @given(st.lists(records(), min_size=1, max_size=8))
    def check(drawn):
        for i, (record, *_rest) in enumerate(drawn):
            record["data_type"] = f"{record['data_type']}-{i}"  # no two records are the same item
        path = folder / "items.json"
        path.write_text(json.dumps([r for r, *_ in drawn], ensure_ascii=False), encoding="utf-8")
        result = load_processed(path)
        expected_skips = [i for i, (_, dist, *_rest) in enumerate(drawn) if dist is None]
        assert [i for i, _ in result.skipped] == expected_skips
        loaded = iter(result.items)
        for record, dist, language, label, question in drawn:
            if dist is None:
                continue
            item = next(loaded)
            assert (item.group, item.flags) == parse_country_label(label)
            assert (item.language, item.question, item.question_id) == (language, question, str(record["id"]).strip())
            assert item.distribution == pytest.approx(dist, rel=1e-9, abs=1e-12)
            assert item.letters == tuple(o[1] for o in record["options"])

    check()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 5) | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
    max_leaves=6)


@st.composite
def corrupted(draw):
    """A list of valid records with one random corruption applied."""
    base = [r for r, *_ in draw(st.lists(records(), min_size=1, max_size=3))]
    for i, record in enumerate(base):
        record["data_type"] += f"-{i}"
    target = draw(st.integers(0, len(base) - 1))
    record = base[target]
    kind = draw(st.sampled_from(["delete", "replace", "option", "dist", "record", "top"]))
    fields = sorted(record)
    if kind == "delete":
        del record[draw(st.sampled_from(fields))]
    elif kind == "replace":
        record[draw(st.sampled_from(fields))] = draw(json_values)
    elif kind == "option":
        record["options"][draw(st.integers(0, len(record["options"]) - 1))] = draw(json_values)
    elif kind == "dist":
        record["options_dist"][draw(st.text(max_size=2))] = draw(json_values)
    elif kind == "record":
        base[target] = draw(json_values)
    else:
        return draw(json_values)
    return base


@pytest.mark.parametrize("examples", EXAMPLES)
def test_corrupt_records_raise_only_survey_data_error(examples, tmp_path_factory):
    folder = tmp_path_factory.mktemp("corrupt")

    @fuzz(examples)
    @given(corrupted())
    def check(data):
        path = folder / "items.json"
        path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
        try:
            load_processed(path)
        except SurveyDataError as exc:
            assert exc.file == str(path)

    check()


@pytest.mark.parametrize("examples", EXAMPLES)
def test_random_bytes_raise_only_survey_data_error(examples, tmp_path_factory):
    folder = tmp_path_factory.mktemp("bytes")

    @fuzz(examples)
    @given(st.binary(max_size=200) | st.text(max_size=200).map(str.encode))
    def check(data):
        path = folder / "items.json"
        path.write_bytes(data)
        try:
            load_processed(path)
        except SurveyDataError:
            pass

    check()


selections = st.dictionaries(st.text(max_size=12), st.lists(
    st.floats(allow_nan=False, allow_infinity=False) | st.integers(-10**6, 10**6), max_size=6), max_size=6)


@pytest.mark.parametrize("examples", EXAMPLES)
def test_parse_selections_round_trips(examples):
    @fuzz(examples)
    @given(selections)
    def check(value):
        text = repr(defaultdict(list, value))
        assert parse_selections(text) == {k: [float(x) for x in v] for k, v in value.items()}
        assert parse_options(repr(list(value))) == list(value)

    check()


CODE = ["__import__('os')", "os.system('ls')", "eval('1')", "open('/etc/passwd')", "lambda: 0", "[x for x in y]",
        "().__class__", "{**a}", "1 if a else 2", "f'{a}'", "b'x'", "...", "None", "True"]


@pytest.mark.parametrize("examples", EXAMPLES)
def test_parse_selections_rejects_junk(examples):
    @fuzz(examples)
    @given(st.one_of(
        st.text(max_size=60),
        st.builds(lambda code, key: "defaultdict(<class 'list'>, {" + f"{key!r}: [{code}]" + "})",
                  st.sampled_from(CODE), st.text(max_size=5)),
        st.builds(lambda code: "defaultdict(<class 'list'>, " + code + ")", st.sampled_from(CODE)),
        st.builds(lambda code: code, st.sampled_from(CODE)),
    ))
    def check(junk):
        for parse in (parse_selections, parse_options):
            try:
                value = parse(junk)
            except SurveyDataError:
                continue
            if parse is parse_selections:  # what little passes is a dict of str -> finite numbers
                assert all(isinstance(k, str) and all(math.isfinite(x) for x in v) for k, v in value.items())
            else:
                assert all(isinstance(x, str) for x in value)

    check()


OPTIONS = ["(A)Yes", "(B)No", "(C)Maybe"]


@st.composite
def raw_tables(draw):
    """Respondent rows of 1-3 countries answering Q1 (3 options) and Q2 (X, A, B), with negative codes."""
    countries = draw(st.lists(st.sampled_from([20, 158, 276, 446, 826, 909]), min_size=1, max_size=3,
                              unique=True))
    rows = draw(st.lists(st.tuples(st.sampled_from(countries), st.sampled_from([1, 2, 3, -1, -2, -4, -5]),
                                   st.sampled_from([0, 1, 2, -1, -5]),
                                   st.floats(0.01, 5, allow_nan=False)), min_size=1, max_size=60))
    return pd.DataFrame(rows, columns=["B_COUNTRY", "Q1", "Q2", "W_WEIGHT"])


def _questionnaire(folder):
    path = folder / "q.json"
    path.write_text(json.dumps([
        {"id": "1", "split": "Q1", "input": "One?" + OPTIONS_TRAILERS["en"], "options": OPTIONS},
        {"id": "2", "split": "Q1", "input": "Two?" + OPTIONS_TRAILERS["en"],
         "options": ["(X)Hard to say", "(A)Agree", "(B)Disagree"]}]), encoding="utf-8")
    return path


@pytest.mark.parametrize("examples", EXAMPLES)
def test_raw_tables_with_random_codes(examples, tmp_path_factory):
    folder = tmp_path_factory.mktemp("raw")
    book = _questionnaire(folder)

    @fuzz(examples)
    @given(raw_tables(), st.booleans())
    def check(frame, weighted):
        raw = folder / "raw.csv"
        frame.to_csv(raw, index=False)
        result = build_wvs_items(raw, book, weighted=weighted, min_respondents=1, excluded_countries=())
        built = {(it.group, it.question_id): it for it in result.items}
        for code in frame["B_COUNTRY"].unique():
            rows = frame[frame["B_COUNTRY"] == code]
            for qid, codes in (("1", [1, 2, 3]), ("2", [0, 1, 2])):
                counts, used = Counter(), []
                for answer, weight in zip(rows[f"Q{qid}"], rows["W_WEIGHT"]):
                    if answer >= 0:
                        counts[answer] += weight if weighted else 1
                        used.append(weight if weighted else 1.0)
                key = (ISO_NUMERIC[int(code)], qid)
                if not counts:
                    assert key not in built and (f"{key[0]}/Q{qid}" in [s for s, _ in result.skipped])
                    continue
                total = sum(counts.values())
                assert built[key].distribution == pytest.approx([counts[c] / total for c in codes])
                assert built[key].n_respondents == len(used)
                assert built[key].n_effective == pytest.approx(sum(used) ** 2 / sum(w * w for w in used))

    check()


@pytest.mark.parametrize("examples", EXAMPLES)
def test_raw_tables_with_bad_codes_raise_only_survey_data_error(examples, tmp_path_factory):
    folder = tmp_path_factory.mktemp("rawbad")
    book = _questionnaire(folder)

    @fuzz(examples)
    @given(raw_tables(), st.sampled_from(["B_COUNTRY", "Q1", "Q2", "W_WEIGHT"]),
           st.one_of(st.integers(-10, 1000), st.floats(allow_nan=True), st.text(max_size=4)), st.data())
    def check(frame, column, value, data):
        row = data.draw(st.integers(0, len(frame) - 1))
        frame[column] = frame[column].astype(object)
        frame.loc[row, column] = value
        assume(not (isinstance(value, str) and "\n" in value))
        raw = folder / "raw.csv"
        frame.to_csv(raw, index=False)
        try:
            build_wvs_items(raw, book, weighted=True, min_respondents=1)
        except SurveyDataError as exc:
            assert exc.file == str(raw)

    check()

