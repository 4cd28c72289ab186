"""Collect run folders into the paper's tables, a tidy CSV and figures: `python -m survey_sim.report RUNS...`."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from survey_sim.errors import ConfigError
from survey_sim.evaluation.intervals import CLUSTERINGS, Interval
from survey_sim.io import atomic_write_text, slug
from survey_sim.report.collect import Run, RunGroup, SkippedRun, collect_runs, group_runs
from survey_sim.report.plots import (
    ItemKey,
    choose_items,
    diversity_points,
    find_items,
    plot_diversity,
    plot_group_differences,
    plot_items,
    plot_loss_curves,
    plot_per_country,
    plot_validation_curves,
    save_figure,
)
from survey_sim.report.tables import (
    CLUSTERING_WORDS,
    TABLE_METRICS,
    Table,
    best_baseline_differences,
    build_table,
    default_splits,
    group_by_label,
    load_paper_numbers,
    ordered_splits,
    paired_differences,
    results_frame,
    table_frame,
    to_latex,
    to_markdown,
)

log = logging.getLogger(__name__)


@dataclass
class Report:
    out: Path
    runs: list[Run]
    skipped: list[SkippedRun]
    splits: list[str]
    tables: dict[str, Table] = field(default_factory=dict)
    files: list[Path] = field(default_factory=list)
    #: (row a, row b) -> metric -> split -> mean per-item difference a - b with its clustered interval
    differences: dict[tuple[str, str], dict[str, dict[str, Interval]]] = field(default_factory=dict)
    # simulator row -> split -> (the better of uniform and prior there, the row minus it in 1-JSD)
    against_best: dict[str, dict[str, tuple[str, Interval]]] = field(default_factory=dict)


def parse_item(spec: str) -> ItemKey:
    """'SPLIT:GROUP:QUESTION_ID' or 'GROUP:QUESTION_ID' (any split) as an item key."""
    parts = spec.rsplit(":", 2)
    if len(parts) == 2:
        parts = ["", *parts]
    if len(parts) != 3 or not parts[1] or not parts[2]:
        raise ConfigError(f"item {spec!r}: expected SPLIT:GROUP:QUESTION_ID or GROUP:QUESTION_ID")
    return parts[0], parts[1], parts[2]


def select_splits(runs: list[Run], requested: list[str] | None) -> list[str]:
    """The requested splits (each must occur in some run), else every test split present (no train/val)."""
    present = {s for r in runs for s in r.splits}
    if requested:
        unknown = [s for s in requested if s not in present]
        if unknown:
            raise ConfigError(f"split(s) {unknown} not in any run; available: {ordered_splits(present)}")
        return list(requested)
    return [s for s in default_splits(runs) if s != "val"] or default_splits(runs)


def write_plots(groups: list[RunGroup], runs: list[Run], splits: list[str], plot_dir: Path,
                items: list[ItemKey] | None = None) -> list[Path]:
    """Every report figure as a PNG under `plot_dir`; returns the files written."""
    files = []
    for split in splits:
        name = slug(split)
        files.append(save_figure(plot_per_country(groups, split, "jsd"), plot_dir / f"per_country_jsd_{name}.png"))
        files.append(save_figure(plot_per_country(groups, split, "accuracy"),
                                 plot_dir / f"accuracy_per_country_{name}.png"))
        if any(len(diversity_points(g, split)) for g in groups):
            files.append(save_figure(plot_diversity(groups, split), plot_dir / f"diversity_{name}.png"))
        differences = plot_group_differences(groups, split)
        if differences is not None:
            files.append(save_figure(differences, plot_dir / f"group_differences_{name}.png"))
    loss = plot_loss_curves(runs)
    if loss is not None:
        files.append(save_figure(loss, plot_dir / "loss_curves.png"))
    validation = plot_validation_curves(runs)
    if validation is not None:
        files.append(save_figure(validation, plot_dir / "validation_curves.png"))
    for i, group in enumerate(groups):
        fig = plot_items(group, items or choose_items(group, 3, splits))
        if fig is not None:
            files.append(save_figure(fig, plot_dir / f"items_{i:02d}_{slug(group.label)}.png"))
    return files


def log_to_wandb(frame, out: Path, project: str) -> None:
    """Log the tidy results as a wandb.Table in an offline W&B run under `out`."""
    try:
        import wandb
    except ImportError as exc:
        raise ConfigError("--wandb needs the wandb package: pip install wandb") from exc
    run = wandb.init(project=project, mode="offline", dir=str(out), job_type="report")
    run.log({"results": wandb.Table(dataframe=frame.astype(object).where(frame.notna(), None))})
    run.finish()


def _signed(ci: Interval) -> str:
    text = f"{ci.value:+.3f}"
    return text + (f" [{ci.low:+.3f}, {ci.high:+.3f}]" if ci.low is not None else "")


def differences_markdown(report: Report) -> list[str]:
    """A section per compared pair of rows: a line per metric, a cell per split (difference [interval])."""
    lines = []
    for (a, b), by_metric in report.differences.items():
        lines += [f"## Paired difference: {a} minus {b}", "",
                  "Mean per-item difference over the items both rows evaluated, interval clustered as above.", "",
                  "| metric | " + " | ".join(report.splits) + " |", "|---|" + "---|" * len(report.splits)]
        for metric, by_split in by_metric.items():
            cells = [_signed(by_split[s]) if s in by_split else "–" for s in report.splits]
            lines.append(f"| {TABLE_METRICS[metric][0]} | " + " | ".join(cells) + " |")
        lines.append("")
    return lines


def best_baseline_markdown(report: Report) -> list[str]:
    """The best trivial baseline per split (uniform or prior) and each simulator row's paired 1-JSD difference
    against it."""
    if not report.against_best:
        return []
    first = next(iter(report.against_best.values()))
    lines = ["## Against the best trivial baseline (1-JSD)", "",
             ("Per split the better of `uniform` and `prior`; each simulator row minus it, per item over the same "
              "items, with its clustered interval (as above)."), "",
             "| row | " + " | ".join(report.splits) + " |", "|---|" + "---|" * len(report.splits),
             "| best trivial baseline | " + " | ".join(first[s][0] if s in first else "–" for s in report.splits)
             + " |"]
    for label, by_split in report.against_best.items():
        cells = [_signed(by_split[s][1]) if s in by_split else "–" for s in report.splits]
        lines.append(f"| {label} minus it | " + " | ".join(cells) + " |")
    return [*lines, ""]


def _markdown(report: Report, inputs: list[str], groups: list[RunGroup], n_boot: int, clustering: str) -> str:
    lines = ["# survey-sim report", "",
             (f"Inputs: {', '.join(f'`{p}`' for p in inputs)}. Complete runs: {len(report.runs)}; "
              f"skipped (incomplete): {len(report.skipped)}."), ""]
    if report.skipped:
        lines += ["## Skipped runs", ""] + [f"- `{s.path}`: {s.reason}" for s in report.skipped] + [""]
    if not report.runs:
        return "\n".join(lines + ["No complete runs found.", ""])
    lines += ["## Runs", "", "| row | runs | seeds | folders |", "|---|---|---|---|"]
    for g in groups:
        seeds = ", ".join(str(r.run.get("seed")) for r in g.runs)
        lines.append(f"| {g.label} | {len(g.runs)} | {seeds} | {'<br>'.join(f'`{r.path}`' for r in g.runs)} |")
    ci = (f"95% bootstrap interval resampling {CLUSTERING_WORDS[clustering]} ({n_boot} resamples) in brackets"
          if n_boot > 0 else "no intervals (--bootstrap 0)")
    lines += ["", (f"Cells: mean over items; {ci}; runs of one row (seeds) are averaged per item first. "
                   "Avg: unweighted mean over the splits shown, only for rows that have all of them. "
                   "Best value per column in bold."), ""]
    for table in report.tables.values():
        better = {True: "higher", False: "lower", None: "closer to 0"}[table.higher_is_better]
        lines += [f"## {table.title} ({better} is better)", "", to_markdown(table), ""]
    lines += _subgroup_section(groups, report.splits)
    lines += best_baseline_markdown(report)
    lines += differences_markdown(report)
    plots = [f for f in report.files if f.suffix == ".png"]
    if plots:
        lines += ["## Figures", ""] + [f"![{f.stem}](plots/{f.name})" for f in plots] + [""]
    return "\n".join(lines)


def _subgroup_section(groups: list[RunGroup], splits: list[str]) -> list[str]:
    """Markdown tables of 1-JSD per attribute value and of the between-group differences, per split with
    subgroup items (none otherwise)."""
    from survey_sim.evaluation.group_metrics import group_metrics

    lines = []
    for split in splits:
        blocks = {}
        for g in groups:
            items = g.items()
            items = items[items["split"] == split]
            if "attributes" in items and len(items):
                block = group_metrics(items.to_dict("records"))
                if block:
                    blocks[g.label] = block
        if not blocks:
            continue
        values = sorted({v for b in blocks.values() for v in b["by_value"]})
        attributes = sorted({a for b in blocks.values() for a in b["differences"]})
        lines += [f"## Subgroups: {split}", "", "1-JSD per attribute value (mean over items):", "",
                  "| | " + " | ".join(values) + " |", "|---|" + "---|" * len(values)]
        for label, b in blocks.items():
            cells = [f"{b['by_value'][v]['jsd']:.3f}" if v in b["by_value"] else "–" for v in values]
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
        lines += ["", ("Differences between groups that differ in one attribute (same country, question and other "
                       "attributes): correlation r of model and human differences in mean answer position, "
                       "their mean absolute error, and the mean total variation between the groups' "
                       "distributions, human vs model (a model blind to the group has 0)."), "",
                  "| | " + " | ".join(f"{a}: r | {a}: MAE | {a}: TV human/model" for a in attributes) + " |",
                  "|---|" + "---|" * (3 * len(attributes))]
        for label, b in blocks.items():
            cells = []
            for a in attributes:
                d = b["differences"].get(a)
                if d is None:
                    cells += ["–"] * 3
                else:
                    cells += ["–" if d["corr"] is None else f"{d['corr']:.2f}", f"{d['mae']:.3f}",
                              f"{d['human_tv']:.3f} / {d['model_tv']:.3f}"]
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
        lines.append("")
    return lines


def build_report(paths: list[str | os.PathLike], out: str | os.PathLike, splits: list[str] | None = None,
                 metrics: list[str] | None = None, n_boot: int = 1000, seed: int = 0,
                 items: list[str] | None = None, paper_numbers: str | os.PathLike | None = None,
                 wandb_project: str | None = None, plots: bool = True, clustering: str = "question",
                 differences: list[tuple[str, str]] | None = None) -> Report:
    """Collect the runs under `paths` and write report.md, tables.tex, results.csv and plots/ into `out`.

    Intervals resample `clustering` units (survey_sim.evaluation.intervals.CLUSTERINGS). `differences`: pairs of row
    labels (a, b); for each, the report gets a + b's paired per-item difference per split and metric."""
    out = Path(out)
    if clustering not in CLUSTERINGS:
        raise ConfigError(f"unknown clustering {clustering!r}; choose from {list(CLUSTERINGS)}")
    unknown = [m for m in metrics or [] if m not in TABLE_METRICS]
    if unknown:
        raise ConfigError(f"unknown table metric(s) {unknown}; choose from {list(TABLE_METRICS)}")
    item_keys = [parse_item(s) for s in items] if items else None
    runs, skipped = collect_runs(paths)
    # by default every table metric that some run has (letter mass: simulator runs only)
    metrics = list(metrics or [m for m in TABLE_METRICS if any(m in r.predictions for r in runs)])
    report = Report(out, runs, skipped, select_splits(runs, splits) if runs else [])
    groups = group_runs(runs)
    if runs:
        if item_keys:
            missing = [k for k in item_keys if all(find_items(g, [k]).empty for g in groups)]
            if missing:
                raise ConfigError(f"--items {[':'.join(k).lstrip(':') for k in missing]} match no item of any run")
        paper = load_paper_numbers(paper_numbers)
        report.tables = {m: build_table(groups, m, report.splits, n_boot, seed, paper, clustering) for m in metrics}
        report.against_best = best_baseline_differences(groups, "jsd", report.splits, clustering, n_boot, seed)
        for a, b in differences or []:
            rows = group_by_label(groups, a), group_by_label(groups, b)
            report.differences[(a, b)] = {m: paired_differences(*rows, m, report.splits, clustering, n_boot, seed)
                                          for m in metrics}
        frame = results_frame(runs, n_boot, seed, clustering)
        report.files.append(atomic_write_text(out / "results.csv", frame.to_csv(index=False)))
        tex = [f"% {t.title}\n{to_latex(t)}\n" for t in report.tables.values()]
        report.files.append(atomic_write_text(out / "tables.tex", "\n".join(tex)))
        if plots:
            report.files += write_plots(groups, runs, report.splits, out / "plots", item_keys)
        if wandb_project:
            log_to_wandb(frame, out, wandb_project)
    report.files.append(atomic_write_text(out / "report.md", _markdown(report, list(map(str, paths)), groups,
                                                                       n_boot, clustering)))
    return report


__all__ = [
    "Report",
    "Run",
    "RunGroup",
    "SkippedRun",
    "Table",
    "build_report",
    "build_table",
    "choose_items",
    "collect_runs",
    "differences_markdown",
    "diversity_points",
    "group_runs",
    "load_paper_numbers",
    "plot_diversity",
    "plot_group_differences",
    "plot_items",
    "plot_loss_curves",
    "plot_per_country",
    "plot_validation_curves",
    "results_frame",
    "save_figure",
    "select_splits",
    "table_frame",
    "to_latex",
    "to_markdown",
    "write_plots",
]
