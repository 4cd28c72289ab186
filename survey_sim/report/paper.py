"""The paper's published numbers (paper_numbers.yaml): loaded, checked, and matched to a table row."""

from __future__ import annotations

import math
import os
from pathlib import Path

import yaml

from survey_sim.errors import SurveyDataError
from survey_sim.evaluation.metrics import REPORTED_METRICS
from survey_sim.report.collect import RunGroup

PAPER_NUMBERS = Path(__file__).with_name("paper_numbers.yaml")


def load_paper_numbers(path: str | os.PathLike | None = None) -> list[dict]:
    """The published reference numbers: records {model, method, control, split, <metric>: value}."""
    path = Path(path) if path else PAPER_NUMBERS
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise SurveyDataError(f"cannot read paper numbers: {exc}", file=str(path)) from exc
    records = (data.get("numbers") or []) if isinstance(data, dict) else None
    if not isinstance(records, list):
        raise SurveyDataError("expected a mapping with a list 'numbers'", file=str(path), field="numbers")
    for i, rec in enumerate(records):
        if not isinstance(rec, dict):
            raise SurveyDataError("record is not a mapping", file=str(path), record=i)
        for key in ("method", "split"):
            if not rec.get(key):
                raise SurveyDataError(f"record has no {key}", file=str(path), record=i, field=key)
        for metric in set(rec) & set(REPORTED_METRICS):
            if not isinstance(rec[metric], (int, float)) or not math.isfinite(rec[metric]):
                raise SurveyDataError(f"{metric} must be a number, got {rec[metric]!r}", file=str(path),
                                      record=i, field=metric)
    return records


def _setting(source: dict) -> tuple:
    """What a paper record and a run must share besides model and method (defaults as in paper_numbers.yaml)."""
    method = source.get("method")
    return (bool(source.get("control", False)), source.get("language") or "en", bool(source.get("shuffle", False)),
            int(source.get("permutations") or 1), (source.get("loss") or "kl") if method == "ft" else None,
            source.get("k") if method == "knn" else None)


def paper_for(group: RunGroup, metric: str, records: list[dict]) -> dict[str, float]:
    """Per split, the published `metric` of the records with the row's model, method and setting."""
    run = group.runs[0].run
    return {rec["split"]: float(rec[metric]) for rec in records
            if metric in rec and rec.get("model") == run.get("model") and rec["method"] == run.get("method")
            and _setting(rec) == _setting(run)}
