"""`load_splits`: a data config's items, loaded from its source and assigned to the registry's splits.

A data config names its source, files, language and splits; the registry (`survey_sim.data.registry`) says
which (country, question) pairs make up each split. Items are assigned to splits by the registry alone, so the
paper's processed files and a raw WVS-7 build give the same splits; when reading processed files the assignment
is checked against each record's `data_type`.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from survey_sim.data import demo
from survey_sim.data.data_config import (
    GOQA_ROWS,
    check_item_caps,
    file_list,
    item_cap,
    requested_splits,
    validate_data_config,
)
from survey_sim.data.holdouts import HELDOUT_GROUP_SPLIT, hold_out_dev, hold_out_groups
from survey_sim.data.item import SurveyItem
from survey_sim.data.registry import SURVEYS, Registry, SplitSpec
from survey_sim.data.scales import with_wvs_scales
from survey_sim.data.sources.wvs_raw import MIN_CELL
from survey_sim.data.subgroups import select_attributes
from survey_sim.data.transforms import country_key, select_language, stable_seed, translate_items
from survey_sim.errors import ConfigError

log = logging.getLogger(__name__)


def _load_source(cfg: dict, survey: str) -> tuple[list[SurveyItem], bool]:
    """All items of one survey, and whether they come from processed files (with data_type to check)."""
    from survey_sim.data import sources

    root = Path(cfg["root"])
    files = cfg.get("files") or {}
    if survey == "pew":
        path = file_list(files.get("pew"))
        if cfg.get("pew_source", "processed") == "goqa":
            results = [sources.load_goqa(root / path[0] if path else None,
                                         source=GOQA_ROWS[cfg.get("goqa_rows", "pew")])]
        else:
            results = [sources.load_processed(root / path[0], language="en")]
    elif cfg["source"] == "processed":
        results = [sources.load_processed(root / f) for f in file_list(files["processed"])]
    else:  # every country and question: the registry chooses (a set may list countries the file lacks)
        results = [sources.build_wvs_items(
            root / file_list(files["raw"])[0], root / file_list(files["questionnaire"])[0],
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
    lang_items = [it for f in file_list(files.get("translations"))
                  for it in sources.load_processed(root / f, language=language).items]
    questionnaire = file_list(files.get("translation_questionnaire"))
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
        check_item_caps(max_items, requested, "run config", field="max_items")
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
