"""Build a report: collect the runs under some folders and write report.md, tables.tex, results.csv and plots/."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from survey_sim.errors import ConfigError
from survey_sim.evaluation.intervals import CLUSTERINGS, Interval
from survey_sim.evaluation.metrics import REPORTED_METRICS
from survey_sim.io import atomic_write_text
from survey_sim.report.collect import Run, SkippedRun, collect_runs, group_runs
from survey_sim.report.differences import best_baseline_differences, group_by_label, paired_differences
from survey_sim.report.markdown import report_markdown
from survey_sim.report.paper import load_paper_numbers
from survey_sim.report.plots import ItemKey, find_items, write_plots
from survey_sim.report.render import to_latex
from survey_sim.report.tables import Table, build_table, default_splits, ordered_splits, results_frame
from survey_sim.report.wandb_log import log_to_wandb


@dataclass
class Report:
    """What a report holds: its runs, the skipped folders, the splits shown, tables, comparisons, files."""

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
    unknown = [m for m in metrics or [] if m not in REPORTED_METRICS]
    if unknown:
        raise ConfigError(f"unknown table metric(s) {unknown}; choose from {list(REPORTED_METRICS)}")
    item_keys = [parse_item(s) for s in items] if items else None
    runs, skipped = collect_runs(paths)
    # by default every table metric that some run has (letter mass: simulator runs only)
    metrics = list(metrics or [m for m in REPORTED_METRICS if any(m in r.predictions for r in runs)])
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
    report.files.append(atomic_write_text(out / "report.md", report_markdown(report, list(map(str, paths)), groups,
                                                                             n_boot, clustering)))
    return report
