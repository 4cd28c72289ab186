"""report.md: the report as a markdown document."""

from __future__ import annotations

from typing import TYPE_CHECKING

from survey_sim.baselines import TRIVIAL_BASELINES
from survey_sim.evaluation.intervals import Interval
from survey_sim.evaluation.metrics import METRIC_REGISTRY
from survey_sim.report.collect import Run, RunGroup
from survey_sim.report.render import CLUSTERING_WORDS, to_markdown

if TYPE_CHECKING:
    from survey_sim.report.build import Report

JSD = METRIC_REGISTRY["jsd"].label


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
            lines.append(f"| {METRIC_REGISTRY[metric].title} | " + " | ".join(cells) + " |")
        lines.append("")
    return lines


def best_baseline_markdown(report: Report) -> list[str]:
    """The best trivial baseline per split (uniform or prior) and each simulator row's paired 1-JSD difference
    against it."""
    if not report.against_best:
        return []
    first = next(iter(report.against_best.values()))
    trivial = " and ".join(f"`{b}`" for b in TRIVIAL_BASELINES)
    lines = [f"## Against the best trivial baseline ({JSD})", "",
             (f"Per split the better of {trivial}; each simulator row minus it, per item over the same "
              "items, with its clustered interval (as above)."), "",
             "| row | " + " | ".join(report.splits) + " |", "|---|" + "---|" * len(report.splits),
             "| best trivial baseline | " + " | ".join(first[s][0] if s in first else "–" for s in report.splits)
             + " |"]
    for label, by_split in report.against_best.items():
        cells = [_signed(by_split[s][1]) if s in by_split else "–" for s in report.splits]
        lines.append(f"| {label} minus it | " + " | ".join(cells) + " |")
    return [*lines, ""]


def anchor_markdown(runs: list[Run]) -> list[str]:
    """The fitted weights of each anchored run, per item group, with the cross-validated gain that decided
    whether the model is used (none without anchored runs)."""
    anchored = [r for r in runs if r.anchor.get("fitted")]
    if not anchored:
        return []
    lines = ["## Anchored simulators: fitted weights", "",
             ("Per item group: the split the weights were fitted on, the weights used (model weight 0: the base "
              "alone), the cross-validated KL gain over the base per cluster with its standard error (the model "
              "is used only when the gain exceeds one standard error), and the fit before that check."), "",
             ("| row | seed | base, rule | group | fit on (items) | model weight | base weight | T | CV gain +- SE "
             "| model used | fit without the check |"), "|---|---|---|---|---|---|---|---|---|---|---|"]
    for run in anchored:
        a = run.anchor
        for group, f in sorted(a["fitted"].items()):
            raw = f.get("fit_without_cv") or {}
            lines.append(
                f"| {run.label} | {run.run.get('seed')} | {a.get('base')}, {a.get('rule')} | {group} | "
                f"{f.get('split')} ({f.get('n_items')}) | {f['model_weight']:.3f} | {f['base_weight']:.3f} | "
                f"{f['temperature']:.3f} | {f['cv_gain_per_cluster']:+.4f} +- {f['cv_gain_se']:.4f} | "
                f"{'yes' if f.get('model_used') else 'no'} | "
                + (", ".join(f"{k} {v:.3f}" for k, v in raw.items()) or "-") + " |")
        for group, p in sorted((a.get("params") or {}).items()):
            if group not in a["fitted"]:  # left out of anchor.fit_groups: the parameters it was trained with
                lines.append(f"| {run.label} | {run.run.get('seed')} | {a.get('base')}, {a.get('rule')} | {group} | "
                             f"not fitted | {p['model_weight']:.3f} | {p['base_weight']:.3f} | "
                             f"{p['temperature']:.3f} | - | {'yes' if p['model_weight'] else 'no'} | - |")
    return lines + [""]


def report_markdown(report: Report, inputs: list[str], groups: list[RunGroup], n_boot: int, clustering: str) -> str:
    """report.md: the inputs, skipped runs, the rows, a section per table, subgroups, comparisons, figures."""
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
    lines += anchor_markdown(report.runs)
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
        lines += [f"## Subgroups: {split}", "", f"{JSD} per attribute value (mean over items):", "",
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
