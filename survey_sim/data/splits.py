"""The split registry (country sets x question sets, declared in conf/data/registry/) and `load_splits`.

A data config names its source, files, language and splits; the registry says which (country, question)
pairs make up each split. Items are assigned to splits by the registry alone, so the paper's processed
files and a raw WVS-7 build give the same splits; when reading processed files the assignment is checked
against each record's `data_type`.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from survey_sim.data import demo
from survey_sim.data.countries import canonical_country
from survey_sim.data.item import SurveyItem
from survey_sim.data.scales import with_wvs_scales
from survey_sim.data.sources.wvs_raw import MIN_CELL
from survey_sim.data.subgroups import select_attributes
from survey_sim.data.transforms import country_key, select_language, stable_seed, translate_items
from survey_sim.errors import ConfigError, SurveyDataError
from survey_sim.paths import data_root

log = logging.getLogger(__name__)

WVS_SOURCES = ("processed", "wvs_raw", "demo")
PEW_SOURCES = ("processed", "goqa")
#: data.goqa_rows: which GlobalOpinionQA rows pew_source=goqa loads (the table's `source` column).
GOQA_ROWS = {"pew": "pew", "wvs": "wvs", "all": None}
SURVEYS = ("wvs", "pew")
LANGUAGES = ("en", "zh")


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


def _plain(data_cfg) -> dict:
    if isinstance(data_cfg, DictConfig):
        return OmegaConf.to_container(data_cfg, resolve=True)
    return dict(data_cfg)


def _files(value) -> list[str]:
    if value in (None, ""):
        return []
    return [str(value)] if isinstance(value, (str, Path)) else [str(v) for v in value]


#: Split roles a data config names with `<role>_split`; `dev` (held-out training countries on the training
#: questions) is taken out of the training split (see `hold_out_dev`).
ROLES = ("train", "val", "dev")


def split_names(data_cfg) -> list[str]:
    """The keys `load_splits` returns: "train", "val" and "dev" when configured, then the test split names."""
    cfg = _plain(data_cfg)
    names = [key for key in ROLES if cfg.get(f"{key}_split")]
    return names + [t for t in (cfg.get("test_splits") or []) if t not in names]


def requested_splits(cfg: dict) -> dict[str, str]:
    """Returned split key -> registry (or demo) split name."""
    out = {key: cfg[f"{key}_split"] for key in ROLES if cfg.get(f"{key}_split")}
    out.update({t: t for t in (cfg.get("test_splits") or []) if t not in out})
    return out


def validate_data_config(data_cfg) -> dict:
    """Cheap checks (no file is read, only its existence): returns the resolved config as a plain dict."""
    cfg = _plain(data_cfg)
    name = cfg.get("name") or "?"
    where = f"data config {name!r}"
    source = cfg.get("source")
    if source not in WVS_SOURCES:
        raise ConfigError(f"{where}: source must be one of {', '.join(WVS_SOURCES)}, got {source!r}")
    language = cfg.get("language", "en")
    if language not in LANGUAGES:
        raise ConfigError(f"{where}: language must be one of {', '.join(LANGUAGES)}, got {language!r}")
    requested = requested_splits(cfg)
    if not requested:
        raise ConfigError(f"{where}: no split requested (set train_split, val_split or test_splits)")
    _check_item_caps(cfg.get("max_items_per_split"), requested, where)

    if source == "demo":
        valid = [*demo.SPLITS, demo.DEV_SPLIT]
        if language != "en":
            raise ConfigError(f"{where}: the synthetic demo survey is English only, got language {language!r}")
    else:
        registry = Registry.from_config(cfg.get("registry") or {})
        valid = list(registry.splits)
    unknown = [s for s in requested.values() if s not in valid]
    if unknown:
        raise ConfigError(f"{where}: unknown split(s) {unknown}; valid split names: {', '.join(valid)}")
    if source == "demo":
        return cfg

    surveys = {registry.splits[s].survey for s in requested.values()}
    pew_source = cfg.get("pew_source", "processed")
    if "pew" in surveys and pew_source not in PEW_SOURCES:
        raise ConfigError(f"{where}: pew_source must be one of {', '.join(PEW_SOURCES)}, got {pew_source!r}")
    if "pew" in surveys and cfg.get("goqa_rows", "pew") not in GOQA_ROWS:
        raise ConfigError(f"{where}: goqa_rows must be one of {', '.join(GOQA_ROWS)}, got {cfg.get('goqa_rows')!r}")
    if "pew" in surveys and language != "en":
        raise ConfigError(f"{where}: the Pew splits exist in English only, got language {language!r}")
    root = data_root(cfg.get("root"))
    cfg["root"] = str(root)
    missing = [str(root / f) for f in _relative_files(cfg, surveys) if not (root / f).exists()]
    if missing:
        raise ConfigError(f"{where}: data file(s) not found: {', '.join(missing)} (data.root={root})")
    return cfg


def _relative_files(cfg: dict, surveys: Iterable[str]) -> list[str]:
    """The files (relative to root, or absolute) a config reads for the given surveys."""
    files = cfg.get("files") or {}
    where = f"data config {cfg.get('name', '?')!r}"
    out: list[str] = []
    surveys = set(surveys)
    if "wvs" in surveys:
        if cfg["source"] == "processed":
            out += _files(files.get("processed"))
            if not out:
                raise ConfigError(f"{where}: source 'processed' needs files.processed (item JSON files)")
        else:
            raw, questionnaire = _files(files.get("raw")), _files(files.get("questionnaire"))
            if not raw or not questionnaire:
                raise ConfigError(f"{where}: source 'wvs_raw' needs files.raw (the WVS-7 respondent file) and "
                                  "files.questionnaire (questionnaire_en.json)")
            out += raw + questionnaire
        if cfg.get("language", "en") != "en":
            out += _files(files.get("translations")) + _files(files.get("translation_questionnaire"))
    if "pew" in surveys:
        pew = _files(files.get("pew"))
        if not pew and cfg.get("pew_source", "processed") == "processed":
            raise ConfigError(f"{where}: the Pew splits need files.pew (the Pew item JSON file)")
        out += pew
    return out


def data_files(data_cfg) -> list[Path]:
    """Absolute paths of every file the config reads (for run_info hashes); empty for the demo survey."""
    cfg = _plain(data_cfg)
    if cfg.get("source") == "demo":
        return []
    registry = Registry.from_config(cfg.get("registry") or {})
    surveys = {registry.splits[s].survey for s in requested_splits(cfg).values() if s in registry.splits}
    root = data_root(cfg.get("root"))
    return [root / f for f in _relative_files(cfg, surveys)]


def _load_source(cfg: dict, survey: str) -> tuple[list[SurveyItem], bool]:
    """All items of one survey, and whether they come from processed files (with data_type to check)."""
    from survey_sim.data import sources

    root = Path(cfg["root"])
    files = cfg.get("files") or {}
    if survey == "pew":
        path = _files(files.get("pew"))
        if cfg.get("pew_source", "processed") == "goqa":
            results = [sources.load_goqa(root / path[0] if path else None,
                                         source=GOQA_ROWS[cfg.get("goqa_rows", "pew")])]
        else:
            results = [sources.load_processed(root / path[0], language="en")]
    elif cfg["source"] == "processed":
        results = [sources.load_processed(root / f) for f in _files(files["processed"])]
    else:  # every country and question: the registry chooses (a set may list countries the file lacks)
        results = [sources.build_wvs_items(
            root / _files(files["raw"])[0], root / _files(files["questionnaire"])[0],
            weighted=bool(cfg.get("weighted", False)), min_respondents=int(cfg.get("min_respondents") or 0),
            group_by=select_attributes(cfg.get("attributes") or {}, cfg.get("group_by") or []),
            min_cell=int(cfg.get("min_cell") or MIN_CELL))]
    for res in results:
        log.info("%s", res.summary())
    processed = (cfg["source"] if survey == "wvs" else cfg.get("pew_source", "processed")) == "processed"
    return [it for res in results for it in res.items], processed


def assign(spec: SplitSpec, pool: Iterable[SurveyItem], *, check_data_type: bool = False) -> list[SurveyItem]:
    """The pool's items in `spec` (one per (group, flags, question, language), preferring the item whose
    data_type is the split's); with `check_data_type`, disagreements with data_type are logged."""
    pool = list(pool)
    chosen: dict[tuple, SurveyItem] = {}
    for item in pool:
        if not spec.contains(item):
            continue
        key = (country_key(item.country), item.attributes, item.flags, item.question_id, item.language)
        have = chosen.get(key)
        if have is None or (have.split != spec.data_type and item.split == spec.data_type):
            chosen[key] = item
    items = list(chosen.values())
    if check_data_type and spec.data_type:
        other = Counter(it.split for it in items if it.split != spec.data_type)
        outside = sum(1 for it in pool if it.split == spec.data_type and not spec.contains(it))
        if other or outside:
            log.warning("split %s (%s): %d of %d items have a data_type other than %r (%s); %d items with "
                        "data_type %r fall outside the split", spec.name, spec.describe(), sum(other.values()),
                        len(items), spec.data_type, dict(other), outside, spec.data_type)
    return items


def _check_item_caps(limit, requested: dict[str, str], where: str, field: str = "max_items_per_split") -> None:
    """An item cap (`field`): null, one positive integer for every split, or {split key: positive integer}."""
    caps = limit if isinstance(limit, dict) else {None: limit}
    for key, n in caps.items():
        if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
            name = field + ("" if key is None else f"[{key!r}]")
            raise ConfigError(f"{where}: {name} must be a positive integer or null, got {n!r}")
    unknown = [k for k in caps if k is not None and k not in requested]
    if unknown:
        raise ConfigError(f"{where}: {field} names split(s) {unknown} that the run does not load; "
                          f"loaded: {sorted(requested)}")


HELDOUT_GROUP_SPLIT = "test-unseen-group"


def hold_out_groups(splits: dict[str, list[SurveyItem]], holdout: dict, train_key: str | None,
                    val_key: str | None) -> dict[str, list[SurveyItem]]:
    """Hold subgroups out of training: `holdout` maps attribute labels to a value or a list of values (every
    attribute given must match), and optionally `countries` to a list (countries x subgroups; default every
    country). Matching training items move to the split `test-unseen-group` (held-out groups x training
    questions); matching validation items are dropped (counted, logged), so that nothing fitted or
    selected sees the held-out groups; test splits keep them (the groups on unseen questions or countries).
    ConfigError if the holdout is malformed or matches no training item.
    """
    if not isinstance(holdout, dict) or not holdout:
        raise ConfigError(f"holdout_groups must map attribute labels to values, got {holdout!r}")
    if not train_key:
        raise ConfigError("holdout_groups needs a training split (train_split) to hold groups out of")
    conditions = {str(k): {str(v) for v in (vals if isinstance(vals, list) else [vals])}
                  for k, vals in holdout.items() if k != "countries"}
    countries = holdout.get("countries")
    country_set = None if countries is None else {country_key(str(c)) for c in countries}

    def held(item: SurveyItem) -> bool:
        attrs = dict(item.attributes)
        return (bool(item.attributes) and all(attrs.get(k) in vals for k, vals in conditions.items())
                and (country_set is None or country_key(item.country) in country_set))

    out = dict(splits)
    moved = [it for it in splits[train_key] if held(it)]
    if not moved:
        present = sorted({f"{k}: {v}" for it in splits[train_key] for k, v in it.attributes})
        raise ConfigError(f"holdout_groups {holdout} matches no training item; attribute values present: "
                          f"{present or 'none (the items have no subgroup attributes)'}")
    out[train_key] = [it for it in splits[train_key] if not held(it)]
    out[HELDOUT_GROUP_SPLIT] = moved
    if val_key and val_key in splits:
        out[val_key] = [it for it in splits[val_key] if not held(it)]
        log.info("holdout_groups %s: %d validation items of the held-out groups dropped", holdout,
                 len(splits[val_key]) - len(out[val_key]))
    log.info("holdout_groups %s: %d training items moved to %s", holdout, len(moved), HELDOUT_GROUP_SPLIT)
    return out


def item_cap(limit, key: str) -> int | None:
    """The item cap of split `key`: a per-split mapping's entry (none = no cap) or the one cap for all."""
    return limit.get(key) if isinstance(limit, dict) else limit


def subset(items: list[SurveyItem], n: int | None, seed: int, split: str) -> list[SurveyItem]:
    """A deterministic seeded choice of n items (all when n is None or larger), in their original order."""
    if n is None or len(items) <= n:
        return items
    ranked = sorted(range(len(items)), key=lambda i: stable_seed(seed, "subset", split, *items[i].key))
    keep = set(ranked[:n])
    return [it for i, it in enumerate(items) if i in keep]


def _translate(cfg: dict, splits: dict[str, list[SurveyItem]]) -> tuple[dict[str, list[SurveyItem]], dict]:
    """Each WVS split in cfg.language: the language's item files first, the translated questionnaire next;
    an item with neither is skipped and counted, never kept in English."""
    from survey_sim.data import sources
    from survey_sim.data.sources.wvs_raw import read_questionnaire

    language, root, files = cfg["language"], Path(cfg["root"]), cfg.get("files") or {}
    lang_items = [it for f in _files(files.get("translations"))
                  for it in sources.load_processed(root / f, language=language).items]
    questionnaire = _files(files.get("translation_questionnaire"))
    entries = {q["id"]: q for q in read_questionnaire(root / questionnaire[0], language)[0]} if questionnaire else {}
    out, reports = {}, {}
    for key, items in splits.items():
        have = {(country_key(it.group), it.question_id) for it in lang_items}
        todo = [it for it in items if (country_key(it.group), it.question_id) not in have]
        translated, reasons = translate_items(todo, entries, language)
        out[key], report = select_language(items, lang_items + translated, language)
        report["reasons"] = dict(reasons)
        reports[key] = report
        if report["skipped"]:
            log.warning("split %s: %d of %d items have no %s translation and were skipped (%s)", key,
                        report["skipped"], report["requested"], language, dict(reasons))
    return out, reports


def hold_out_dev(splits: dict[str, list[SurveyItem]]) -> None:
    """Remove from the training split every item whose (country, question) the dev split holds, in place.

    The dev split (e.g. six C1 countries on the Q1 questions) lies inside the training split's countries and
    questions; held out, it measures generalisation to new countries without touching a test split.
    """
    if not splits.get("dev") or "train" not in splits:
        return
    held = {(country_key(it.group), it.question_id) for it in splits["dev"]}
    before = len(splits["train"])
    splits["train"] = [it for it in splits["train"] if (country_key(it.group), it.question_id) not in held]
    log.info("dev split: %d items of %d countries held out of the training split (%d -> %d items)",
             before - len(splits["train"]), len({k[0] for k in held}), before, len(splits["train"]))


def load_splits(data_cfg, *, seed: int = 0, max_items=None) -> dict[str, list[SurveyItem]]:
    """Items per split: {"train": [...], "val": [...], "dev": [...], <test split>: [...]}, item.split set to
    the key; the dev split's items are taken out of the training split. Capped splits are a subset drawn with
    `seed`; the cap is the data config's max_items_per_split, or when that is null the run's `max_items`.

    Raises ConfigError for an unknown split name (listing the valid ones), a missing data folder or file,
    or a split that is empty after filtering (naming the split and its filters).
    """
    cfg = validate_data_config(data_cfg)
    requested = requested_splits(cfg)
    limit = cfg.get("max_items_per_split")
    if limit is None:
        _check_item_caps(max_items, requested, "run config", field="max_items")
        limit = max_items
    language = cfg.get("language", "en")
    filters: dict[str, str] = {}
    if cfg["source"] == "demo":
        built = demo.make_demo_survey(**(cfg.get("demo") or {}))
        if demo.DEV_SPLIT in requested.values() and demo.DEV_SPLIT not in built:
            raise ConfigError(f"data config {cfg.get('name')!r}: the demo survey's dev split needs "
                              f"data.demo.n_dev_countries > 0")
        raw = {key: built[name] for key, name in requested.items()}
        filters = {key: f"split {name!r} of the synthetic demo survey" for key, name in requested.items()}
    else:
        registry = Registry.from_config(cfg["registry"])
        specs = {key: registry.splits[name] for key, name in requested.items()}
        raw = {}
        for survey in SURVEYS:
            wanted = {k: s for k, s in specs.items() if s.survey == survey}
            if not wanted:
                continue
            pool, processed = _load_source(cfg, survey)
            for key, spec in wanted.items():
                raw[key] = assign(spec, pool, check_data_type=processed)
                filters[key] = spec.describe()
        if language != "en":
            wvs = {k: v for k, v in raw.items() if specs[k].survey == "wvs"}
            translated, reports = _translate(cfg, wvs)
            raw.update(translated)
            for key, rep in reports.items():
                filters[key] += f", in {language} ({rep['skipped']} items without translation skipped)"
        raw = {k: with_wvs_scales(v, f"split {k}") if specs[k].survey == "wvs" else v for k, v in raw.items()}
    if cfg.get("holdout_groups"):
        raw = hold_out_groups(raw, cfg["holdout_groups"], requested.get("train") and "train",
                              requested.get("val") and "val")
        filters[HELDOUT_GROUP_SPLIT] = f"training items of the held-out groups {cfg['holdout_groups']}"
    hold_out_dev(raw)
    out = {}
    for key, items in raw.items():
        if not items:
            raise ConfigError(f"data config {cfg.get('name')!r}: split {key!r} is empty after filtering: "
                              f"{filters[key]}")
        chosen = subset(items, item_cap(limit, key), seed, key)
        out[key] = [it if it.split == key else it.with_(split=key) for it in chosen]
        log.info("split %s: %d items", key, len(out[key]))
    return out
