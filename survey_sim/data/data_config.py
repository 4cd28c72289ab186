"""What a data config (conf/data/*.yaml) may say: its source, files, language, splits and item caps, checked
without reading any file; the files it reads."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from survey_sim.config import plain
from survey_sim.data import demo
from survey_sim.data.registry import Registry
from survey_sim.errors import ConfigError
from survey_sim.modeling.prompts import LANGUAGES
from survey_sim.paths import data_root

WVS_SOURCES = ("processed", "wvs_raw", "demo")
PEW_SOURCES = ("processed", "goqa")
#: data.goqa_rows: which GlobalOpinionQA rows pew_source=goqa loads (the table's `source` column).
GOQA_ROWS = {"pew": "pew", "wvs": "wvs", "all": None}


def file_list(value) -> list[str]:
    """A `files` entry (none, one path or a list of paths) as a list of paths."""
    if value in (None, ""):
        return []
    return [str(value)] if isinstance(value, (str, Path)) else [str(v) for v in value]


#: Split roles a data config names with `<role>_split`; `dev` (held-out training countries on the training
#: questions) is taken out of the training split (see `hold_out_dev`).
ROLES = ("train", "val", "dev")


def split_names(data_cfg) -> list[str]:
    """The keys `load_splits` returns: "train", "val" and "dev" when configured, then the test split names."""
    cfg = plain(data_cfg)
    names = [key for key in ROLES if cfg.get(f"{key}_split")]
    return names + [t for t in (cfg.get("test_splits") or []) if t not in names]


def requested_splits(cfg: dict) -> dict[str, str]:
    """Returned split key -> registry (or demo) split name."""
    out = {key: cfg[f"{key}_split"] for key in ROLES if cfg.get(f"{key}_split")}
    out.update({t: t for t in (cfg.get("test_splits") or []) if t not in out})
    return out


def validate_data_config(data_cfg) -> dict:
    """Cheap checks (no file is read, only its existence): returns the resolved config as a plain dict."""
    cfg = plain(data_cfg)
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
    check_item_caps(cfg.get("max_items_per_split"), requested, where)

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
            out += file_list(files.get("processed"))
            if not out:
                raise ConfigError(f"{where}: source 'processed' needs files.processed (item JSON files)")
        else:
            raw, questionnaire = file_list(files.get("raw")), file_list(files.get("questionnaire"))
            if not raw or not questionnaire:
                raise ConfigError(f"{where}: source 'wvs_raw' needs files.raw (the WVS-7 respondent file) and "
                                  "files.questionnaire (questionnaire_en.json)")
            out += raw + questionnaire
        if cfg.get("language", "en") != "en":
            out += file_list(files.get("translations")) + file_list(files.get("translation_questionnaire"))
    if "pew" in surveys:
        pew = file_list(files.get("pew"))
        if not pew and cfg.get("pew_source", "processed") == "processed":
            raise ConfigError(f"{where}: the Pew splits need files.pew (the Pew item JSON file)")
        out += pew
    return out


def data_files(data_cfg) -> list[Path]:
    """Absolute paths of every file the config reads (for run_info hashes); empty for the demo survey."""
    cfg = plain(data_cfg)
    if cfg.get("source") == "demo":
        return []
    registry = Registry.from_config(cfg.get("registry") or {})
    surveys = {registry.splits[s].survey for s in requested_splits(cfg).values() if s in registry.splits}
    root = data_root(cfg.get("root"))
    return [root / f for f in _relative_files(cfg, surveys)]


def check_item_caps(limit, requested: dict[str, str], where: str, field: str = "max_items_per_split") -> None:
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


def item_cap(limit, key: str) -> int | None:
    """The item cap of split `key`: a per-split mapping's entry (none = no cap) or the one cap for all."""
    return limit.get(key) if isinstance(limit, dict) else limit
