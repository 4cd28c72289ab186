"""Build country-level items from the official WVS-7 respondent file, as the paper did.

The raw file (CSV, Stata .dta, SPSS .sav or Parquet) has one row per respondent: `B_COUNTRY` is the ISO
3166-1 numeric country code, `Q1`..`Q290` hold answer codes and `W_WEIGHT` the design weight. Negative
codes (don't know, no answer, not asked, missing) are dropped; codes 1..26 are the letters A..Z and 0 is
X. Option and question texts come from a questionnaire file (a JSON list of {id, split, input, options}).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
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
from survey_sim.errors import ConfigError, SurveyDataError

logger = logging.getLogger(__name__)

__all__ = ["DEFAULT_EXCLUDED", "build_wvs_items", "read_questionnaire", "write_processed"]

COUNTRY_COLUMN = "B_COUNTRY"
WEIGHT_COLUMN = "W_WEIGHT"
# Demographic and region-specific questions the paper left out: Q82, Q94-Q105, Q223.
DEFAULT_EXCLUDED: tuple[str, ...] = ("82", *(str(q) for q in range(94, 106)), "223")


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
    min_respondents: int = 1000,
    countries: Iterable[str | int] | None = None,
    questions: Iterable[str | int] | None = None,
    language: str | None = None,
    exclude: Iterable[str | int] = DEFAULT_EXCLUDED,
) -> SourceResult:
    """One item per (country, question): the answer distribution of the country's respondents.

    Counts are unweighted (or sums of `W_WEIGHT` when `weighted`); countries with fewer than
    `min_respondents` rows are left out; questions in `exclude` are never built. `n_respondents` is the
    number (weighted sum) of valid answers. A country with no valid answer to a question is a counted
    skip; a questionnaire question with no column, or an answer code without an option, is an error.
    """
    raw_path, file = Path(raw_path), str(raw_path)
    if language not in (None, "en", "zh"):
        raise ConfigError(f"language must be 'en' or 'zh', got {language!r}")
    if not raw_path.is_file():
        raise SurveyDataError("file not found", file=file)
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

    try:
        present: dict[str, list[str]] = {}
        for column in _columns_of(raw_path):
            present.setdefault(str(column).upper(), []).append(column)
    except ConfigError:
        raise
    except (ValueError, OSError, UnicodeDecodeError) as exc:
        raise SurveyDataError(f"cannot read the raw file: {exc}", file=file) from None
    needed = [COUNTRY_COLUMN] + ([WEIGHT_COLUMN] if weighted else []) + [f"Q{q['id']}" for q in book]
    for name in needed:
        if name.upper() not in present:
            what = f"question id {name[1:]} of questionnaire {qfile}" if name.startswith("Q") else "column"
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

    codes = _numeric(frame, COUNTRY_COLUMN, file, integer=True)
    if codes.isna().any():
        raise SurveyDataError("country code is empty", file=file, record=int(codes.isna().idxmax()),
                              field=COUNTRY_COLUMN)
    codes = codes.astype("int64")
    unknown = sorted(set(codes.unique()) - set(ISO_NUMERIC))
    if unknown:
        row = int(codes.isin(unknown).idxmax())
        raise SurveyDataError(f"country code {unknown[0]} is not an ISO 3166-1 numeric code known to survey-sim",
                              file=file, record=row, field=COUNTRY_COLUMN)
    sizes = codes.value_counts().sort_index()
    skipped: list[tuple[int | str, str]] = []
    if countries is not None:
        chosen = {resolve_country(c) for c in countries}
        in_file = {ISO_NUMERIC[int(c)] for c in sizes.index}
        absent = sorted(chosen - in_file)
        if absent:
            raise ConfigError(f"countries {absent} have no respondents in {file}")
        sizes = sizes[[ISO_NUMERIC[int(c)] in chosen for c in sizes.index]]
    small = sizes[sizes < min_respondents]
    for code, n in small.items():
        skipped.append((ISO_NUMERIC[int(code)], f"{n} respondents, fewer than min_respondents={min_respondents}"))
    kept = [int(c) for c in sizes.index if sizes[c] >= min_respondents]
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

    # Counts per (country, code) by one bincount per question: cell = country position * 27 + code.
    position = codes.map({code: pos for pos, code in enumerate(kept)}).to_numpy("int64")
    weight_values = weights.to_numpy("float64")
    tables = {}
    for q in book:
        column = f"Q{q['id']}"
        answers = _numeric(frame, column, file, integer=True)[rows]
        valid = (answers >= 0).to_numpy()
        option_codes = [_letter_code(letter) for letter in q["letters"]]
        bad = valid & ~answers.isin(option_codes).to_numpy()
        if bad.any():
            row = int(answers.index[bad.argmax()])
            raise SurveyDataError(
                f"answer code {int(answers[row])} has no option in questionnaire {qfile} "
                f"(question {q['id']} has codes {sorted(option_codes)})", file=file, record=row, field=column)
        cells = position[valid] * 27 + answers.to_numpy()[valid].astype("int64")
        counts = np.bincount(cells, weights=weight_values[valid], minlength=len(kept) * 27)
        tables[q["id"]] = counts.reshape(len(kept), 27)[:, option_codes]

    items = []
    for row, code in enumerate(kept):
        country = ISO_NUMERIC[code]
        for q in book:
            counts = tables[q["id"]][row]
            total = float(counts.sum())
            if total <= 0:
                skipped.append((f"{country}/Q{q['id']}", "no valid answers (question not asked or all missing)"))
                continue
            items.append(SurveyItem(
                group=country, question_id=q["id"], question=q["question"], options=q["options"],
                letters=q["letters"], distribution=counts.tolist(), language=lang, split=q["split"],
                source=raw_path.name, n_respondents=total if weighted else round(total), flags=q["flags"],
            ))
    log_skips(logger, file, skipped)
    return SourceResult(items=items, skipped=skipped, file=file)
