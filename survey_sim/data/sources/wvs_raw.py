"""Build country-level and subgroup items from the official WVS-7 respondent file, as the paper did.

The raw file (CSV, Stata .dta, SPSS .sav or Parquet) has one row per respondent: `B_COUNTRY` is the ISO
3166-1 numeric country code, `Q1`..`Q290` hold answer codes and `W_WEIGHT` the design weight. Negative
codes (don't know, no answer, not asked, missing) are dropped; codes 1..26 are the letters A..Z and 0 is
X. Option and question texts come from a questionnaire file (a JSON list of {id, split, input, options}).

Country-level builds follow the paper: every country in the file is kept except Northern Ireland (removed
by name, `excluded_countries`); a minimum number of respondents per country is off unless given, and
every country it drops is a counted, logged skip. Subgroup builds (`group_by`) split each country's
respondents by attributes (`survey_sim.data.subgroups`) into cells, one item per (cell, question).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from survey_sim.data.countries import ISO_NUMERIC, resolve_country
from survey_sim.data.item import LETTERS, SurveyItem
from survey_sim.data.sources import SourceResult, log_skips
from survey_sim.data.sources.processed import (
    NO_TRAILER_FLAG,
    OPTIONS_TRAILERS,
    constant_field,
    parse_option_texts,
    read_json_records,
    split_question,
    write_processed,
)
from survey_sim.data.subgroups import NO_VALUE, Attribute, group_label, kish_effective_n
from survey_sim.errors import ConfigError, SurveyDataError

logger = logging.getLogger(__name__)

__all__ = ["DEFAULT_EXCLUDED", "EXCLUDED_COUNTRIES", "build_wvs_items", "items_from_respondents",
           "read_questionnaire", "write_processed"]

COUNTRY_COLUMN = "B_COUNTRY"
WEIGHT_COLUMN = "W_WEIGHT"
# Demographic and region-specific questions the paper left out: Q82, Q94-Q105, Q223.
DEFAULT_EXCLUDED: tuple[str, ...] = ("82", *(str(q) for q in range(94, 106)), "223")
# The paper removed Northern Ireland (surveyed with, and reported as part of, Great Britain) by name.
EXCLUDED_COUNTRIES: tuple[str, ...] = ("Northern Ireland",)
MIN_CELL = 100


def _letter_code(letter: str) -> int:
    """WVS answer code of an option letter: X is 0, A..Z are 1..26."""
    return 0 if letter == "X" else LETTERS.index(letter) + 1


def _question_key(qid) -> str:
    text = str(qid).strip()
    return text[1:] if text[:1] in ("Q", "q") and text[1:].isdigit() else text


def read_questionnaire(path: str | os.PathLike, language: str | None = None) -> tuple[list[dict], str]:
    """Questions of a questionnaire file as dicts {id, split, question, options, letters, flags}, and its language.

    The language is the one of the options trailer in the inputs unless given.
    """
    file, records = read_json_records(path)
    questions, languages, seen = [], set(), set()
    for index, record in enumerate(records):
        def fail(fld: str, msg: str, index: int = index):
            raise SurveyDataError(msg, file=file, record=index, field=fld) from None  # no chained traceback

        if not isinstance(record, dict):
            fail("record", f"expected an object, got {type(record).__name__}")
        if constant_field(record) is not None:
            fail(constant_field(record), "holds NaN or Infinity, which is not a JSON value here")
        for fld in ("id", "input", "options"):
            if fld not in record:
                fail(fld, "missing")
        qid = record["id"]
        if isinstance(qid, bool) or not isinstance(qid, (str, int)) or not _question_key(qid):
            fail("id", f"expected a question number, got {qid!r}")
        qid = _question_key(qid)
        if qid in seen:
            fail("id", f"question {qid} appears twice")
        seen.add(qid)
        if not isinstance(record["input"], str):
            fail("input", "expected a string")
        split = record.get("split", "")
        if not isinstance(split, str):
            fail("split", "expected a string")
        try:
            letters, labels = parse_option_texts(record["options"])
        except ValueError as exc:
            fail("options", str(exc))
        found = [lang for lang, trailer in OPTIONS_TRAILERS.items() if record["input"].endswith(trailer)]
        languages.update(found)
        questions.append({"id": qid, "split": split, "input": record["input"], "options": labels,
                          "letters": letters})
    if language is None:
        if len(languages) > 1:
            raise SurveyDataError(f"inputs mix languages {sorted(languages)}; pass language=", file=file)
        language = languages.pop() if languages else "en"
    for q in questions:
        q["question"], had_trailer = split_question(q.pop("input"), language)
        q["flags"] = () if had_trailer else (NO_TRAILER_FLAG,)
    return questions, language


def _columns_of(path: Path) -> list[str]:
    """Column names of a raw file, read without loading its rows."""
    suffix = path.suffix.lower()
    if suffix == ".dta":
        with pd.read_stata(path, iterator=True) as reader:
            return list(reader.variable_labels())
    if suffix == ".sav":
        return list(_pyreadstat().read_sav(str(path), metadataonly=True)[1].column_names)
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        return list(pq.read_schema(path).names)
    return list(pd.read_csv(path, nrows=0, sep=_delimiter(path)).columns)


def _delimiter(path: Path) -> str:
    with open(path, encoding="utf-8", errors="replace") as fh:
        header = fh.readline()
    return max([",", ";", "\t"], key=header.count)


def _pyreadstat():
    try:
        import pyreadstat
    except ImportError:
        raise ConfigError("reading SPSS .sav files needs pyreadstat: pip install 'survey-sim[raw]' "
                          "(or use the CSV or .dta release of the WVS file)") from None
    return pyreadstat


def _read_table(path: Path, columns: list[str]) -> pd.DataFrame:
    """Only `columns` of the raw file, as numbers where possible."""
    suffix = path.suffix.lower()
    if suffix == ".dta":
        return pd.read_stata(path, columns=columns, convert_categoricals=False)
    if suffix == ".sav":
        return _pyreadstat().read_sav(str(path), usecols=columns, apply_value_formats=False)[0]
    if suffix == ".parquet":
        return pd.read_parquet(path, columns=columns)
    # index_col=False: rows with more fields than the header must not turn into a row index
    return pd.read_csv(path, usecols=columns, sep=_delimiter(path), low_memory=False, index_col=False)


def _numeric(frame: pd.DataFrame, column: str, file: str, *, integer: bool) -> pd.Series:
    """A column as float64 (NaN where empty); SurveyDataError naming the first row that is not a number."""
    raw = frame[column]
    if pd.api.types.is_numeric_dtype(raw) and not pd.api.types.is_bool_dtype(raw):
        values = raw.astype("float64")
        bad = pd.Series(False, index=raw.index)
    else:
        values = pd.to_numeric(raw, errors="coerce").astype("float64")
        bad = values.isna() & raw.notna() & (raw.astype(str).str.strip() != "")
    if integer:
        bad |= values.notna() & (values != np.round(values))
    bad |= np.isinf(values)
    if bad.any():
        row = bad.idxmax()
        raise SurveyDataError(f"value {raw.loc[row]!r} is not {'an integer code' if integer else 'a number'}",
                              file=file, record=int(row), field=column)
    return values


def build_wvs_items(
    raw_path: str | os.PathLike,
    questionnaire_path: str | os.PathLike,
    *,
    weighted: bool = False,
    min_respondents: int = 0,
    countries: Iterable[str | int] | None = None,
    questions: Iterable[str | int] | None = None,
    language: str | None = None,
    exclude: Iterable[str | int] = DEFAULT_EXCLUDED,
    excluded_countries: Iterable[str] = EXCLUDED_COUNTRIES,
    group_by: Iterable[Attribute] = (),
    min_cell: int = MIN_CELL,
) -> SourceResult:
    """One item per (country, question), or per (country, subgroup, question) with `group_by` attributes.

    Distributions count respondents (or sum their `W_WEIGHT` when `weighted`). `n_respondents` is the
    number of respondents with a valid answer, `n_effective` Kish's effective sample size of the weights
    (the count when unweighted); a subgroup item carries its country's distribution (all its respondents
    with a valid answer) as `country_distribution`. Countries in `excluded_countries` and countries with fewer than
    `min_respondents` rows are left out (counted, logged skips). With attributes, a respondent without a
    value of an attribute (missing, negative or unmapped code) is left out; a cell (country x attribute
    values) with fewer than `min_cell` respondents, or an item with fewer than `min_cell` valid answers,
    is a counted skip. A cell or country with no valid answer to a question is a counted skip; a
    questionnaire question or an attribute with no column, or an answer code without an option, is an error.
    """
    raw_path, file = Path(raw_path), str(raw_path)
    group_by = list(group_by)
    if language not in (None, "en", "zh"):
        raise ConfigError(f"language must be 'en' or 'zh', got {language!r}")
    _check_minimums(min_respondents, min_cell)
    if not raw_path.is_file():
        raise SurveyDataError("file not found", file=file)
    book, lang = _select_questions(questionnaire_path, language, exclude, questions)
    attribute_columns = [a.column for a in group_by]
    needed = [COUNTRY_COLUMN] + ([WEIGHT_COLUMN] if weighted else []) + attribute_columns \
        + [f"Q{q['id']}" for q in book]
    frame = _load_columns(raw_path, list(dict.fromkeys(needed)), str(questionnaire_path),
                          {a.column: a.name for a in group_by})
    return items_from_respondents(
        frame, book, lang, file=file, source=raw_path.name, questionnaire=str(questionnaire_path),
        weighted=weighted, min_respondents=min_respondents, countries=countries,
        excluded_countries=excluded_countries, group_by=group_by, min_cell=min_cell)


def items_from_respondents(
    frame: pd.DataFrame,
    book: list[dict],
    language: str,
    *,
    file: str,
    source: str,
    questionnaire: str = "",
    weighted: bool = False,
    min_respondents: int = 0,
    countries: Iterable[str | int] | None = None,
    excluded_countries: Iterable[str] = EXCLUDED_COUNTRIES,
    group_by: Iterable[Attribute] = (),
    min_cell: int = MIN_CELL,
    country_names: Mapping[int, str] = ISO_NUMERIC,
) -> SourceResult:
    """The items of respondent rows in the WVS-7 layout (see `build_wvs_items`, which reads them from a file):
    `COUNTRY_COLUMN` codes named by `country_names`, `W_WEIGHT` when weighted, the attributes' columns and
    a column Q<id> per question of `book` (`read_questionnaire`'s dicts)."""
    group_by = list(group_by)
    _check_minimums(min_respondents, min_cell)
    for attr in group_by:
        if attr.column not in frame:
            raise SurveyDataError(f"no column {attr.column} for attribute {attr.name!r}", file=file, field=attr.column)
    codes = _numeric(frame, COUNTRY_COLUMN, file, integer=True)
    if codes.isna().any():
        raise SurveyDataError("country code is empty", file=file, record=int(codes.isna().idxmax()),
                              field=COUNTRY_COLUMN)
    codes = codes.astype("int64")
    unknown = sorted(set(codes.unique()) - set(country_names))
    if unknown:
        row = int(codes.isin(unknown).idxmax())
        raise SurveyDataError(f"country code {unknown[0]} is not an ISO 3166-1 numeric code known to survey-sim",
                              file=file, record=row, field=COUNTRY_COLUMN)
    sizes = codes.value_counts().sort_index()
    skipped: list[tuple[int | str, str]] = []
    in_file = {country_names[int(c)] for c in sizes.index}
    if countries is not None:
        chosen = {resolve_country(c, known=in_file if set(in_file) - set(ISO_NUMERIC.values()) else None)
                  for c in countries}
        absent = sorted(chosen - in_file)
        if absent:
            raise ConfigError(f"countries {absent} have no respondents in {file}")
        sizes = sizes[[country_names[int(c)] in chosen for c in sizes.index]]
    removed = {resolve_country(c) for c in excluded_countries}
    kept = []
    for code, n in sizes.items():
        name = country_names[int(code)]
        if name in removed:
            skipped.append((name, f"{n} respondents, country excluded by name (excluded_countries)"))
        elif n < min_respondents:
            skipped.append((name, f"{n} respondents, fewer than min_respondents={min_respondents}"))
        else:
            kept.append(int(code))
    rows = codes.isin(kept)
    codes = codes[rows]
    if weighted:
        weights = _numeric(frame, WEIGHT_COLUMN, file, integer=False)[rows]
        if weights.isna().any() or (weights < 0).any():
            row = int((weights.isna() | (weights < 0)).idxmax())
            raise SurveyDataError(f"weight {frame[WEIGHT_COLUMN].loc[row]!r} is not a non-negative number",
                                  file=file, record=row, field=WEIGHT_COLUMN)
    else:
        weights = pd.Series(1.0, index=codes.index)

    # Cells: one per country, times one per combination of attribute values; respondents without a value of
    # some attribute are in no cell (cell -1).
    position = codes.map({code: pos for pos, code in enumerate(kept)}).to_numpy("int64")
    cell = position.copy()
    n_cells = len(kept)
    for attr in group_by:
        level = attr.level_of(_numeric(frame, attr.column, file, integer=False)[rows].to_numpy())
        if (level == NO_VALUE).all() and len(level):
            raise SurveyDataError(f"attribute {attr.name!r}: no respondent has a value (every code is missing, "
                                  f"negative or unmapped; values: {dict(attr.values) or attr.levels})",
                                  file=file, field=attr.column)
        missing = int((level == NO_VALUE).sum())
        if missing:
            skipped.append((attr.column, (f"{missing} respondents without a value of attribute {attr.name!r} "
                                          "(missing, negative or unmapped code) left out of the groups")))
        cell = np.where((cell >= 0) & (level >= 0), cell * len(attr.levels) + level, -1)
        n_cells *= len(attr.levels)
    in_cell = cell >= 0
    weight_values = weights.to_numpy("float64")
    if weight_values.max(initial=0.0) > 0:  # shares and Kish's n are scale-free; this keeps sums of w*w finite
        weight_values = weight_values / weight_values.max()
    cell_sizes = np.bincount(cell[in_cell], minlength=n_cells)

    tables, squares, answered, country_tables = {}, {}, {}, {}
    for q in book:
        column = f"Q{q['id']}"
        answers = _numeric(frame, column, file, integer=True)[rows]
        valid = (answers >= 0).to_numpy()
        option_codes = [_letter_code(letter) for letter in q["letters"]]
        bad = valid & ~answers.isin(option_codes).to_numpy()
        if bad.any():
            row = int(answers.index[bad.argmax()])
            raise SurveyDataError(
                f"answer code {int(answers[row])} has no option in questionnaire {questionnaire} "
                f"(question {q['id']} has codes {sorted(option_codes)})", file=file, record=row, field=column)
        if group_by:  # the whole country's distribution, whatever the respondents' attribute values
            codes27 = position[valid] * 27 + answers.to_numpy()[valid].astype("int64")
            country_tables[q["id"]] = np.bincount(codes27, weights=weight_values[valid],
                                                  minlength=len(kept) * 27).reshape(len(kept), 27)[:, option_codes]
        valid = valid & in_cell
        cells = cell[valid] * 27 + answers.to_numpy()[valid].astype("int64")
        w = weight_values[valid]
        tables[q["id"]] = np.bincount(cells, weights=w, minlength=n_cells * 27).reshape(n_cells, 27)[:, option_codes]
        squares[q["id"]] = np.bincount(cell[valid], weights=w * w, minlength=n_cells)
        answered[q["id"]] = np.bincount(cell[valid], minlength=n_cells)

    items = []
    for index in range(n_cells):
        country_index = _country_of(index, group_by)
        country, attributes = country_names[kept[country_index]], _attributes_of(index, group_by)
        label = group_label(country, attributes)
        if group_by and cell_sizes[index] < min_cell:
            skipped.append((label, f"{cell_sizes[index]} respondents, fewer than min_cell={min_cell}"))
            continue
        for q in book:
            counts = tables[q["id"]][index]
            total, n = float(counts.sum()), int(answered[q["id"]][index])
            if total <= 0:
                skipped.append((f"{label}/Q{q['id']}", "no valid answers (question not asked or all missing)"))
                continue
            if group_by and n < min_cell:
                skipped.append((f"{label}/Q{q['id']}", f"{n} valid answers, fewer than min_cell={min_cell}"))
                continue
            n_eff = float(kish_effective_n(np.float64(total), squares[q["id"]][index])) if weighted else float(n)
            items.append(SurveyItem(
                group=label, question_id=q["id"], question=q["question"], options=q["options"],
                letters=q["letters"], distribution=counts.tolist(), language=language, split=q["split"],
                source=source, n_respondents=float(n), n_effective=n_eff, flags=q["flags"],
                country=country, attributes=attributes,
                country_distribution=tuple(country_tables[q["id"]][country_index]) if group_by else None,
            ))
    log_skips(logger, file, skipped)
    return SourceResult(items=items, skipped=skipped, file=file)


def _check_minimums(min_respondents, min_cell) -> None:
    if isinstance(min_respondents, bool) or not isinstance(min_respondents, int) or min_respondents < 0:
        raise ConfigError(f"min_respondents must be an integer >= 0, got {min_respondents!r}")
    if isinstance(min_cell, bool) or not isinstance(min_cell, int) or min_cell < 1:
        raise ConfigError(f"min_cell must be an integer >= 1, got {min_cell!r}")


def _country_of(cell: int, group_by: list[Attribute]) -> int:
    """Country position of a cell index (cells nest attribute levels inside countries)."""
    for attr in reversed(group_by):
        cell //= len(attr.levels)
    return cell


def _attributes_of(cell: int, group_by: list[Attribute]) -> tuple[tuple[str, str], ...]:
    """(label, value in words) of each attribute of a cell index, in group_by order."""
    out = []
    for attr in reversed(group_by):
        cell, level = divmod(cell, len(attr.levels))
        out.append((attr.label, attr.levels[level]))
    return tuple(reversed(out))


def _select_questions(questionnaire_path, language, exclude, questions) -> tuple[list[dict], str]:
    """The questionnaire's questions to build (not excluded; only `questions` when given) and its language."""
    qfile = str(questionnaire_path)
    book, lang = read_questionnaire(questionnaire_path, language)
    excluded = {_question_key(q) for q in exclude}
    book = [q for q in book if q["id"] not in excluded]
    if questions is not None:
        wanted = [_question_key(q) for q in questions]
        known = {q["id"] for q in book}
        missing = [q for q in wanted if q not in known]
        if missing:
            raise ConfigError(f"questions {missing} are not in questionnaire {qfile} (or are excluded)")
        book = [q for q in book if q["id"] in set(wanted)]
    return book, lang


def _load_columns(raw_path: Path, needed: list[str], qfile: str, attribute_of: dict[str, str]) -> pd.DataFrame:
    """The `needed` columns of the raw file (names matched ignoring case) under those names; SurveyDataError
    naming a missing column and what needs it."""
    file = str(raw_path)
    try:
        present: dict[str, list[str]] = {}
        for column in _columns_of(raw_path):
            present.setdefault(str(column).upper(), []).append(column)
    except ConfigError:
        raise
    except (ValueError, OSError, UnicodeDecodeError) as exc:
        raise SurveyDataError(f"cannot read the raw file: {exc}", file=file) from None
    for name in needed:
        if name.upper() not in present:
            if name in attribute_of:
                what = f"attribute {attribute_of[name]!r}"
            elif name.startswith("Q"):
                what = f"question id {name[1:]} of questionnaire {qfile}"
            else:
                what = "column"
            raise SurveyDataError(f"no column {name} for {what}", file=file, field=name)
        if len(present[name.upper()]) > 1:
            raise SurveyDataError(f"columns {present[name.upper()]} all match {name} (names are compared "
                                  "ignoring case)", file=file, field=name)
    actual = [present[n.upper()][0] for n in needed]
    try:
        frame = _read_table(raw_path, actual)[actual]  # readers keep the file's column order
    except (ValueError, OSError, UnicodeDecodeError) as exc:
        raise SurveyDataError(f"cannot read the raw file: {exc}", file=file) from None
    frame.columns = needed
    if frame.empty:
        raise SurveyDataError("the file has a header but no respondent rows", file=file)
    return frame
