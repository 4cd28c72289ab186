"""Data sources: each turns one file format into `SurveyItem`s and reports what it skipped.

- `processed.load_processed`: the paper's item JSON (WVS train/valid/test, Pew).
- `wvs_raw.build_wvs_items`: the official WVS-7 respondent-level file plus a questionnaire file.
- `goqa.load_goqa`: Anthropic's GlobalOpinionQA table (local copy or the Hugging Face dataset).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from survey_sim.data.item import SurveyItem

MAX_REASONS_LOGGED = 3


@dataclass
class SourceResult:
    """The items a source built from `file`, and the records it skipped as (record index or key, reason)."""

    items: list[SurveyItem]
    skipped: list[tuple[int | str, str]] = field(default_factory=list)
    file: str = ""

    def summary(self) -> str:
        """One line: file, item, group and question counts, languages, skips."""
        groups = {it.group for it in self.items}
        questions = {it.question_id for it in self.items}
        languages = ",".join(sorted({it.language for it in self.items})) or "-"
        return (f"{self.file}: {len(self.items)} items ({len(groups)} groups, {len(questions)} questions, "
                f"language {languages}), {len(self.skipped)} skipped")


def log_skips(logger: logging.Logger, file: str, skipped: list[tuple[int | str, str]]) -> None:
    """Warn once about the skipped records of `file`: their count and the first reasons."""
    if not skipped:
        return
    first = "; ".join(f"record {rec}: {why}" for rec, why in skipped[:MAX_REASONS_LOGGED])
    more = f" (and {len(skipped) - MAX_REASONS_LOGGED} more)" if len(skipped) > MAX_REASONS_LOGGED else ""
    logger.warning("%s: skipped %d record(s): %s%s", file, len(skipped), first, more)


from survey_sim.data.sources.goqa import load_goqa, parse_options, parse_selections
from survey_sim.data.sources.processed import load_processed
from survey_sim.data.sources.wvs_raw import build_wvs_items, write_processed

__all__ = [
    "SourceResult",
    "build_wvs_items",
    "load_goqa",
    "load_processed",
    "log_skips",
    "parse_options",
    "parse_selections",
    "write_processed",
]
