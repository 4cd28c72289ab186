"""A user's questionnaire (YAML, JSON or CSV): question id, text, options in order, ordinal flag.

YAML and JSON hold a list of questions, or a mapping with a `questions` list:

    questions:
      - id: trust_science
        text: How much do you trust scientists?
        options: [A great deal, Quite a lot, Not very much, None at all]
        ordinal: true

CSV has one row per question with columns `id`, `text`, `ordinal` (optional) and either `options`
(labels separated by "|") or `option_1`, `option_2`, ... (trailing empty cells ignored). `question` is
accepted for `text`. `ordinal` defaults to false; a CSV row may leave out trailing optional cells, but a row
with more cells than the header (an unquoted comma) is an error. Every error names the file, the row (1-based
data row for CSV, 0-based list index for YAML/JSON) and the field.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import yaml

from survey_sim.data.item import LETTERS, SurveyItem
from survey_sim.errors import SurveyDataError
from survey_sim.io import read_text

FIELDS = ("id", "text", "question", "options", "ordinal")
_OPTION_COLUMN = re.compile(r"option_?(\d+)$", re.IGNORECASE)
_TRUE, _FALSE = {"true", "yes", "y", "1"}, {"false", "no", "n", "0", ""}


@dataclass(frozen=True)
class Question:
    """One question of a questionnaire; `row` is where it was read (for messages)."""

    id: str
    text: str
    options: tuple[str, ...]
    ordinal: bool = False
    row: int | str = ""

    def items(self, countries, language: str = "en", source: str = "questionnaire") -> list[SurveyItem]:
        """One SurveyItem per country (no human data: the distribution is a uniform placeholder)."""
        k = len(self.options)
        return [SurveyItem(group=c, question_id=self.id, question=self.text, options=self.options,
                           letters=tuple(LETTERS[:k]), distribution=(1.0,) * k, language=language,
                           split="simulate", source=source, ordinal=self.ordinal, flags=("no_human_data",))
                for c in countries]


def _bool(value, fail) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower() if value is not None else ""
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    fail(f"must be true or false, got {value!r}", "ordinal")


def _question(record: Mapping, row: int | str, file: str) -> Question:
    def fail(msg: str, fld: str):
        raise SurveyDataError(msg, file=file, record=row, field=fld)

    if not isinstance(record, Mapping):
        fail(f"a question must be a mapping with id, text and options, got {type(record).__name__}", "id")
    unknown = sorted(str(k) for k in record if str(k) not in FIELDS)
    if unknown:
        fail(f"unknown key(s) {unknown}; allowed: id, text (or question), options, ordinal", unknown[0])
    qid = str(record.get("id") if record.get("id") is not None else "").strip()
    if not qid:
        fail("the question id is missing or empty", "id")
    text = record.get("text", record.get("question"))
    if not isinstance(text, str) or not text.strip():
        fail(f"question {qid!r}: the question text is missing or empty", "text")
    options = record.get("options")
    if isinstance(options, str) or not isinstance(options, (list, tuple)):
        fail(f"question {qid!r}: options must be a list of labels, got {options!r}", "options")
    labels = tuple("" if o is None else str(o).strip() for o in options)
    empty = [i + 1 for i, o in enumerate(labels) if not o]
    if empty:
        fail(f"question {qid!r}: option(s) {empty} are empty", "options")
    if len(labels) < 2:
        fail(f"question {qid!r}: needs at least 2 options, got {len(labels)}", "options")
    if len(labels) > len(LETTERS):
        fail(f"question {qid!r}: has {len(labels)} options, more than the {len(LETTERS)} letters A-Z", "options")
    dupes = sorted({o for o in labels if labels.count(o) > 1})
    if dupes:
        fail(f"question {qid!r}: duplicate option label(s) {dupes}", "options")
    return Question(qid, text.strip(), labels, _bool(record.get("ordinal", False), fail), row)


def _csv_records(path: Path) -> list[tuple[int, dict]]:
    with io.StringIO(read_text(path, "utf-8-sig"), newline="") as fh:
        reader = csv.DictReader(fh)
        header = [h.strip() for h in reader.fieldnames or []]
        option_cols = sorted((int(m[1]), h) for h in header if (m := _OPTION_COLUMN.fullmatch(h)))
        unknown = [h for h in header if h not in FIELDS and not _OPTION_COLUMN.fullmatch(h)]
        if unknown:
            raise SurveyDataError(f"unknown column(s) {unknown}; allowed: id, text (or question), options or "
                                  "option_1..option_N, ordinal", file=str(path), record="header", field=unknown[0])
        if not option_cols and "options" not in header:
            raise SurveyDataError("no options: add an 'options' column (labels separated by '|') or "
                                  "option_1, option_2, ... columns", file=str(path), record="header",
                                  field="options")
        out = []
        for n, raw in enumerate(reader, start=1):
            extra = raw.pop(None, [])
            row = {k.strip(): v for k, v in raw.items()}
            if not any((v or "").strip() for v in [*row.values(), *extra]):
                continue  # blank line
            if any(cell.strip() for cell in extra):
                raise SurveyDataError(f"row has {len(extra)} more cell(s) than the header (an unquoted comma?); "
                                      f"cells past the last column: {extra}", file=str(path), record=n,
                                      field=header[-1])
            missing = [h for h in ("id", "text", "question", "options") if h in header and row[h] is None]
            if missing:
                raise SurveyDataError(f"row has {sum(v is None for v in row.values())} fewer cell(s) than the "
                                      f"header: no {missing[0]!r} cell", file=str(path), record=n, field=missing[0])
            record = {k: row[k] for k in ("id", "text", "question", "ordinal") if row.get(k) not in (None, "")}
            if "options" in header and (row.get("options") or "").strip():
                record["options"] = row["options"].split("|")
            else:
                cells = [row.get(h) or "" for _, h in option_cols]
                while cells and not cells[-1].strip():
                    cells.pop()
                record["options"] = cells
            out.append((n, record))
    return out


def read_questionnaire(path: str | Path) -> list[Question]:
    """The questions of a YAML/JSON/CSV questionnaire, validated; ids must be unique."""
    path = Path(path)
    if not path.is_file():
        raise SurveyDataError("questionnaire file not found", file=str(path))
    suffix = path.suffix.lower()
    if suffix == ".csv":
        records = _csv_records(path)
    elif suffix in (".yaml", ".yml", ".json"):
        text = read_text(path)
        try:
            data = json.loads(text) if suffix == ".json" else yaml.load(text, Loader=yaml.BaseLoader)
        except (json.JSONDecodeError, yaml.YAMLError) as err:
            raise SurveyDataError(f"cannot parse {suffix[1:].upper()}: {err}", file=str(path)) from None
        if isinstance(data, Mapping):
            data = data.get("questions")
        if not isinstance(data, list):
            raise SurveyDataError("expected a list of questions (or a mapping with a 'questions' list)",
                                  file=str(path), field="questions")
        records = list(enumerate(data))
    else:
        raise SurveyDataError(f"unsupported questionnaire format {suffix or '(none)'!r}; use .yaml, .json or .csv",
                              file=str(path))
    questions, seen = [], {}
    for row, record in records:
        q = _question(record, row, str(path))
        if q.id in seen:
            raise SurveyDataError(f"duplicate question id {q.id!r} (first at record {seen[q.id]})",
                                  file=str(path), record=row, field="id")
        seen[q.id] = row
        questions.append(q)
    if not questions:
        raise SurveyDataError("the questionnaire has no questions", file=str(path))
    return questions
