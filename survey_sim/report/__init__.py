"""Collect run folders into the paper's tables, a tidy CSV and figures: `python -m survey_sim.report RUNS...`."""

from survey_sim.report.build import Report, build_report, select_splits
from survey_sim.report.collect import Run, RunGroup, SkippedRun, collect_runs, group_runs
from survey_sim.report.markdown import differences_markdown
from survey_sim.report.paper import load_paper_numbers
from survey_sim.report.plots import (
    choose_items,
    diversity_points,
    plot_diversity,
    plot_group_differences,
    plot_items,
    plot_loss_curves,
    plot_per_country,
    plot_validation_curves,
    save_figure,
    write_plots,
)
from survey_sim.report.render import table_frame, to_latex, to_markdown
from survey_sim.report.tables import Table, build_table, results_frame

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
