"""Paired comparisons of table rows: one row minus another per split, and each simulator row minus the best
trivial baseline, over the same items with clustered intervals."""

from __future__ import annotations

from survey_sim.baselines import BASELINES, TRIVIAL_BASELINES
from survey_sim.errors import ConfigError
from survey_sim.evaluation.intervals import Interval, paired_difference
from survey_sim.report.collect import RunGroup
from survey_sim.report.tables import split_interval


def group_by_label(groups: list[RunGroup], label: str) -> RunGroup:
    """The run group (table row) labelled `label`; ConfigError naming the labels there are."""
    for group in groups:
        if group.label == label:
            return group
    raise ConfigError(f"no table row {label!r}; rows: {[g.label for g in groups]}")


def paired_differences(a: RunGroup, b: RunGroup, metric: str, splits: list[str], clustering: str = "question",
                       n_boot: int = 1000, seed: int = 0) -> dict[str, Interval]:
    """Per split that both rows evaluated: mean per-item `metric` of row `a` minus row `b` over the same items,
    with its clustered interval (survey_sim.evaluation.intervals.paired_difference)."""
    a_items, b_items = a.items(), b.items()
    out = {}
    for split in splits:
        in_a, in_b = a_items[a_items["split"] == split], b_items[b_items["split"] == split]
        if in_a.empty or in_b.empty or metric not in in_a or metric not in in_b:
            continue
        try:
            out[split] = paired_difference(in_a, in_b, metric, clustering=clustering, n_boot=n_boot, seed=seed)
        except ValueError as err:
            raise ConfigError(f"rows {a.label!r} and {b.label!r}, split {split}: {err}") from None
    return out


def _methods(group: RunGroup) -> set:
    return {r.run.get("method") for r in group.runs}


def best_baseline_differences(groups: list[RunGroup], metric: str, splits: list[str], clustering: str = "question",
                              n_boot: int = 1000, seed: int = 0) -> dict[str, dict[str, tuple[str, Interval]]]:
    """Per simulator row (any row but a baseline's: zs, ft) and split: the row minus the better of the uniform and prior rows on that
    split (by mean `metric`, higher is better), paired over the same items, with its clustered interval;
    {row label: {split: (baseline method, Interval)}}. Empty unless the report holds exactly one uniform
    and one prior row."""
    trivial = {m: [g for g in groups if _methods(g) == {m}] for m in TRIVIAL_BASELINES}
    if any(len(rows) != 1 for rows in trivial.values()):
        return {}
    base = {m: rows[0] for m, rows in trivial.items()}
    out: dict[str, dict[str, tuple[str, Interval]]] = {}
    for group in groups:
        if _methods(group) & set(BASELINES):
            continue
        diffs = {}
        for split in splits:
            means = {m: split_interval(b.items(), split, metric, "item", 0) for m, b in base.items()}
            if any(v is None for v in means.values()):
                continue
            best = max(TRIVIAL_BASELINES, key=lambda m: means[m].value)
            diff = paired_differences(group, base[best], metric, [split], clustering, n_boot, seed)
            if split in diff:
                diffs[split] = (best, diff[split])
        out[group.label] = diffs
    return out
