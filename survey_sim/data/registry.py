"""The split registry (country sets x question sets, declared in conf/data/registry/): which (country,
question) pairs make up each of the paper's splits."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from survey_sim.data.countries import canonical_country
from survey_sim.data.item import SurveyItem
from survey_sim.data.transforms import country_key
from survey_sim.errors import ConfigError, SurveyDataError

SURVEYS = ("wvs", "pew")


def parse_ids(spec: str | int | Iterable) -> frozenset[int]:
    """Question numbers of a spec like "1-163", "82, 94-105, 223" or a list of numbers and ranges."""
    parts = [spec] if isinstance(spec, (str, int)) else list(spec)
    out: set[int] = set()
    for part in parts:
        for piece in str(part).split(","):
            piece = piece.strip()
            match = re.fullmatch(r"Q?(\d+)(?:\s*-\s*Q?(\d+))?", piece, re.IGNORECASE)
            if not match:
                raise ConfigError(f"bad question id or range {piece!r} in {spec!r} (expected e.g. '1-163' or '82')")
            lo, hi = int(match[1]), int(match[2] or match[1])
            if hi < lo:
                raise ConfigError(f"empty question range {piece!r} in {spec!r}")
            out.update(range(lo, hi + 1))
    return frozenset(out)


def question_number(question_id: str) -> int | None:
    """The WVS question number of an id ("199" or "Q199"), else None."""
    match = re.fullmatch(r"Q?(\d+)", str(question_id).strip(), re.IGNORECASE)
    return int(match[1]) if match else None


@dataclass(frozen=True)
class SplitSpec:
    """One registry split: the countries of `country_set` x the questions of `question_set`."""

    name: str
    survey: str
    country_set: str
    countries: frozenset[str]
    question_set: str
    questions: frozenset[int] | None  # None: every question of the survey
    data_type: str | None
    paper_items: int | None
    excluded_flags: frozenset[str]

    def contains(self, item: SurveyItem) -> bool:
        if country_key(item.country) not in self.countries or self.excluded_flags.intersection(item.flags):
            return False
        return self.questions is None or question_number(item.question_id) in self.questions

    def describe(self) -> str:
        questions = "all questions" if self.questions is None else f"questions {self.question_set}"
        return (f"countries {self.country_set} ({', '.join(sorted(self.countries))}) x {questions}"
                f" of the {self.survey} survey")


@dataclass(frozen=True)
class Registry:
    """Named country sets, question sets and the splits built from them."""

    name: str
    splits: dict[str, SplitSpec]

    @classmethod
    def from_config(cls, cfg: Mapping) -> Registry:
        """Parse a registry mapping (conf/data/registry/*.yaml); ConfigError names what is wrong."""
        name = cfg.get("name", "registry")
        try:
            country_sets = {k: frozenset(canonical_country(c) for c in v) for k, v in cfg["countries"].items()}
            excluded = parse_ids(cfg.get("excluded_questions") or [])
            question_sets = {k: parse_ids(v) - excluded for k, v in cfg["questions"].items()}
            split_cfgs = cfg["splits"]
        except KeyError as exc:
            raise ConfigError(f"split registry {name!r} has no {exc.args[0]!r} section") from None
        except SurveyDataError as exc:
            raise ConfigError(f"split registry {name!r}: {exc}") from None
        flags = frozenset(cfg.get("excluded_flags") or ())
        splits = {}
        for split, spec in split_cfgs.items():
            where = f"split registry {name!r}, split {split!r}"
            if spec.get("survey") not in SURVEYS:
                raise ConfigError(f"{where}: survey must be one of {SURVEYS}, got {spec.get('survey')!r}")
            if spec.get("countries") not in country_sets:
                raise ConfigError(f"{where}: unknown country set {spec.get('countries')!r}; "
                                  f"known: {', '.join(country_sets)}")
            qset = spec.get("questions")
            if qset != "all" and qset not in question_sets:
                raise ConfigError(f"{where}: unknown question set {qset!r}; known: all, {', '.join(question_sets)}")
            splits[split] = SplitSpec(
                name=split, survey=spec["survey"], country_set=spec["countries"],
                countries=country_sets[spec["countries"]], question_set=qset,
                questions=None if qset == "all" else question_sets[qset], data_type=spec.get("data_type"),
                paper_items=spec.get("paper_items"), excluded_flags=flags)
        return cls(name=name, splits=splits)
