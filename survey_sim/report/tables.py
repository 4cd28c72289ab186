"""The report's tables as numbers (rows: run groups, model x method; columns: splits), and the tidy results."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from survey_sim.evaluation.intervals import QUESTION, Interval, clustered_interval
from survey_sim.evaluation.metrics import METRIC_REGISTRY
from survey_sim.report.collect import ITEM_KEY, Run, RunGroup
from survey_sim.report.paper import paper_for

#: The WVS evaluation splits: val (new questions), dev (held-out training countries), the paper's test splits.
WVS_SPLITS = ("val", "dev", "C1-Q3", "C2-Q1", "C2-Q2", "C2-Q3", "C3-Q1", "C3-Q2", "C3-Q3")
SPLIT_ORDER = (*WVS_SPLITS, "Pew-C'1", "Pew-C3", "test-unseen-country", "test-unseen-question", "test-unseen-both")
#: The run settings (metrics.json "run") of each row of the tidy results.
RESULT_SETTINGS = ("name", "model", "method", "control", "loss", "data", "language", "shuffle", "seed")


def ordered_splits(names) -> list[str]:
    """Split names in the paper's order, unknown ones after it alphabetically."""
    names = set(names)
    return [s for s in SPLIT_ORDER if s in names] + sorted(names - set(SPLIT_ORDER))


def default_splits(runs: list[Run]) -> list[str]:
    """Every evaluated split except train."""
    return ordered_splits({s for r in runs for s in r.splits} - {"train"})


@dataclass
class Cell:
    value: float
    low: float | None = None
    high: float | None = None
    n_items: int = 0


@dataclass
class TableRow:
    label: str
    n_runs: int
    cells: dict[str, Cell]
    paper: dict[str, float] = field(default_factory=dict)

    def avg(self, splits: list[str]) -> float | None:
        """Unweighted mean over `splits`; None unless the row has all of them."""
        if not splits or any(s not in self.cells for s in splits):
            return None
        return float(np.mean([self.cells[s].value for s in splits]))


@dataclass
class Table:
    metric: str
    splits: list[str]
    rows: list[TableRow]
    n_boot: int
    ceiling: dict[str, Cell] = field(default_factory=dict)  # noise ceiling per split (jsd and emd tables)
    ceiling_note: str = ""
    clustering: str = "question"

    @property
    def title(self) -> str:
        metric = METRIC_REGISTRY.get(self.metric)
        return metric.title if metric else self.metric

    @property
    def higher_is_better(self) -> bool | None:
        metric = METRIC_REGISTRY.get(self.metric)
        return metric.higher_is_better if metric else True

    @property
    def paper_splits(self) -> list[str]:
        return [s for s in self.splits if any(s in r.paper for r in self.rows)]

    def best(self, split: str) -> float | None:
        values = [r.cells[split].value for r in self.rows if split in r.cells]
        if not values:
            return None
        if self.higher_is_better is None:
            return min(values, key=abs)
        return max(values) if self.higher_is_better else min(values)


def split_interval(items: pd.DataFrame, split: str, metric: str, clustering: str = "question", n_boot: int = 1000,
                   seed: int = 0) -> Interval | None:
    """Mean per-item `metric` of one split's items with its clustered bootstrap 95% interval (see
    survey_sim.evaluation.intervals); None when no item of the split has the metric."""
    if metric not in items:
        return None
    rows = items[(items["split"] == split) & items[metric].notna()]
    if rows.empty:
        return None
    return clustered_interval(rows[metric].to_numpy(float), questions=rows[QUESTION].astype(str),
                              countries=rows["group"], clustering=clustering, n_boot=n_boot, seed=seed)


def build_table(groups: list[RunGroup], metric: str, splits: list[str], n_boot: int = 1000, seed: int = 0,
                paper: list[dict] | None = None, clustering: str = "question") -> Table:
    """One table: a row per run group, a cell per split: mean per-item `metric` with a bootstrap 95% interval
    resampling `clustering` units (questions by default)."""
    rows = []
    for group in groups:
        items = group.items()
        cells = {}
        for split in splits:
            ci = split_interval(items, split, metric, clustering, n_boot, seed)
            if ci is not None:
                cells[split] = Cell(ci.value, ci.low, ci.high, ci.n_items)
        rows.append(TableRow(group.label, len(group.runs), cells, paper_for(group, metric, paper or [])))
    ceiling, note = noise_ceiling_cells(groups, metric, splits)
    return Table(metric, list(splits), rows, n_boot, ceiling=ceiling, ceiling_note=note, clustering=clustering)


def noise_ceiling_cells(groups: list[RunGroup], metric: str, splits: list[str]) -> tuple[dict[str, Cell], str]:
    """Per split, the mean noise ceiling `ceiling_<metric>` over the split's items (each item once, from the
    runs whose predictions carry it), and a note on the N used; empty for metrics without a ceiling."""
    column = f"ceiling_{metric}"
    frames = [g.items() for g in groups if column in g.items()]
    if not frames:
        return {}, ""
    items = pd.concat(frames, ignore_index=True).dropna(subset=[column]).drop_duplicates(ITEM_KEY)
    cells, assumed, sizes = {}, 0, set()
    for split in splits:
        in_split = items[items["split"] == split]
        if len(in_split):
            cells[split] = Cell(float(in_split[column].mean()), n_items=len(in_split))
            flagged = in_split["ceiling_n_assumed"].fillna(False).astype(bool)
            assumed += int(flagged.sum())
            sizes.update(in_split.loc[flagged, "ceiling_n"].astype(float))
    note = "expected score of the true distribution against a multinomial sample of each item's N"
    if assumed:
        note += f"; N={'/'.join(f'{n:,.0f}' for n in sorted(sizes))} ASSUMED for {assumed} items without a count"
    return cells, note


def results_frame(runs: list[Run], n_boot: int = 1000, seed: int = 0, clustering: str = "question") -> pd.DataFrame:
    """Tidy results: one row per run x split x metric, the value from metrics.json, a clustered bootstrap
    interval (column `ci_clustering`)."""
    records = []
    for run in runs:
        preds = run.predictions
        base = {"path": str(run.path), "label": run.label, **{k: run.run.get(k) for k in RESULT_SETTINGS}}
        for split, metrics in run.splits.items():
            for metric, value in metrics.items():
                if metric == "n_items" or not isinstance(value, (int, float)):
                    continue
                ci = split_interval(preds, split, metric, clustering, n_boot, seed) if len(preds) else None
                records.append({**base, "split": split, "metric": metric, "value": float(value),
                                "ci_low": ci.low if ci else None, "ci_high": ci.high if ci else None,
                                "ci_clustering": clustering if ci and ci.low is not None else None,
                                "n_items": metrics.get("n_items")})
    cols = ["path", "label", *RESULT_SETTINGS, "split", "metric", "value", "ci_low", "ci_high", "ci_clustering",
            "n_items"]
    return pd.DataFrame.from_records(records, columns=cols)
