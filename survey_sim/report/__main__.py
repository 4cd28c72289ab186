"""`python -m survey_sim.report RUN_OR_MULTIRUN_FOLDER... [--out DIR] [--splits ...] [--bootstrap 1000] [--cluster question] [--diff ROW_A ROW_B]`."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from survey_sim.errors import SurveySimError
from survey_sim.evaluation.intervals import CLUSTERINGS
from survey_sim.evaluation.metrics import REPORTED_METRICS
from survey_sim.report.build import build_report


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m survey_sim.report", description=__doc__.split("\n")[0].strip("`"))
    p.add_argument("paths", nargs="+", help="run folders or folders holding them (searched recursively)")
    p.add_argument("--out", help="output folder (default: PATH/report for one PATH, else ./report)")
    p.add_argument("--splits", nargs="+", help="table columns (default: every evaluated split but train/val)")
    p.add_argument("--metrics", nargs="+", choices=list(REPORTED_METRICS), help="tables to build (default: all)")
    p.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples for the 95%% CI (0: none)")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    p.add_argument("--cluster", choices=list(CLUSTERINGS), default="question",
                   help="what the bootstrap resamples: items, questions (default), or questions and countries")
    p.add_argument("--diff", nargs=2, action="append", metavar=("ROW_A", "ROW_B"),
                   help="add the paired difference ROW_A minus ROW_B (table row labels) per split; repeatable")
    p.add_argument("--items", nargs="+", metavar="[SPLIT:]GROUP:QID",
                   help="items to draw human vs predicted distributions for (default: 3 best and 3 worst)")
    p.add_argument("--paper-numbers", help="YAML of published reference numbers (default: the shipped file)")
    p.add_argument("--no-plots", action="store_true", help="skip the figures")
    p.add_argument("--wandb", action="store_true", help="also log results.csv as a wandb.Table (offline mode)")
    p.add_argument("--wandb-project", default="survey-sim")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    out = Path(args.out) if args.out else (Path(args.paths[0]) / "report" if len(args.paths) == 1
                                           else Path("report"))
    try:
        report = build_report(args.paths, out, splits=args.splits, metrics=args.metrics, n_boot=args.bootstrap,
                              seed=args.seed, items=args.items, paper_numbers=args.paper_numbers,
                              clustering=args.cluster, differences=[tuple(d) for d in args.diff or []],
                              wandb_project=args.wandb_project if args.wandb else None, plots=not args.no_plots)
    except SurveySimError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for s in report.skipped:
        print(f"skipped {s.path}: {s.reason}")
    print(f"{len(report.runs)} complete run(s), {len(report.skipped)} skipped; report: {out / 'report.md'}")
    return 0 if report.runs else 1


if __name__ == "__main__":
    sys.exit(main())
