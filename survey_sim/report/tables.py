"""The paper's tables (rows: model x method, columns: splits + Avg) as markdown, LaTeX and a tidy CSV frame."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from survey_sim.errors import ConfigError, SurveyDataError
from survey_sim.evaluation.intervals import QUESTION, Interval, clustered_interval, paired_difference
from survey_sim.report.collect import ITEM_KEY, Run, RunGroup

# metric -> (title, higher is better; None: closer to 0 is better)
TABLE_METRICS = {
    "jsd": ("1-JSD", True),
    "emd": ("EMD", False),
    "emd_paper_code": ("EMD (paper code)", False),
    "accuracy": ("Accuracy", True),
    "a_bias": ("A-bias: mass on the option shown first minus the human share", None),
    "letter_mass": ("Letter mass: the option letters' share of the next-token probability (simulators)", True),
}
SPLIT_ORDER = ("val", "C1-Q3", "C2-Q1", "C2-Q2", "C2-Q3", "C3-Q1", "C3-Q2", "C3-Q3", "Pew-C'1", "Pew-C3",
               "test-unseen-country", "test-unseen-question", "test-unseen-both")
PAPER_NUMBERS = Path(__file__).with_name("paper_numbers.yaml")
CEILING_LABEL = "noise ceiling"
#: How the report names each clustering of survey_sim.evaluation.intervals.CLUSTERINGS.
CLUSTERING_WORDS = {"item": "items", "question": "questions (all countries of a question together)",
                    "question_country": "questions and countries independently"}


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
        return TABLE_METRICS.get(self.metric, (self.metric, True))[0]

    @property
    def higher_is_better(self) -> bool | None:
        return TABLE_METRICS.get(self.metric, (self.metric, True))[1]

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


def load_paper_numbers(path: str | os.PathLike | None = None) -> list[dict]:
    """The published reference numbers: records {model, method, control, split, <metric>: value}."""
    path = Path(path) if path else PAPER_NUMBERS
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise SurveyDataError(f"cannot read paper numbers: {exc}", file=str(path)) from exc
    records = (data.get("numbers") or []) if isinstance(data, dict) else None
    if not isinstance(records, list):
        raise SurveyDataError("expected a mapping with a list 'numbers'", file=str(path), field="numbers")
    for i, rec in enumerate(records):
        if not isinstance(rec, dict):
            raise SurveyDataError("record is not a mapping", file=str(path), record=i)
        for key in ("method", "split"):
            if not rec.get(key):
                raise SurveyDataError(f"record has no {key}", file=str(path), record=i, field=key)
        for metric in set(rec) & set(TABLE_METRICS):
            if not isinstance(rec[metric], (int, float)) or not math.isfinite(rec[metric]):
                raise SurveyDataError(f"{metric} must be a number, got {rec[metric]!r}", file=str(path),
                                      record=i, field=metric)
    return records


def _setting(source: dict) -> tuple:
    """What a paper record and a run must share besides model and method (defaults as in paper_numbers.yaml)."""
    method = source.get("method")
    return (bool(source.get("control", False)), source.get("language") or "en", bool(source.get("shuffle", False)),
            int(source.get("permutations") or 1), (source.get("loss") or "kl") if method == "ft" else None,
            source.get("k") if method == "knn" else None)


def _paper_for(group: RunGroup, metric: str, records: list[dict]) -> dict[str, float]:
    run = group.runs[0].run
    return {rec["split"]: float(rec[metric]) for rec in records
            if metric in rec and rec.get("model") == run.get("model") and rec["method"] == run.get("method")
            and _setting(rec) == _setting(run)}


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
        rows.append(TableRow(group.label, len(group.runs), cells, _paper_for(group, metric, paper or [])))
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


#: The free baselines a simulator must beat: uniform (new questions) and the question prior (trained ones).
TRIVIAL_BASELINES = ("uniform", "prior")
SIMULATOR_METHODS = ("zs", "ft")


def _methods(group: RunGroup) -> set:
    return {r.run.get("method") for r in group.runs}


def best_baseline_differences(groups: list[RunGroup], metric: str, splits: list[str], clustering: str = "question",
                              n_boot: int = 1000, seed: int = 0) -> dict[str, dict[str, tuple[str, Interval]]]:
    """Per simulator row (zs, ft) and split: the row minus the better of the uniform and prior rows on that
    split (by mean `metric`, higher is better), paired over the same items, with its clustered interval;
    {row label: {split: (baseline method, Interval)}}. Empty unless the report holds exactly one uniform
    and one prior row."""
    trivial = {m: [g for g in groups if _methods(g) == {m}] for m in TRIVIAL_BASELINES}
    if any(len(rows) != 1 for rows in trivial.values()):
        return {}
    base = {m: rows[0] for m, rows in trivial.items()}
    out: dict[str, dict[str, tuple[str, Interval]]] = {}
    for group in groups:
        if not _methods(group) <= set(SIMULATOR_METHODS):
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


def table_frame(table: Table) -> pd.DataFrame:
    """The table as numbers: index = row label, columns = splits (+ `<split> (paper)`) + Avg."""
    records = {}
    for row in table.rows:
        rec = {}
        for s in table.splits:
            rec[s] = row.cells[s].value if s in row.cells else np.nan
            if s in table.paper_splits:
                rec[f"{s} (paper)"] = row.paper.get(s, np.nan)
        avg = row.avg(table.splits)
        rec["Avg"] = np.nan if avg is None else avg
        records[row.label] = rec
    if table.ceiling:
        records[CEILING_LABEL] = {s: table.ceiling[s].value if s in table.ceiling else np.nan for s in table.splits}
    return pd.DataFrame.from_dict(records, orient="index")


def _columns(table: Table) -> list[str]:
    """Column headers: each split, followed by `<split> (paper)` where a reference number exists."""
    cols = []
    for s in table.splits:
        cols.append(s)
        if s in table.paper_splits:
            cols.append(f"{s} (paper)")
    return cols


def _cells(table: Table, row: TableRow, fmt_ci, bold) -> list[str]:
    out = []
    for s in table.splits:
        cell = row.cells.get(s)
        if cell is None:
            out.append("–")
        else:
            text = f"{cell.value:.3f}"
            if cell.value == table.best(s) and len(table.rows) > 1:
                text = bold(text)
            out.append(text + (fmt_ci(cell.low, cell.high) if cell.low is not None else ""))
        if s in table.paper_splits:
            out.append(f"{row.paper[s]:.3f}" if s in row.paper else "–")
    avg = row.avg(table.splits)
    out.append("–" if avg is None else f"{avg:.3f}")
    return out


def _n_items(table: Table) -> list[str]:
    out = []
    for s in table.splits:
        counts = sorted({r.cells[s].n_items for r in table.rows if s in r.cells})
        out.append("/".join(map(str, counts)) or "–")
        if s in table.paper_splits:
            out.append("")
    return out + [""]


def _ceiling_cells(table: Table) -> list[str]:
    out = []
    for s in table.splits:
        out.append(f"{table.ceiling[s].value:.3f}" if s in table.ceiling else "–")
        if s in table.paper_splits:
            out.append("")
    return out + [""]


def to_markdown(table: Table) -> str:
    head = ["", "runs", *_columns(table), "Avg"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in table.rows:
        cells = _cells(table, row, lambda lo, hi: f" [{lo:.3f}, {hi:.3f}]", lambda t: f"**{t}**")
        lines.append("| " + " | ".join([row.label, str(row.n_runs), *cells]) + " |")
    if table.ceiling:
        lines.append("| " + " | ".join([f"*{CEILING_LABEL}*", "", *_ceiling_cells(table)]) + " |")
    lines.append("| " + " | ".join(["*n items*", "", *_n_items(table)]) + " |")
    if table.ceiling_note:
        lines += ["", f"Noise ceiling: {table.ceiling_note}."]
    return "\n".join(lines)


_LATEX_ESCAPES = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                  "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}


def latex_escape(text: str) -> str:
    return "".join(_LATEX_ESCAPES.get(c, c) for c in str(text))


def to_latex(table: Table) -> str:
    cols = _columns(table)
    head = " & ".join(["", *map(latex_escape, cols), "Avg"]) + r" \\"
    lines = [f"% {latex_escape(table.title)}: mean over items; "
             + (f"95% bootstrap interval resampling {CLUSTERING_WORDS[table.clustering]} ({table.n_boot} "
                "resamples) in brackets"
                if table.n_boot > 0 else "no intervals"),
             r"\begin{tabular}{l" + "c" * (len(cols) + 1) + "}", r"\toprule", head, r"\midrule"]
    for row in table.rows:
        cells = _cells(table, row, lambda lo, hi: rf" {{\scriptsize [{lo:.3f}, {hi:.3f}]}}",
                       lambda t: rf"\textbf{{{t}}}")
        lines.append(" & ".join([latex_escape(row.label), *cells]) + r" \\")
    lines.append(r"\midrule")
    if table.ceiling:
        lines.append(" & ".join([rf"\textit{{{CEILING_LABEL}}}", *_ceiling_cells(table)]) + r" \\")
    lines.append(" & ".join([r"\textit{n items}", *_n_items(table)]) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(lines)


def results_frame(runs: list[Run], n_boot: int = 1000, seed: int = 0, clustering: str = "question") -> pd.DataFrame:
    """Tidy results: one row per run x split x metric, the value from metrics.json, a clustered bootstrap
    interval (column `ci_clustering`)."""
    records = []
    for run in runs:
        preds = run.predictions
        base = {"path": str(run.path), "label": run.label, **{k: run.run.get(k) for k in (
            "name", "model", "method", "control", "loss", "data", "language", "shuffle", "seed")}}
        for split, metrics in run.splits.items():
            for metric, value in metrics.items():
                if metric == "n_items" or not isinstance(value, (int, float)):
                    continue
                ci = split_interval(preds, split, metric, clustering, n_boot, seed) if len(preds) else None
                records.append({**base, "split": split, "metric": metric, "value": float(value),
                                "ci_low": ci.low if ci else None, "ci_high": ci.high if ci else None,
                                "ci_clustering": clustering if ci and ci.low is not None else None,
                                "n_items": metrics.get("n_items")})
    cols = ["path", "label", "name", "model", "method", "control", "loss", "data", "language", "shuffle", "seed",
            "split", "metric", "value", "ci_low", "ci_high", "ci_clustering", "n_items"]
    return pd.DataFrame.from_records(records, columns=cols)
