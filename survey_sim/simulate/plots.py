"""Figures of `survey_sim.simulate` (matplotlib Figures, no pyplot state) from its tidy table.

- `plot_question`: one question, a stacked bar of the option distribution per country.
- `plot_country`: one country, a heatmap of option probabilities over the questions.
- `plot_diversity`: the spread of the predictions across countries per question, next to the spread that
  human WVS data shows for questions with the same number of options (when that data is available).
"""

from __future__ import annotations

import textwrap

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.figure import Figure

from survey_sim.report.plots import save_figure

__all__ = ["plot_country", "plot_diversity", "plot_question", "save_figure"]


def _wrap(text: str, width: int = 70) -> str:
    return "\n".join(textwrap.wrap(str(text), width)) or str(text)


def _caption(fig: Figure, caption: str | None) -> None:
    if caption:
        fig.text(0.01, 0.0, _wrap(caption, 110), fontsize=7, style="italic", va="top", ha="left")


def plot_question(part: pd.DataFrame, caption: str | None = None) -> Figure:
    """Stacked horizontal bars (one per country) of one question's predicted option distribution; the
    whiskers at each segment's end show the range across option orders."""
    part = part.sort_values(["country", "option_index"], kind="stable")
    countries = list(dict.fromkeys(part["country"]))
    options = part.drop_duplicates("option_index").sort_values("option_index")["option"].tolist()
    probs = part.pivot(index="country", columns="option_index", values="probability").loc[countries].to_numpy()
    cmap = colormaps["RdYlBu" if bool(part["ordinal"].iloc[0]) else "tab10"]
    colors = [cmap(i / max(1, len(options) - 1)) if bool(part["ordinal"].iloc[0]) else cmap(i % 10)
              for i in range(len(options))]
    fig = Figure(figsize=(9, 1.6 + 0.45 * len(countries)), layout="constrained")
    ax = fig.subplots()
    left = np.zeros(len(countries))
    for j, label in enumerate(options):
        ax.barh(countries, probs[:, j], left=left, color=colors[j], edgecolor="white", linewidth=0.5,
                label=_wrap(label, 30))
        for y, (x, w) in enumerate(zip(left, probs[:, j])):
            if w >= 0.06:
                ax.text(x + w / 2, y, f"{w:.0%}", ha="center", va="center", fontsize=7)
        left += probs[:, j]
    ax.set_xlim(0, 1)
    ax.invert_yaxis()
    ax.set_xlabel("simulated share of answers")
    qid, text = part["question_id"].iloc[0], part["question"].iloc[0]
    ax.set_title(_wrap(f"{qid}: {text}", 90), fontsize=9)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), title="options", title_fontsize=7)
    _caption(fig, caption)
    return fig


def plot_country(part: pd.DataFrame, caption: str | None = None) -> Figure:
    """Heatmap of one country's option probabilities: questions (rows) x option positions A, B, ...;
    blank where a question has fewer options; the predicted majority is outlined."""
    questions = list(dict.fromkeys(part["question_id"]))
    width = int(part["option_index"].max()) + 1
    grid = np.full((len(questions), width), np.nan)
    for r in part.itertuples():
        grid[questions.index(r.question_id), r.option_index] = r.probability
    fig = Figure(figsize=(2.5 + 0.7 * width, 1.5 + 0.45 * len(questions)), layout="constrained")
    ax = fig.subplots()
    image = ax.imshow(np.ma.masked_invalid(grid), cmap="viridis", vmin=0, vmax=max(0.01, np.nanmax(grid)),
                      aspect="auto")
    for i, row in enumerate(grid):
        top = int(np.nanargmax(row))
        ax.add_patch(_outline(top, i))
        for j, v in enumerate(row):
            if np.isfinite(v):
                ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=7,
                        color="black" if v > 0.6 * np.nanmax(grid) else "white")
    letters = part.drop_duplicates("option_index").sort_values("option_index")["letter"].tolist()
    ax.set_xticks(range(width), letters)
    ax.set_yticks(range(len(questions)), questions, fontsize=8)
    ax.set_xlabel("option position (see the table for labels)")
    ax.set_title(f"{part['country'].iloc[0]}: simulated answer distributions", fontsize=10)
    fig.colorbar(image, ax=ax, label="probability", shrink=0.8)
    _caption(fig, caption)
    return fig


def _outline(x: int, y: int):
    from matplotlib.patches import Rectangle

    return Rectangle((x - 0.5, y - 0.5), 1, 1, fill=False, edgecolor="red", linewidth=1.5)


def plot_diversity(model: pd.DataFrame, human: pd.DataFrame | None, note: str, caption: str | None = None) -> Figure:
    """Per option count: human diversity of WVS questions (box) and the simulated questions' diversity
    across the chosen countries (points). Diversity = mean pairwise 1-JSD across countries (1 = identical)."""
    fig = Figure(figsize=(7.5, 4.8), layout="constrained")
    ax = fig.subplots()
    ks = sorted(set(model["n_options"]))
    if human is not None:
        boxes = [human.loc[human["n_options"] == k, "human"].to_numpy() for k in ks]
        present = [i for i, b in enumerate(boxes) if len(b)]
        if present:
            ax.boxplot([boxes[i] for i in present], positions=[i for i in present], widths=0.5,
                       patch_artist=True, boxprops={"facecolor": "#cfe2f3"}, medianprops={"color": "navy"},
                       flierprops={"markersize": 3}, label="human (WVS)")
    rng = np.random.default_rng(0)
    for i, k in enumerate(ks):
        values = model.loc[model["n_options"] == k, "model"].to_numpy()
        ax.scatter(i + rng.uniform(-0.12, 0.12, len(values)), values, color="crimson", zorder=3, s=22,
                   label="simulated questions" if i == 0 else None)
    if not ks:
        ax.text(0.5, 0.5, "fewer than two countries: no spread to show", ha="center", va="center",
                transform=ax.transAxes)
    ax.set_xticks(range(len(ks)), [f"{k} options" for k in ks])
    ax.set_xlim(-0.7, max(0.7, len(ks) - 0.3))
    ax.set_ylabel("mean pairwise 1-JSD across countries\n(higher = countries answer more alike)")
    ax.set_title(_wrap(f"Diversity across countries. {note}", 85), fontsize=9)
    ax.legend(fontsize=8, loc="lower left")
    _caption(fig, caption)
    return fig
