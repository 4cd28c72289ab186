"""The plain-text tables a run prints: metrics per split, before and after training, beside the baselines."""

from __future__ import annotations

from collections.abc import Mapping

from survey_sim.evaluation.metrics import METRIC_REGISTRY


def table_columns(split_metrics: Mapping[str, Mapping[str, float]]) -> list[str]:
    """The printed metrics (METRIC_REGISTRY) of p and q, their noise ceilings, then the model's where a split
    has them (letter mass: simulators only)."""
    printed = [m for m in METRIC_REGISTRY.values() if m.printed]
    return ([m.name for m in printed if not m.from_model]
            + [f"ceiling_{m.name}" for m in METRIC_REGISTRY.values() if m.ceiling]
            + [m.name for m in printed if m.from_model and any(m.name in s for s in split_metrics.values())])


def format_table(split_metrics: Mapping[str, Mapping[str, float]]) -> str:
    """A plain-text table of metrics per split; the noise-ceiling columns are followed by a note on the N used."""
    columns = table_columns(split_metrics)
    widths = [max(10, len(c) + 2) for c in columns]
    head = f"{'split':<22}{'n':>6}" + "".join(f"{c:>{w}}" for c, w in zip(columns, widths))
    lines = [head, "-" * len(head)]
    for split, m in split_metrics.items():
        cells = "".join(f"{m[c]:>{w}.4f}" if c in m and m[c] is not None else f"{'-':>{w}}"
                        for c, w in zip(columns, widths))
        lines.append(f"{split:<22}{int(m.get('n_items', 0)):>6}{cells}")
    assumed = {s: m for s, m in split_metrics.items() if m.get("ceiling_n_assumed")}
    if assumed:
        n = next(iter(assumed.values()))["assumed_n"]
        lines.append(f"ceiling: expected score of the true distribution against a sample of each item's N; "
                     f"N={n:,.0f} ASSUMED for {sum(int(m['ceiling_n_assumed']) for m in assumed.values())} "
                     "items without a respondent count")
    return "\n".join(lines)


def format_comparison(before: Mapping[str, Mapping[str, float]], after: Mapping[str, Mapping[str, float]],
                      metric: str = "jsd") -> str:
    """Per split: a metric before and after training, and the change."""
    head = f"{'split':<22}{'before':>10}{'after':>10}{'change':>10}"
    lines = [head, "-" * len(head)]
    for split, m in after.items():
        if split in before:
            b, a = before[split][metric], m[metric]
            lines.append(f"{split:<22}{b:>10.4f}{a:>10.4f}{a - b:>+10.4f}")
    return "\n".join(lines)


def format_baselines(model: Mapping[str, Mapping[str, float]], baselines: Mapping[str, Mapping[str, Mapping]],
                     metric: str = "jsd") -> str:
    """Per split: the run's metric beside each baseline's, the best trivial baseline (uniform or prior) and
    the run minus it."""
    names = [b for b in baselines if b != "best_trivial"]
    head = f"{'split':<22}{'model':>10}" + "".join(f"{b:>13}" for b in names) + f"{'best trivial':>20}{'model - best':>14}"
    lines = [head, "-" * len(head)]
    for split, m in model.items():
        best = baselines["best_trivial"].get(split)
        if best is None:
            continue
        cells = "".join(f"{baselines[b][split][metric]:>13.4f}" for b in names)
        lines.append(f"{split:<22}{m[metric]:>10.4f}{cells}{best['baseline']:>11} {best[metric]:>8.4f}"
                     f"{m[metric] - best[metric]:>+14.4f}")
    return "\n".join(lines)
