"""One report table as a frame of numbers, as markdown and as LaTeX."""

from __future__ import annotations

import numpy as np
import pandas as pd

from survey_sim.report.tables import Table, TableRow

CEILING_LABEL = "noise ceiling"
#: How the report names each clustering of survey_sim.evaluation.intervals.CLUSTERINGS.
CLUSTERING_WORDS = {"item": "items", "question": "questions (all countries of a question together)",
                    "question_country": "questions and countries independently"}


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
