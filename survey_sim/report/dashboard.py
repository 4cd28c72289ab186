"""W&B report for the paper's ablations: 1-JSD per split grouped by model x method, loss, option shuffling and
permutations, language, the country-swap control, and the fidelity of every method against the baselines.

    python -m survey_sim.report.dashboard --project survey-sim --entity ME --sweep paper_table4-2026-11-30_15-52-00
    python -m survey_sim.report.dashboard --project survey-sim --sweep multirun/2026-11-30/15-52-00   # a sweep folder

`--sweep` names the runs' W&B group, or a sweep folder whose offline runs give the group and the splits.
Saving the report needs a W&B login; offline (WANDB_MODE=offline or --offline) the report's specification is
written as JSON, next to the sweep (`<sweep folder>/dashboard.json`) or to --out. Needs `wandb-workspaces`
(`pip install 'survey-sim[dashboard]'`).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from survey_sim.errors import ConfigError, SurveySimError
from survey_sim.evaluation.metrics import FIDELITY_METRICS, METRIC_REGISTRY, SELECTION_METRIC
from survey_sim.io import atomic_write_json
from survey_sim.pipeline.tracking import SETTINGS_PREFIX
from survey_sim.report.tables import WVS_SPLITS

#: Report sections: title, the run settings (metrics.json["run"], W&B config `run.<key>`) grouped by, metrics.
JSD = METRIC_REGISTRY["jsd"].label
SECTIONS = (
    (f"{JSD} by model and method", ("model", "method"), ("jsd",)),
    (f"{JSD} by loss", ("loss",), ("jsd",)),
    (f"{JSD} by option shuffling and permutations", ("shuffle", "shuffle_train", "permutations"), ("jsd",)),
    (f"{JSD} by language", ("language",), ("jsd",)),
    (f"{JSD} with and without the country-swap control", ("control",), ("jsd",)),
    ("Fidelity against the baselines", ("method", "control"), FIDELITY_METRICS),
)
SPEC_FILE = "dashboard.json"


def config_key(setting: str) -> str:
    """The runset group-by key of a run setting: the W&B config holds it flat as `run.<setting>`, whose backend
    path ends in `.value` (wandb-workspaces would otherwise read the dots as nesting)."""
    return f"config.{SETTINGS_PREFIX}{setting}.value"


def build_report(project: str, entity: str | None, group: str | None, splits: list[str]):
    """The wandb-workspaces Report: one panel grid per section, one bar plot per split and metric. Its runsets
    select the group's runs (all of the project's without a group)."""
    import wandb_workspaces.reports.v2 as wr
    from wandb_workspaces import expr

    filters = [expr.Metric("Group") == group] if group else []
    blocks = [wr.H1(f"survey-sim ablations{f': {group}' if group else ''}"),
              wr.P("Bars are group means of each run's per-split summary metric (`<split>/jsd` is the "
                   f"paper's {JSD}; higher is better). Read them against the uniform / prior baselines and the "
                   "noise ceiling (~0.977).")]
    for title, settings, metrics in SECTIONS:
        runset = wr.Runset(entity=entity or "", project=project, name=title, filters=filters,
                           groupby=[config_key(s) for s in settings])
        panels = [wr.BarPlot(title=f"{metric} on {split}", metrics=[f"{split}/{metric}"], groupby_aggfunc="mean",
                             groupby_rangefunc="stderr")
                  for metric in metrics for split in splits]
        blocks += [wr.H2(title), wr.PanelGrid(runsets=[runset], panels=panels)]
    kwargs = {"entity": entity} if entity is not None else {}  # None: the logged-in user's default entity
    return wr.Report(project=project, title=f"survey-sim ablations {group or ''}".strip(), blocks=blocks,
                     **kwargs)


def report_spec(report) -> dict:
    """The report as plain JSON: what `Report.save()` would send, in the library's own field names."""
    import pydantic

    return pydantic.TypeAdapter(type(report)).dump_python(report, mode="json")


def read_offline_run(run_dir: Path) -> dict:
    """An offline W&B run folder's name, group, job type, tags, config and summary (read with the wandb CLI's
    `leet inspect`, which parses the run's .wandb log)."""
    def inspect(*flags: str) -> str:
        done = subprocess.run([sys.executable, "-m", "wandb", "leet", "inspect", *flags, str(run_dir)],
                              capture_output=True, text=True, timeout=120, check=False)
        if done.returncode != 0:
            raise SurveySimError(f"cannot read the W&B run {run_dir}: {done.stderr.strip()[-500:]}")
        return done.stdout

    state = json.loads(inspect("--summary", "--json"))
    run_record = next(r["run"] for r in map(json.loads, inspect("--json").splitlines()) if r.get("type") == "run")
    return {"dir": str(run_dir), "name": state.get("name"), "group": run_record.get("run_group"),
            "job_type": run_record.get("job_type"), "tags": state.get("tags") or [],
            "config": state.get("config") or {}, "summary": state.get("summary") or {}}


def offline_runs(folder: Path) -> list[dict]:
    """Every offline W&B run under a sweep (or run) folder."""
    return [read_offline_run(d) for d in sorted(folder.glob("**/wandb/offline-run-*")) if d.is_dir()]


def sweep_from_folder(folder: Path) -> tuple[str | None, list[str]]:
    """The W&B group of a sweep folder's offline runs and the splits their summaries hold."""
    runs = offline_runs(folder)
    if not runs:
        raise ConfigError(f"{folder} holds no offline W&B runs (*/wandb/offline-run-*); run the sweep with "
                          "logger=wandb, or give its W&B group name as --sweep")
    groups = sorted({r["group"] or "" for r in runs})
    if len(groups) > 1:
        raise ConfigError(f"the W&B runs under {folder} belong to {len(groups)} groups ({', '.join(groups)}); "
                          "give one as --sweep")
    splits = sorted({k[: -len("/jsd")] for r in runs for k in r["summary"]
                     if k.endswith("/jsd") and k.count("/") == 1 and k != SELECTION_METRIC})
    return groups[0] or None, splits


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m survey_sim.report.dashboard", description=__doc__.split("\n\n")[0])
    parser.add_argument("--project", required=True, help="W&B project of the runs (logger.project)")
    parser.add_argument("--entity", help="W&B entity (user or team); default: your default entity")
    parser.add_argument("--sweep", help="the runs' W&B group, or a sweep folder holding offline runs")
    parser.add_argument("--splits", nargs="+", help=f"splits to plot (default: the sweep folder's, else "
                                                      f"{' '.join(WVS_SPLITS)})")
    parser.add_argument("--offline", action="store_true", help="write the specification only (also when "
                                                                "WANDB_MODE=offline)")
    parser.add_argument("--out", type=Path, help=f"specification file (default: <sweep folder>/{SPEC_FILE}, "
                                                 f"else ./{SPEC_FILE})")
    args = parser.parse_args(argv)
    offline = args.offline or os.environ.get("WANDB_MODE") in ("offline", "disabled")
    try:
        group, splits = args.sweep, list(args.splits or WVS_SPLITS)
        folder = Path(args.sweep) if args.sweep and Path(args.sweep).is_dir() else None
        if folder is not None:
            group, found = sweep_from_folder(folder)
            splits = list(args.splits or found)
        try:
            report = build_report(args.project, args.entity if args.entity or not offline else "", group, splits)
        except ImportError as e:
            raise SurveySimError(f"the dashboard needs wandb-workspaces ({e}); pip install "
                                 "'survey-sim[dashboard]'") from None
        out = args.out or (folder / SPEC_FILE if folder is not None else Path(SPEC_FILE))
        spec = {"project": args.project, "entity": args.entity, "group": group, "splits": splits,
                "report": report_spec(report)}
        atomic_write_json(out, spec)
        print(f"report specification: {out}")
        if not offline:
            try:
                report.save()
            except Exception as e:  # noqa: BLE001 - the library raises plain Exceptions (no login, no project)
                raise SurveySimError(f"saving the report to W&B failed: {e}") from None
            print(f"report: {report.url}")
    except SurveySimError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
