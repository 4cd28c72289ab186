"""Report figures (matplotlib, no pyplot state): each function returns a Figure; `save_figure` writes a PNG,
`write_plots` every figure of a report."""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from survey_sim.evaluation.metrics import METRIC_REGISTRY, SELECTION_METRIC, diversity
from survey_sim.io import atomic_write_bytes, slug
from survey_sim.report.collect import Run, RunGroup

ItemKey = tuple[str, str, str]  # (split, group, question_id)


def save_figure(fig: Figure, path: str | os.PathLike, dpi: int = 120) -> Path:
    """Write `fig` as a PNG atomically."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    return atomic_write_bytes(path, buf.getvalue())


def _split_items(group: RunGroup, split: str) -> pd.DataFrame:
    items = group.items()
    return items[items["split"] == split]


def plot_per_country(groups: list[RunGroup], split: str, metric: str = "jsd", title: str | None = None) -> Figure:
    """Bars of the mean per-item `metric` per country (x), one bar per run group."""
    per_group = {g.label: _split_items(g, split).groupby("group")[metric].mean() for g in groups}
    countries = sorted(set().union(*(s.index for s in per_group.values())))
    width = 0.8 / max(1, len(per_group))
    fig = Figure(figsize=(min(40.0, 5 + 0.3 * len(countries) * max(1.0, len(per_group) / 2)), 4.5),
                 layout="constrained")
    ax = fig.subplots()
    x = np.arange(len(countries))
    for i, (label, values) in enumerate(per_group.items()):
        ax.bar(x + (i - (len(per_group) - 1) / 2) * width, values.reindex(countries).to_numpy(), width,
               label=label)
    ax.set_xticks(x, countries, rotation=90, fontsize=8)
    name = METRIC_REGISTRY[metric].label if metric in METRIC_REGISTRY else metric
    ax.set_ylabel(name)
    ax.set_title(title or f"{split}: {name} per country")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return fig


def diversity_points(group: RunGroup, split: str) -> pd.DataFrame:
    """Per question of `split`: human and model diversity (mean pairwise 1-JSD across countries)."""
    items = _split_items(group, split)
    records = []
    for n_options, subset in items.groupby(items["human"].map(len)):
        for qid, d in diversity(subset.to_dict("records")).items():
            records.append({"question_id": qid, "n_options": n_options, **d})
    return pd.DataFrame.from_records(records, columns=["question_id", "n_options", "human", "model", "n_groups"])


def plot_diversity(groups: list[RunGroup], split: str) -> Figure:
    """Scatter of model vs human diversity per question, one colour per run group, with the diagonal."""
    fig = Figure(figsize=(6.5, 5), layout="constrained")
    ax = fig.subplots()
    lowest = 1.0
    for g in groups:
        pts = diversity_points(g, split)
        ax.scatter(pts["human"], pts["model"], s=14, alpha=0.7, label=g.label)
        lowest = min([lowest, *pts["human"], *pts["model"]])
    lo = max(0.0, lowest - 0.05)
    ax.plot([lo, 1], [lo, 1], color="grey", lw=0.8, ls="--")
    ax.set_xlim(lo, 1.01)
    ax.set_ylim(lo, 1.01)
    ax.set_xlabel("human: mean pairwise 1-JSD across countries (higher = less diverse)")
    ax.set_ylabel("model: mean pairwise 1-JSD across countries")
    ax.set_title(f"{split}: diversity per question")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return fig


def _step_figure() -> tuple[Figure, object]:
    fig = Figure(figsize=(8, 4.5), layout="constrained")
    return fig, fig.subplots()


def _finish_step_axes(ax, ylabel: str, title: str) -> None:
    """Labels and the legend (outside the plot) of a curves-against-step figure."""
    ax.set_xlabel("step")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))


def plot_loss_curves(runs: list[Run]) -> Figure | None:
    """Training (and validation, where logged) loss against step for every run with a history; None if none."""
    with_history = [r for r in runs if any("train/loss" in h for h in r.history)]
    if not with_history:
        return None
    fig, ax = _step_figure()
    for run in with_history:
        name = f"{run.label} seed={run.run.get('seed')}"
        for key, style in (("train/loss", "-"), ("val/loss", "--")):
            pts = [(h.get("step", i), h[key]) for i, h in enumerate(run.history) if h.get(key) is not None]
            if pts:
                steps, losses = zip(*pts)
                ax.plot(steps, losses, style, label=f"{name} {key.split('/')[0]}")
    _finish_step_axes(ax, "loss", "loss curves")
    return fig


def plot_validation_curves(runs: list[Run]) -> Figure | None:
    """1-JSD of each validation split (val: new questions, dev: new countries) and their mean, the selection
    metric, against step for every fine-tuning run that validated; the kept (best) step marked. None if none."""
    validated = [r for r in runs if r.validations]
    if not validated:
        return None
    fig, ax = _step_figure()
    for run in validated:
        name = f"{run.label} seed={run.run.get('seed')}"
        keys = sorted({k for v in run.validations for k in v if k.endswith("/jsd")})
        for key in keys:
            pts = [(v["step"], v[key]) for v in run.validations if key in v]
            steps, values = zip(*pts)
            ax.plot(steps, values, "-o" if key == SELECTION_METRIC else "--.", label=f"{name} {key}")
        best = max(run.validations, key=lambda v: v[SELECTION_METRIC])
        ax.plot([best["step"]], [best[SELECTION_METRIC]], "k*", markersize=12)
    _finish_step_axes(ax, METRIC_REGISTRY["jsd"].label, "validation during training (star: the adapter kept)")
    return fig


def plot_anchor_weights(runs: list[Run]) -> Figure | None:
    """Per anchored run and item group: the fitted weights (before the one-standard-error check; hatched when
    the check rejected the model and the base was used) and the cross-validated KL gain over the base with one
    standard error. None without anchored runs."""
    fits = [(f"{r.label} seed={r.run.get('seed')}\n{group}", f) for r in runs
            for group, f in sorted((r.anchor.get("fitted") or {}).items())]
    if not fits:
        return None
    fig = Figure(figsize=(10, 1.2 + 0.6 * len(fits)))
    weights, gains = fig.subplots(1, 2, sharey=True)
    y = np.arange(len(fits))
    for offset, key, color in ((-0.2, "model_weight", "C0"), (0.2, "base_weight", "C1")):
        values = [(f.get("fit_without_cv") or f)[key] for _, f in fits]
        bars = weights.barh(y + offset, values, height=0.4, color=color, label=key.replace("_", " "))
        for bar, (_, f) in zip(bars, fits):
            if not f.get("model_used"):
                bar.set_hatch("//")
    weights.set_yticks(y, [label for label, _ in fits], fontsize=7)
    weights.set_xlabel("fitted weight (hatched: rejected, the base is used)")
    weights.legend(fontsize=7, loc="lower left", bbox_to_anchor=(0.0, 1.0), ncol=2, frameon=False)
    gains.errorbar([f["cv_gain_per_cluster"] for _, f in fits], y, xerr=[f["cv_gain_se"] for _, f in fits],
                   fmt="o", color="k", capsize=3)
    gains.axvline(0.0, color="grey", linewidth=0.8)
    gains.xaxis.set_major_locator(MaxNLocator(4))
    gains.set_xlabel("cross-validated KL gain over the base (± 1 SE)")
    fig.suptitle("anchored simulators: fitted weights", fontsize=9)
    fig.tight_layout()
    return fig


def choose_items(group: RunGroup, n: int = 3, splits: list[str] | None = None) -> list[ItemKey]:
    """The `n` items with the highest and the `n` with the lowest 1-JSD (within `splits`, if given)."""
    items = group.items()
    if splits:
        items = items[items["split"].isin(splits)]
    ranked = items.sort_values("jsd", ascending=False, kind="stable")
    chosen = pd.concat([ranked.head(n), ranked.tail(n)]).drop_duplicates(["split", "group", "question_id"])
    return [(r.split, r.group, str(r.question_id)) for r in chosen.itertuples()]


def find_items(group: RunGroup, keys: list[ItemKey]) -> pd.DataFrame:
    """The group's item rows for `keys`; a key whose split is '' matches any split."""
    items = group.items()
    mask = np.zeros(len(items), dtype=bool)
    for split, grp, qid in keys:
        m = (items["group"] == grp) & (items["question_id"].astype(str) == qid)
        mask |= m & (items["split"] == split) if split else m
    return items[mask]


def plot_items(group: RunGroup, keys: list[ItemKey]) -> Figure | None:
    """Human vs predicted distribution for each chosen item (one panel each); None if none is present."""
    rows = find_items(group, keys)
    if rows.empty:
        return None
    n = len(rows)
    cols = min(3, n)
    nrows = int(np.ceil(n / cols))
    fig = Figure(figsize=(4.2 * cols, 3.4 * nrows), layout="constrained")
    axes = np.atleast_1d(fig.subplots(nrows, cols, squeeze=False)).ravel()
    for ax, row in zip(axes, rows.itertuples()):
        k = len(row.human)
        x = np.arange(k)
        labels = list(getattr(row, "letters", None) or range(k))
        ax.bar(x - 0.2, row.human, 0.4, label="human")
        ax.bar(x + 0.2, row.pred, 0.4, label="predicted")
        ax.set_xticks(x, labels, fontsize=8)
        ax.set_title(f"{row.group} · {row.question_id} ({row.split})\n{METRIC_REGISTRY['jsd'].label} {row.jsd:.3f}",
                     fontsize=9)
    for ax in axes[n:]:
        ax.set_visible(False)
    axes[0].legend(fontsize=8)
    fig.suptitle(group.label)
    return fig


def group_difference_points(group: RunGroup, split: str) -> pd.DataFrame:
    """Between-group differences (survey_sim.evaluation.group_metrics.difference_points) of a run group on `split`."""
    from survey_sim.evaluation.group_metrics import difference_points

    items = _split_items(group, split)
    if "attributes" not in items or not len(items):
        return pd.DataFrame()
    return pd.DataFrame.from_records(difference_points(items.to_dict("records")))


def plot_group_differences(groups: list[RunGroup], split: str) -> Figure | None:
    """Model vs human differences between subgroups (mean answer position of one value minus the other's,
    for items that differ only in that attribute): one panel per run group, one colour per attribute; the
    diagonal is a simulator that reproduces the human differences. None without subgroup items."""
    frames = [(g, group_difference_points(g, split)) for g in groups]
    frames = [(g, f) for g, f in frames if len(f)]
    if not frames:
        return None
    fig = Figure(figsize=(4.2 * len(frames), 4.2), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(frames), sharex=True, sharey=True))
    lim = max(0.05, *(float(np.abs(f[["human_diff", "model_diff"]].to_numpy()).max()) for _, f in frames)) * 1.05
    for ax, (g, points) in zip(axes, frames):
        ax.plot([-lim, lim], [-lim, lim], color="grey", lw=0.8, ls="--")
        ax.axhline(0, color="lightgrey", lw=0.5)
        ax.axvline(0, color="lightgrey", lw=0.5)
        for attribute, sub in points.groupby("attribute"):
            corr = np.corrcoef(sub["human_diff"], sub["model_diff"])[0, 1] if len(sub) > 2 and \
                sub["model_diff"].std() > 0 and sub["human_diff"].std() > 0 else float("nan")
            r = f"r={corr:.2f}" if np.isfinite(corr) else "r undefined: no variation"
            ax.scatter(sub["human_diff"], sub["model_diff"], s=8, alpha=0.6,
                       label=f"{attribute} ({sub['values'].iloc[0]}, ...; {r})")
        ax.set_xlim(-lim, lim)
        ax.set_ylim(-lim, lim)
        ax.set_title(g.label, fontsize=9)
        ax.set_xlabel("human difference (mean answer position)")
        ax.legend(fontsize=7, loc="upper left")
    axes[0].set_ylabel("model difference")
    fig.suptitle(f"{split}: differences between subgroups, model vs human")
    return fig


def write_plots(groups: list[RunGroup], runs: list[Run], splits: list[str], plot_dir: Path,
                items: list[ItemKey] | None = None) -> list[Path]:
    """Every report figure as a PNG under `plot_dir`; returns the files written."""
    files = []
    for split in splits:
        name = slug(split)
        files.append(save_figure(plot_per_country(groups, split, "jsd"), plot_dir / f"per_country_jsd_{name}.png"))
        files.append(save_figure(plot_per_country(groups, split, "accuracy"),
                                 plot_dir / f"accuracy_per_country_{name}.png"))
        if any(len(diversity_points(g, split)) for g in groups):
            files.append(save_figure(plot_diversity(groups, split), plot_dir / f"diversity_{name}.png"))
        differences = plot_group_differences(groups, split)
        if differences is not None:
            files.append(save_figure(differences, plot_dir / f"group_differences_{name}.png"))
    loss = plot_loss_curves(runs)
    if loss is not None:
        files.append(save_figure(loss, plot_dir / "loss_curves.png"))
    validation = plot_validation_curves(runs)
    if validation is not None:
        files.append(save_figure(validation, plot_dir / "validation_curves.png"))
    anchor = plot_anchor_weights(runs)
    if anchor is not None:
        files.append(save_figure(anchor, plot_dir / "anchor_weights.png"))
    for i, group in enumerate(groups):
        fig = plot_items(group, items or choose_items(group, 3, splits))
        if fig is not None:
            files.append(save_figure(fig, plot_dir / f"items_{i:02d}_{slug(group.label)}.png"))
    return files
