"""Anthropic's GlobalOpinionQA (`Anthropic/llm_global_opinions`): one item per (question, country).

Each row has `question`, `options` (a Python list literal as text), `selections` (the text of a
`defaultdict(<class 'list'>, {'Belgium': [0.1, 0.9], ...})`) and `source` ('GAS' for the Pew Global
Attitudes Survey, 'WVS'). Both literals are parsed without eval: only a dict of str -> list of numbers
and a list of strings are accepted.
"""

from __future__ import annotations

import ast
import json
import logging
import math
import os
import re
import warnings
from pathlib import Path

from survey_sim.data.countries import parse_country_label
from survey_sim.data.item import LETTERS, SurveyItem
from survey_sim.data.sources import SourceResult, log_skips
from survey_sim.errors import ConfigError, SurveyDataError

logger = logging.getLogger(__name__)

HF_DATASET = "Anthropic/llm_global_opinions"
COLUMNS = ("question", "selections", "options", "source")
# `source` argument -> values of the `source` column it selects (compared case-insensitively).
SOURCES = {"pew": {"pew", "gas"}, "gas": {"pew", "gas"}, "wvs": {"wvs"}}

_DEFAULTDICT = re.compile(r"defaultdict\(\s*<class '(?:list)'>\s*,\s*(?P<body>.*)\)", re.DOTALL)
_MAX_LITERAL = 1_000_000


def _literal(text: str, what: str):
    """The value of a Python literal (no names, calls or operators are evaluated); SurveyDataError if malformed."""
    if len(text) > _MAX_LITERAL:
        raise SurveyDataError(f"{what} is longer than {_MAX_LITERAL} characters")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return ast.literal_eval(text.strip())
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError) as exc:
        raise SurveyDataError(f"{what} is not a valid literal: {text[:60]!r} ({type(exc).__name__})") from None


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _check_selections(value, what: str) -> dict[str, list[float]]:
    if not isinstance(value, dict):
        raise SurveyDataError(f"{what} must be a dict of country -> list of numbers, got {type(value).__name__}")
    out = {}
    for key, numbers in value.items():
        if not isinstance(key, str):
            raise SurveyDataError(f"{what}: country {key!r} is not a string")
        if not isinstance(numbers, list) or not all(_is_number(x) for x in numbers):
            raise SurveyDataError(f"{what}: value of {key!r} is not a list of finite numbers: {numbers!r:.60}")
        out[key] = [float(x) for x in numbers]
    return out


def parse_selections(text: str) -> dict[str, list[float]]:
    """Parse `defaultdict(<class 'list'>, {'Belgium': [0.1, 0.9]})` (or the bare dict) without eval.

    Raises SurveyDataError unless the text is a dict literal of str -> list of finite numbers.
    """
    if not isinstance(text, str):
        raise SurveyDataError(f"selections must be text, got {type(text).__name__}")
    stripped = text.strip()
    match = _DEFAULTDICT.fullmatch(stripped)
    body = match["body"] if match else stripped
    if not body.strip().startswith("{"):
        raise SurveyDataError(f"selections is not a dict literal: {text[:60]!r}")
    return _check_selections(_literal(body, "selections"), "selections")


def _check_options(value, what: str) -> list[str]:
    if not isinstance(value, (list, tuple)):
        raise SurveyDataError(f"{what} must be a list of strings, got {type(value).__name__}")
    out = []
    for option in value:
        if isinstance(option, str):
            out.append(option)
        elif _is_number(option):
            out.append(str(option))
        else:
            raise SurveyDataError(f"{what}: option {option!r:.60} is not a string")
    return out


def parse_options(text: str) -> list[str]:
    """Parse an options list literal such as "['Yes', 'No']" without eval; SurveyDataError otherwise."""
    if not isinstance(text, str):
        raise SurveyDataError(f"options must be text, got {type(text).__name__}")
    if not text.strip().startswith("["):
        raise SurveyDataError(f"options is not a list literal: {text[:60]!r}")
    return _check_options(_literal(text, "options"), "options")


def _read_rows(path: str | None) -> tuple[str, list[dict]]:
    """(name, rows) of a local CSV/Parquet/JSON/JSONL copy, or of the Hugging Face dataset when path is None."""
    if path is None:
        try:
            import datasets
        except ImportError:
            raise ConfigError("loading GlobalOpinionQA from the Hugging Face hub needs the datasets package: "
                              "pip install 'survey-sim[hub]', or pass the path of a local copy") from None
        try:
            frame = datasets.load_dataset(HF_DATASET, split="train").to_pandas()
        except Exception as exc:  # noqa: BLE001 - network, auth and cache errors come as many types
            raise ConfigError(f"cannot load {HF_DATASET} from the Hugging Face hub ({type(exc).__name__}: "
                              f"{exc}); download it once or pass the path of a local copy") from None
        return HF_DATASET, frame.to_dict("records")
    file = str(path)
    source = Path(path)
    if not source.is_file():
        raise SurveyDataError("file not found", file=file)
    suffix = source.suffix.lower()
    try:
        if suffix in (".json", ".jsonl"):
            text = source.read_text(encoding="utf-8")
            if suffix == ".jsonl":
                rows = [json.loads(line) for line in text.splitlines() if line.strip()]
            else:
                rows = json.loads(text)
        else:
            import pandas as pd

            frame = pd.read_parquet(source) if suffix == ".parquet" else pd.read_csv(source, dtype=str,
                                                                                      keep_default_na=False)
            rows = frame.to_dict("records")
    except (ValueError, OSError, UnicodeDecodeError) as exc:
        raise SurveyDataError(f"cannot read the table: {exc}", file=file) from None
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise SurveyDataError("expected a list of row objects", file=file)
    return file, rows


def load_goqa(path: str | os.PathLike | None = None, *, source: str | None = "pew") -> SourceResult:
    """Items of GlobalOpinionQA rows whose `source` column matches `source` ('pew'/'gas', 'wvs', None: all).

    `question_id` is the row's index in the full table. Rows without question text, countries whose
    numbers do not match the options, and all-zero distributions are counted, logged skips.
    """
    if source is not None and source.lower() not in SOURCES:
        raise ConfigError(f"source must be one of {sorted(SOURCES)} or None, got {source!r}")
    file, rows = _read_rows(None if path is None else str(path))
    wanted = None if source is None else SOURCES[source.lower()]
    items: list[SurveyItem] = []
    skipped: list[tuple[int | str, str]] = []
    for index, row in enumerate(rows):
        def fail(fld: str, msg: str, index: int = index):
            raise SurveyDataError(msg, file=file, record=index, field=fld)

        for column in COLUMNS:
            if column not in row:
                fail(column, "missing")
        row_source = row["source"]
        if not isinstance(row_source, str) or not row_source.strip():
            fail("source", f"expected a source name, got {row_source!r}")
        if wanted is not None and row_source.strip().lower() not in wanted:
            continue
        question = row["question"]
        if not isinstance(question, str) or not question.strip():
            skipped.append((index, "no question text"))
            continue
        try:
            options = (parse_options(row["options"]) if isinstance(row["options"], str)
                       else _check_options(_as_list(row["options"]), "options"))
        except SurveyDataError as exc:
            fail("options", str(exc))
        if len(options) > len(LETTERS):
            fail("options", f"{len(options)} options, more than the {len(LETTERS)} letters available")
        try:
            selections = (parse_selections(row["selections"]) if isinstance(row["selections"], str)
                          else _check_selections(_as_dict(row["selections"]), "selections"))
        except SurveyDataError as exc:
            fail("selections", str(exc))
        seen: dict[tuple, str] = {}
        for label, values in selections.items():
            try:
                group, flags = parse_country_label(label)
            except SurveyDataError as exc:
                fail("selections", str(exc))
            if any(v < 0 for v in values):
                fail("selections", f"{label!r} has a negative value: {values}")
            if len(values) != len(options):
                skipped.append((f"{index}/{label}", f"{len(values)} values for {len(options)} options"))
                continue
            if sum(values) <= 0:
                skipped.append((f"{index}/{label}", "distribution is all zeros (no answers)"))
                continue
            if (group, flags) in seen:
                fail("selections", f"{label!r} and {seen[group, flags]!r} are the same country {group!r}")
            seen[group, flags] = label
            try:
                items.append(SurveyItem(
                    group=group, question_id=str(index), question=question, options=options,
                    letters=LETTERS[: len(options)], distribution=values, language="en", split="test",
                    source=f"GlobalOpinionQA:{row_source.strip()}", flags=flags,
                    prompt_group=label,  # the table's label verbatim in the prompt; the group is for matching
                ))
            except SurveyDataError as exc:
                raise SurveyDataError(str(exc), file=file, record=index, field=exc.field) from None
    log_skips(logger, file, skipped)
    return SourceResult(items=items, skipped=skipped, file=file)


def _as_list(value):
    """A list from an already-decoded column value (JSON list, numpy array from Parquet)."""
    return value.tolist() if hasattr(value, "tolist") and not isinstance(value, (str, dict)) else value


def _as_dict(value):
    """A dict of lists from an already-decoded column value (numpy arrays from Parquet become lists)."""
    if isinstance(value, dict):
        return {k: _as_list(v) for k, v in value.items()}
    return value
