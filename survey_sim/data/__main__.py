"""Data command line.

  python -m survey_sim.data describe data=wvs_en [data.KEY=VALUE ...]
      items, countries, questions and options per question of every split, with the paper's counts;
  python -m survey_sim.data build-wvs --raw FILE --questionnaire FILE --out DIR [--weighted]
                                    [--group-by sex,age_band] [--min-cell 100] [--min-respondents 0]
      build the paper's item files (DIR/wvs/{train,valid,test}_<lang>.json) from the WVS-7 respondent file;
      with --group-by, one item per (country, subgroup, question) for the attributes named (defined under
      conf/data/attributes/wvs7.yaml, or --attributes FILE).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections import Counter
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from survey_sim.data import demo
from survey_sim.data.data_config import requested_splits, validate_data_config
from survey_sim.data.registry import Registry
from survey_sim.data.splits import assign, load_splits
from survey_sim.errors import ConfigError, SurveySimError
from survey_sim.paths import config_dir

CONFIG_DIR = config_dir()
DEFAULT_REGISTRY = CONFIG_DIR / "data" / "registry" / "paper.yaml"
DEFAULT_ATTRIBUTES = CONFIG_DIR / "data" / "attributes" / "wvs7.yaml"
# data_type of the paper's item files -> file name stem
FILE_OF_DATA_TYPE = {"train": "train", "valid": "valid"}


def compose_data(overrides: list[str]) -> DictConfig:
    """The `data` config group composed from conf/ with overrides like ["data=wvs_en", "data.dev_split=dev"]."""
    from hydra import compose, initialize_config_dir

    if not any(o.split("=", 1)[0].lstrip("+") == "data" for o in overrides):
        names = sorted(p.stem for p in (CONFIG_DIR / "data").glob("*.yaml"))
        raise SystemExit(f"give the data config, e.g. data=wvs_en (available: {', '.join(names)})")
    overrides = [("+" + o if o.startswith("data=") else o) for o in overrides]
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base=None):
        return compose(config_name=None, overrides=overrides).data


def _histogram(counter: Counter) -> str:
    return " ".join(f"{k}:{v}" for k, v in sorted(counter.items()))


def _group_counts(items, indent: int) -> list[str]:
    """For subgroup items: one line per attribute with the items per value, and the number of groups."""
    if not any(it.attributes for it in items):
        return []
    per_value: dict[str, Counter] = {}
    for it in items:
        for label, value in it.attributes:
            per_value.setdefault(label, Counter())[value] += 1
    lines = [f"{'':<{indent}}   {len({it.group for it in items})} groups (country x subgroup)"]
    for label, counts in per_value.items():
        lines.append(f"{'':<{indent}}   items by {label}: " + ", ".join(f"{v} {n}" for v, n in sorted(counts.items())))
    return lines


def describe(data_cfg) -> str:
    """A table of the splits of a data config: items, countries (for registry splits: present / in the
    country set), questions, options per question and the paper's item count (Table 3) with coverage."""
    cfg = validate_data_config(data_cfg)
    splits = load_splits(data_cfg)
    synthetic = cfg["source"] == "demo"
    specs = {} if synthetic else {k: Registry.from_config(cfg["registry"]).splits[n]
                                  for k, n in requested_splits(cfg).items()}
    lines = []
    if synthetic:
        lines.append("SYNTHETIC demo survey: invented countries and questions, not survey data")
    lines.append(f"data {cfg.get('name')}: source {cfg['source']}, language {cfg.get('language', 'en')}"
                 + ("" if synthetic else f", root {cfg['root']}"))
    width = max(9, *(len(k) for k in splits))
    header = (f"{'split':<{width}} {'items':>6} {'countries':>9} {'questions':>9} {'paper':>6} {'coverage':>8}"
              "  options per question (K:questions)")
    lines += [header, "-" * len(header)]
    totals = Counter()
    for key, items in splits.items():
        options = {it.question_id: it.num_options for it in items}
        spec = specs.get(key)
        countries = str(len({it.country for it in items})) + (f"/{len(spec.countries)}" if spec else "")
        paper = spec.paper_items if spec else None
        coverage = f"{100 * len(items) / paper:.1f}%" if paper else "-"
        lines.append(f"{key:<{width}} {len(items):>6} {countries:>9} {len(options):>9} {paper or '-':>6} "
                     f"{coverage:>8}  {_histogram(Counter(options.values()))}")
        lines += _group_counts(items, width)
        totals["items"] += len(items)
    lines.append(f"{len(splits)} splits, {totals['items']} items"
                 + (f" (source {demo.SOURCE})" if synthetic else ""))
    return "\n".join(lines)


def load_attributes(path: str | Path, group_by: list[str]):
    """The attributes named in `group_by` from a YAML mapping {name: {column, label, values | edges}}."""
    from survey_sim.data.subgroups import select_attributes

    try:
        defined = OmegaConf.to_container(OmegaConf.load(path), resolve=False)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read attributes from {path}: {exc}") from None
    if not isinstance(defined, dict):
        raise ConfigError(f"{path}: expected a mapping of attributes (name: {{column, values | edges}})")
    return select_attributes(defined, group_by)


def build_wvs(raw: str, questionnaire: str, out: str, *, weighted: bool = False, min_respondents: int = 0,
              registry_file: str | Path = DEFAULT_REGISTRY, group_by: list[str] = (),
              attributes_file: str | Path = DEFAULT_ATTRIBUTES, min_cell: int = 100) -> dict[str, int]:
    """Build items from the raw WVS-7 file and write them, assigned to the registry's WVS splits, as the
    paper's item files out/wvs/{train,valid,test}_<lang>.json; returns the item count per file. With
    `group_by` (attribute names of `attributes_file`), the items are per (country, subgroup, question)."""
    from survey_sim.data.sources import build_wvs_items, write_processed

    attributes = load_attributes(attributes_file, list(group_by)) if group_by else []
    registry = Registry.from_config(OmegaConf.to_container(OmegaConf.load(registry_file), resolve=True))
    result = build_wvs_items(raw, questionnaire, weighted=weighted, min_respondents=min_respondents,
                             group_by=attributes, min_cell=min_cell)
    if result.skipped:
        print(f"skipped {len(result.skipped)}: " + "; ".join(f"{k}: {why}" for k, why in result.skipped[:20])
              + (" ..." if len(result.skipped) > 20 else ""))
    files: dict[str, list] = {}
    placed = set()
    for spec in registry.splits.values():
        if spec.survey != "wvs" or not spec.data_type:
            continue
        items = assign(spec, result.items)
        placed.update(it.key for it in items)
        stem = FILE_OF_DATA_TYPE.get(spec.data_type, "test")
        files.setdefault(stem, []).extend(it.with_(split=spec.data_type) for it in items)
    language = result.items[0].language if result.items else "en"
    counts = {}
    for stem, items in files.items():
        path = write_processed(items, Path(out) / "wvs" / f"{stem}_{language}.json")
        counts[str(path)] = len(items)
    unplaced = sum(1 for it in result.items if it.key not in placed)
    if unplaced:
        logging.getLogger(__name__).warning("%d built items belong to no split of %s (countries outside the "
                                            "registry's sets)", unplaced, registry.name)
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m survey_sim.data", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p_desc = sub.add_parser("describe", help="counts per split of a data config")
    p_desc.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. data=wvs_en data.root=/data")
    p_build = sub.add_parser("build-wvs", help="build the paper's item files from the WVS-7 respondent file")
    p_build.add_argument("--raw", required=True, help="WVS-7 respondent file (.csv, .dta, .sav, .parquet)")
    p_build.add_argument("--questionnaire", required=True, help="questionnaire JSON (questionnaire_en.json)")
    p_build.add_argument("--out", required=True, help="output data root (files go to OUT/wvs/)")
    p_build.add_argument("--weighted", action="store_true", help="weight answers by W_WEIGHT")
    p_build.add_argument("--min-respondents", type=int, default=0,
                         help="drop countries with fewer respondents (default 0: keep every country, as the paper)")
    p_build.add_argument("--group-by", default="", help="comma-separated attributes, e.g. sex,age_band")
    p_build.add_argument("--attributes", default=str(DEFAULT_ATTRIBUTES),
                         help="YAML mapping of attribute definitions (default: WVS-7's)")
    p_build.add_argument("--min-cell", type=int, default=100,
                         help="subgroup cells and items with fewer respondents are skipped (counted, logged)")
    p_build.add_argument("--registry", default=str(DEFAULT_REGISTRY), help="split registry YAML")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        if args.command == "describe":
            print(describe(compose_data(args.overrides)))
        else:
            group_by = [name.strip() for name in args.group_by.split(",") if name.strip()]
            counts = build_wvs(args.raw, args.questionnaire, args.out, weighted=args.weighted,
                               min_respondents=args.min_respondents, registry_file=args.registry,
                               group_by=group_by, attributes_file=args.attributes, min_cell=args.min_cell)
            for path, n in counts.items():
                print(f"{n:>6} items  {path}")
            print(f"use with: python -m survey_sim.run data=wvs_en data.root={args.out}")
    except SurveySimError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
