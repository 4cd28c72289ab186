"""The paper's item JSON (WVS train/valid/test files, Pew): read it into `SurveyItem`s and write it back.

A file is a JSON list of records {id, instruction, input, options ["(A)..."], options_dist {letter:
value}, data_type[, source][, n_respondents][, n_effective][, attributes]}. The country is only inside
`instruction`; `attributes` {attribute: value in words} make the record a subgroup's item (survey-sim's
extension, from `build-wvs --group-by`, with `country_dist`, its country's distribution, like options_dist); `input` is the question followed by the options trailer. `options_dist` is in percent (WVS) or fractions (Pew) and is
normalised; letters missing from it have probability 0.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import statistics
from collections.abc import Iterable
from pathlib import Path

from survey_sim.data.countries import SAMPLE_FLAGS, parse_country_label
from survey_sim.data.item import LETTERS, SurveyItem
from survey_sim.data.sources import SourceResult, log_skips
from survey_sim.data.subgroups import group_label
from survey_sim.errors import ConfigError, SurveyDataError
from survey_sim.io import atomic_write_json
from survey_sim.modeling.prompts import LANGUAGES, TEMPLATES

logger = logging.getLogger(__name__)

# The paper's prompt (conf/prompt/paper.yaml): its instruction names the country, and `input` is the question
# followed by its options header (the options trailer).
INSTRUCTION_TEMPLATES = {lang: TEMPLATES["paper"][f"instruction_{lang}"] for lang in LANGUAGES}
OPTIONS_TRAILERS = {lang: TEMPLATES["paper"][f"options_header_{lang}"] for lang in LANGUAGES}
NO_TRAILER_FLAG = "no_options_trailer"


def _instruction_pattern(template: str) -> re.Pattern:
    """A matcher of instructions written from `template`, with the country as group `country`: whitespace may
    surround it and precede its closing colon, which may be left out or written as an ASCII colon."""
    before, after = template.strip().split("{country}")
    words = after.rstrip(":：")
    colons = re.escape(after[len(words):]) + ":"
    return re.compile(rf"\s*{re.escape(before)}(?P<country>.+?){re.escape(words)}\s*[{colons}]?\s*", re.DOTALL)


_INSTRUCTION_PATTERNS = {lang: _instruction_pattern(template) for lang, template in INSTRUCTION_TEMPLATES.items()}
OPTION_PATTERN = re.compile(r"\((?P<letter>[A-Z])\)(?P<label>.*)", re.DOTALL)
_REQUIRED = ("id", "instruction", "input", "options", "options_dist", "data_type")
# Distribution sums further than this (relative) from 1 or 100 are logged as suspicious.
_SUM_TOLERANCE = 0.05


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


class JsonConstant:
    """A non-standard JSON constant (NaN, Infinity, -Infinity) as read: kept as a marker (not a number, not a
    string) so that the record holding it is rejected with its index and field (`constant_field`)."""

    def __init__(self, name: str):
        self.name = name

    def __repr__(self) -> str:
        return self.name


def constant_field(record) -> str | None:
    """The first field of a record whose value holds a non-standard JSON constant."""
    def holds(value) -> bool:
        if isinstance(value, JsonConstant):
            return True
        if isinstance(value, dict):
            return any(holds(v) for v in value.values())
        return isinstance(value, list) and any(holds(v) for v in value)

    return next((key for key, value in record.items() if holds(value)), None) if isinstance(record, dict) else None


def read_json_records(path: str | os.PathLike) -> tuple[str, list]:
    """The file name and the JSON list in `path`; SurveyDataError if unreadable or not a JSON list."""
    file = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SurveyDataError("file not found", file=file) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SurveyDataError(f"cannot read file: {exc}", file=file) from None
    try:
        data = json.loads(text, parse_constant=JsonConstant)
    except ValueError as exc:
        raise SurveyDataError(f"not valid JSON: {exc}", file=file) from None
    if not isinstance(data, list):
        raise SurveyDataError(f"expected a JSON list of item records, got {type(data).__name__}", file=file)
    return file, data


def parse_option_texts(options) -> tuple[list[str], list[str]]:
    """Letters and labels of options written "(A)label"; ValueError saying which option is malformed."""
    if not isinstance(options, list) or not all(isinstance(o, str) for o in options):
        raise ValueError("expected a list of strings")
    if len(options) > len(LETTERS):
        raise ValueError(f"{len(options)} options, more than the {len(LETTERS)} letters available")
    if len(options) < 2:
        raise ValueError(f"needs at least 2 options, got {len(options)}")
    letters, labels = [], []
    for pos, text in enumerate(options):
        match = OPTION_PATTERN.fullmatch(text)
        if not match:
            raise ValueError(f"option {pos} {text!r} does not start with a '(L)' letter prefix")
        if not match["label"].strip():
            raise ValueError(f"option {pos} {text!r} has an empty label")
        if match["letter"] in letters:
            raise ValueError(f"letter {match['letter']} is used by two options")
        letters.append(match["letter"])
        labels.append(match["label"])
    return letters, labels


def parse_instruction(instruction: str, language: str | None = None) -> tuple[str, str] | None:
    """(country label, language) of an instruction in the paper's English or Chinese template, else None."""
    order = [language] if language else []
    order += [lang for lang in _INSTRUCTION_PATTERNS if lang not in order]
    for lang in order:
        match = _INSTRUCTION_PATTERNS[lang].fullmatch(instruction)
        if match:
            return match["country"].strip(), lang
    return None


def split_question(text: str, language: str) -> tuple[str, bool]:
    """(question, had_trailer): `text` without its options trailer (the language's first, then any)."""
    for lang in [language, *OPTIONS_TRAILERS]:
        if text.endswith(OPTIONS_TRAILERS[lang]):
            return text[: -len(OPTIONS_TRAILERS[lang])], True
    return text, False


def load_processed(path: str | os.PathLike, *, language: str | None = None) -> SourceResult:
    """Items of one file in the paper's format; records whose distribution is all zeros are skipped.

    `language` ('en' or 'zh') overrides the language detected from each instruction. Raises
    SurveyDataError naming the file, record index and field for any malformed record.
    """
    if language not in (None, "en", "zh"):
        raise ConfigError(f"language must be 'en' or 'zh', got {language!r}")
    file, records = read_json_records(path)
    name = Path(file).name
    items: list[SurveyItem] = []
    skipped: list[tuple[int | str, str]] = []
    seen: dict[tuple, int] = {}
    sums: list[tuple[int, float]] = []
    no_trailer = 0
    for index, record in enumerate(records):
        item, total = _parse_record(record, index, file, name, language)
        if item is None:
            skipped.append((index, "distribution is all zeros (no answers)"))
            continue
        key = (item.group, item.flags, item.question_id, item.language, item.split)
        if key in seen:
            raise SurveyDataError(
                f"duplicate item for country {item.group!r}{_flag_text(item.flags)}, question "
                f"{item.question_id!r}, language {item.language!r}, data_type {item.split!r} "
                f"(first at record {seen[key]})",
                file=file, record=index, field="id")
        seen[key] = index
        sums.append((index, total))
        no_trailer += NO_TRAILER_FLAG in item.flags
        items.append(item)
    _check_scale(file, sums)
    if no_trailer:
        logger.warning("%s: %d record(s) have no options trailer in 'input'; kept the input as the question",
                       file, no_trailer)
    log_skips(logger, file, skipped)
    return SourceResult(items=items, skipped=skipped, file=file)


def _flag_text(flags: tuple[str, ...]) -> str:
    return f" ({', '.join(flags)})" if flags else ""


def _parse_record(record, index: int, file: str, source: str, language: str | None):
    """(SurveyItem, raw distribution sum) of one record, or (None, 0.0) when its distribution is all zeros."""

    def fail(fld: str, msg: str):
        raise SurveyDataError(msg, file=file, record=index, field=fld) from None  # no chained traceback

    if not isinstance(record, dict):
        fail("record", f"expected an object, got {type(record).__name__}")
    constant = constant_field(record)
    if constant is not None:
        fail(constant, "holds NaN or Infinity, which is not a JSON number (write a finite number or leave the "
                       "field out)")
    for fld in _REQUIRED:
        if fld not in record:
            fail(fld, "missing")
    qid = record["id"]
    if not (isinstance(qid, str) or (isinstance(qid, int) and not isinstance(qid, bool))) or not str(qid).strip():
        fail("id", f"expected a non-empty string or an integer, got {qid!r}")
    for fld in ("instruction", "input", "data_type"):
        if not isinstance(record[fld], str):
            fail(fld, f"expected a string, got {type(record[fld]).__name__}")
    if record.get("source") is not None and not isinstance(record["source"], str):
        fail("source", f"expected a string, got {type(record['source']).__name__}")
    n_resp, n_eff = record.get("n_respondents"), record.get("n_effective")
    for fld, value in (("n_respondents", n_resp), ("n_effective", n_eff)):
        if value is not None and not (_number(value) and math.isfinite(value) and value >= 0):
            fail(fld, f"expected a non-negative number, got {value!r}")
    attributes = record.get("attributes") or {}
    if not isinstance(attributes, dict) or not all(
            isinstance(k, str) and k.strip() and isinstance(v, str) and v.strip() for k, v in attributes.items()):
        fail("attributes", f"expected an object of attribute: value in words, got {attributes!r}")

    try:
        letters, labels = parse_option_texts(record["options"])
    except ValueError as exc:
        fail("options", str(exc))

    dist = record["options_dist"]
    if not isinstance(dist, dict):
        fail("options_dist", f"expected an object of letter: value, got {type(dist).__name__}")
    for letter, value in dist.items():
        if letter not in letters:
            fail("options_dist", f"letter {letter!r} has no option (options have {''.join(letters)})")
        if not _number(value) or not math.isfinite(value):
            fail("options_dist", f"value of {letter} must be a finite number, got {value!r}")
        if value < 0:
            fail("options_dist", f"value of {letter} is negative ({value})")
    values = [float(dist.get(letter, 0.0)) for letter in letters]
    total = sum(values)

    parsed = parse_instruction(record["instruction"], language)
    if parsed is None:
        fail("instruction", f"no country found: {record['instruction'][:80]!r} matches neither "
                            f"{INSTRUCTION_TEMPLATES['en']!r} nor {INSTRUCTION_TEMPLATES['zh']!r}")
    label, detected = parsed
    try:
        group, flags = parse_country_label(label)
    except SurveyDataError as exc:
        fail("instruction", str(exc))
    lang = language or detected
    question, had_trailer = split_question(record["input"], lang)
    if not had_trailer:
        flags = (*flags, NO_TRAILER_FLAG)
    if total <= 0:
        return None, 0.0
    try:
        pairs = tuple(attributes.items())
        whole = record.get("country_dist")
        if whole is not None:
            if not isinstance(whole, dict) or set(whole) - set(letters) or not all(
                    _number(v) and math.isfinite(v) and v >= 0 for v in whole.values()) or not sum(whole.values()):
                fail("country_dist", f"expected an object of option letter: non-negative value, got {whole!r}")
            whole = [float(whole.get(letter, 0.0)) for letter in letters]
        item = SurveyItem(
            group=group_label(group, pairs), question_id=str(qid).strip(), question=question, options=labels,
            letters=letters, distribution=values, language=lang, split=record["data_type"],
            prompt_group=label,  # the source's label verbatim in the prompt; the canonical name is for matching
            source=record.get("source") or source, n_respondents=n_resp, flags=flags,
            country=group, attributes=pairs, n_effective=n_eff, country_distribution=whole,
        )
    except SurveyDataError as exc:
        raise SurveyDataError(str(exc), file=file, record=index, field=exc.field) from None
    return item, total


def _check_scale(file: str, sums: list[tuple[int, float]]) -> None:
    """Detect the file's scale (percent or fractions) and log records whose sum is far from it."""
    if not sums:
        return
    scale = 100.0 if statistics.median(total for _, total in sums) > 1.5 else 1.0
    off = [(index, total) for index, total in sums if abs(total / scale - 1) > _SUM_TOLERANCE]
    if off:
        first = ", ".join(f"record {index} sums to {total:g}" for index, total in off[:3])
        logger.warning("%s: distributions are in %s but %d record(s) sum far from %g (%s); normalised anyway",
                       file, "percent" if scale == 100 else "fractions", len(off), scale, first)


def write_processed(items: Iterable[SurveyItem], path: str | os.PathLike) -> Path:
    """Write items in the paper's format (distributions in percent), atomically; `load_processed` reads it back.

    The instruction names `item.country` (with a Pew sample suffix when flagged); `n_respondents` and
    `n_effective` are kept as extra fields when known, and a subgroup's `attributes` as an object
    {attribute: value in words}.
    """
    suffix_of = {flag: text for text, flag in SAMPLE_FLAGS.items()}
    records = []
    for item in items:
        label = item.country
        for flag in item.flags:
            if flag in suffix_of:
                label += f" ({suffix_of[flag].capitalize()})"
        trailer = "" if NO_TRAILER_FLAG in item.flags else OPTIONS_TRAILERS[item.language]
        record = {
            "id": item.question_id,
            "instruction": INSTRUCTION_TEMPLATES[item.language].format(country=label),
            "input": item.question + trailer,
            "options": [f"({letter}){text}" for letter, text in zip(item.letters, item.options)],
            "options_dist": {letter: 100.0 * p for letter, p in zip(item.letters, item.distribution)},
            "data_type": item.split,
            "source": item.source,
        }
        if item.n_respondents is not None:
            record["n_respondents"] = item.n_respondents
        if item.n_effective is not None:
            record["n_effective"] = item.n_effective
        if item.attributes:
            record["attributes"] = dict(item.attributes)
        if item.country_distribution is not None:
            record["country_dist"] = {letter: 100.0 * item.country_distribution[orig]  # the written order
                                      for letter, orig in zip(item.letters, item.option_order)}
        records.append(record)
    return atomic_write_json(path, records, indent=1, sort_keys=False)
