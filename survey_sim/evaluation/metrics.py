"""Per-item metrics between human (p) and predicted (q) answer distributions, their registry and aggregates.

`METRIC_REGISTRY` is the one list of metrics: per metric its display name, `higher_is_better` and which
outputs show it (the printed table, the report, the dashboard).

All per-item functions take float64 arrays over the K options in the item's ORIGINAL order.

- `jsd`: 1 - JS distance, i.e. 1 - scipy.spatial.distance.jensenshannon(p, q) (natural log): the paper's
  headline number (higher is better).
- `js_divergence`: the JS divergence in bits (base 2), in [0, 1].
- `emd`: Wasserstein-1 over the options' scale positions (default 0..K-1), divided by the scale's span, in
  [0, 1]. Non-substantive options (position None) are left out and both distributions renormalised over
  the rest; None (not scored, counted per split as `n_emd_excluded`) for a nominal question, or when either
  distribution has no mass on the scale.
- `emd_paper_code`: scipy.stats.wasserstein_distance(p, q), the quantity the paper's code computed
  (probabilities taken as sample values; not an EMD between the distributions). Only for comparison.
- `tv`: total variation distance, in [0, 1].
- `accuracy`: 1 if the predicted top option is the human majority (argmax p; a tie among human shares goes
  to the first option). Tied predicted top options share the credit (1/t each), so a uniform prediction
  scores 1/K, its expected accuracy under random tie-breaking, not 1 whenever option A is the majority.
- `first_option_mass`: q of the first option; `a_bias`: its excess over p (mean over items = A-bias).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.special import rel_entr
from scipy.stats import wasserstein_distance


@dataclass(frozen=True)
class Metric:
    """One per-item metric: its key (in prediction rows, metrics.json, W&B), how it reads, where it is shown."""

    name: str
    #: display name (report, plots, dashboard)
    label: str
    #: None where neither is: a_bias is best at 0 (the report ranks it by closeness to 0), first_option_mass
    #: at the human share of that option
    higher_is_better: bool | None
    #: what the report's table title adds after the label
    note: str = ""
    #: from the model's next-token probabilities, not from p and q: simulator rows only (not in item_metrics)
    from_model: bool = False
    #: the paper's fidelity measures: the W&B predictions table and the dashboard's fidelity section
    fidelity: bool = False
    #: has a noise ceiling (evaluation.noise_ceiling: `ceiling_<name>`)
    ceiling: bool = False
    #: a column of the table a run prints
    printed: bool = False
    #: a table of the report (`python -m survey_sim.report`)
    reported: bool = False

    @property
    def title(self) -> str:
        """The label with the note: `A-bias: mass on the option shown first minus the human share`."""
        return f"{self.label}: {self.note}" if self.note else self.label


#: The registry: every per-item metric, in the order of rows, tables and columns.
METRIC_REGISTRY: dict[str, Metric] = {m.name: m for m in (
    Metric("jsd", "1-JSD", True, fidelity=True, ceiling=True, printed=True, reported=True),
    Metric("js_divergence", "JS divergence (bits)", False),
    Metric("emd", "EMD", False, fidelity=True, ceiling=True, printed=True, reported=True),
    Metric("emd_paper_code", "EMD (paper code)", False, reported=True),
    Metric("tv", "TV distance", False),
    Metric("accuracy", "Accuracy", True, fidelity=True, printed=True, reported=True),
    Metric("first_option_mass", "First-option mass", None),
    Metric("a_bias", "A-bias", None, note="mass on the option shown first minus the human share", printed=True,
           reported=True),
    Metric("letter_mass", "Letter mass", True, note="the option letters' share of the next-token probability "
           "(simulators)", from_model=True, printed=True, reported=True),
)}
#: The metrics of one item computed from p and q (`item_metrics`).
METRICS = tuple(name for name, m in METRIC_REGISTRY.items() if not m.from_model)
#: Per-item values averaged per split: METRICS and the model's (simulator rows only; see evaluation).
ROW_MEANS = tuple(METRIC_REGISTRY)
#: The paper's fidelity measures, in registry order.
FIDELITY_METRICS = tuple(name for name, m in METRIC_REGISTRY.items() if m.fidelity)
#: The report's tables, in registry order.
REPORTED_METRICS = tuple(name for name, m in METRIC_REGISTRY.items() if m.reported)
#: Logged after each validation of a fine-tuning run: the mean 1-JSD over the validation splits (val: new
#: questions, dev: new countries); the default monitor for keeping the best adapter. Not a split's metric.
SELECTION_METRIC = "selection/jsd"
#: The validation splits (roles): new questions, new countries; what training validates and selects on.
VALIDATION_SPLITS = ("val", "dev")


def logged_metrics(prefix: str, summary: Mapping[str, float]) -> dict[str, float]:
    """A split's metric summary as logged: `<prefix>/<metric>` (val/..., test/<split>/...), item count left out."""
    return {f"{prefix}/{k}": float(v) for k, v in summary.items() if k != "n_items"}


def _distribution(x, name: str) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64)
    if a.ndim != 1 or a.size < 1:
        raise ValueError(f"{name} must be a 1-D distribution, got shape {a.shape}")
    if not np.all(np.isfinite(a)) or np.any(a < 0) or a.sum() <= 0:
        raise ValueError(f"{name} must be finite, non-negative and not all zero, got {a.tolist()}")
    return a / a.sum()


def _pair(p, q) -> tuple[np.ndarray, np.ndarray]:
    p, q = _distribution(p, "p (human)"), _distribution(q, "q (predicted)")
    if p.shape != q.shape:
        raise ValueError(f"p has {p.size} options, q has {q.size}")
    return p, q


def _js_nats(p: np.ndarray, q: np.ndarray) -> float:
    m = (p + q) / 2.0
    return max(0.0, float(0.5 * (rel_entr(p, m).sum() + rel_entr(q, m).sum())))


def jsd(p, q) -> float:
    """1 - JS distance (natural log), as the paper's code: 1 - scipy jensenshannon(p, q)."""
    p, q = _pair(p, q)
    return 1.0 - math.sqrt(_js_nats(p, q))


def js_divergence(p, q) -> float:
    """Jensen-Shannon divergence in bits."""
    p, q = _pair(p, q)
    return _js_nats(p, q) / math.log(2.0)


def emd(p, q, positions: Sequence[float | None] | None = None) -> float | None:
    """Wasserstein-1 between p and q over the options' scale `positions` (default 0..K-1; None: a
    non-substantive option, left out) divided by the span of the positions: sum over consecutive positions
    of |CDF_p - CDF_q| times the gap. None when p or q has no mass on the scale."""
    p, q = _pair(p, q)
    if positions is None:
        positions = range(p.size)
    if len(positions) != p.size:
        raise ValueError(f"{len(positions)} scale positions for {p.size} options")
    keep = [i for i, x in enumerate(positions) if x is not None]
    x = np.asarray([positions[i] for i in keep], dtype=np.float64)
    p, q = p[keep], q[keep]
    if p.sum() <= 0 or q.sum() <= 0:
        return None
    if x.size < 2 or np.ptp(x) == 0:
        return 0.0
    order = np.argsort(x, kind="stable")
    x, p, q = x[order], p[order] / p.sum(), q[order] / q.sum()
    return float((np.abs(np.cumsum(p - q)[:-1]) * np.diff(x)).sum() / np.ptp(x))


def emd_paper_code(p, q) -> float:
    """scipy.stats.wasserstein_distance(p, q): the paper code's quantity (values-as-samples)."""
    p, q = _pair(p, q)
    return float(wasserstein_distance(p, q))


def accuracy(p, q) -> float:
    """Majority-option accuracy; tied predicted top options (within 1e-12) share the credit."""
    p, q = _pair(p, q)
    top = np.flatnonzero(q >= q.max() - 1e-12)
    return float(int(np.argmax(p)) in top) / len(top)


def tv(p, q) -> float:
    """Total variation distance: half the L1 distance."""
    p, q = _pair(p, q)
    return float(0.5 * np.abs(p - q).sum())


def item_metrics(p, q, *, first_index: int = 0, positions: Sequence[float | None] | None = None,
                 ordinal: bool = True) -> dict[str, float | None]:
    """All metrics of one item. `first_index`: original index of the option shown first (A-bias);
    `positions` / `ordinal`: the scale (see `emd`; a nominal item's emd is None)."""
    p, q = _pair(p, q)
    return {
        "jsd": jsd(p, q), "js_divergence": js_divergence(p, q),
        "emd": emd(p, q, positions) if ordinal else None,
        "emd_paper_code": emd_paper_code(p, q), "tv": tv(p, q),
        "accuracy": accuracy(p, q),
        "first_option_mass": float(q[first_index]), "a_bias": float(q[first_index] - p[first_index]),
    }


def _mean(rows: Sequence[Mapping]) -> dict:
    out: dict = {"n_items": len(rows)}
    for name in ROW_MEANS:
        values = [float(r[name]) for r in rows if r.get(name) is not None]
        if values:
            out[name] = float(np.mean(values))
    excluded = sum(1 for r in rows if "emd" in r and r["emd"] is None)
    if excluded:
        out["n_emd_excluded"] = excluded  # nominal questions (or no mass on the scale): emd not scored
    return out


def aggregate(rows: Iterable[Mapping], by: str | Sequence[str] | None = None) -> dict:
    """Mean of each metric over rows, with n_items; with `by` (a row key or keys), one such dict per value."""
    rows = list(rows)
    if by is None:
        return _mean(rows)
    keys = [by] if isinstance(by, str) else list(by)
    groups: dict[Hashable, list[Mapping]] = defaultdict(list)
    for i, row in enumerate(rows):
        missing = [k for k in keys if k not in row]
        if missing:
            raise KeyError(f"row {i} has no key(s) {missing} to aggregate by")
        groups[row[keys[0]] if len(keys) == 1 else tuple(row[k] for k in keys)].append(row)
    return {key: _mean(group) for key, group in sorted(groups.items(), key=lambda kv: str(kv[0]))}


#: Diversity's sides: name -> (the rows' key of its distributions, how errors name them).
_SIDES = {"human": ("human", "human"), "model": ("pred", "predicted")}


def diversity(rows: Iterable[Mapping], sides: Sequence[str] = ("human", "model")) -> dict[str, dict]:
    """Per question: mean pairwise 1-JSD across groups of the human and/or the predicted distributions.

    Rows need "question_id", "group" and the distributions of `sides`: "human" (side human), "pred" (side
    model); one row per group, rows of one question with the same options. Questions asked of fewer than two
    groups are left out.
    """
    by_q: dict[str, list[Mapping]] = defaultdict(list)
    for row in rows:
        by_q[str(row["question_id"])].append(row)
    out = {}
    for qid, group in sorted(by_q.items()):
        if len(group) < 2:
            continue
        sizes = {len(r[_SIDES[side][0]]) for r in group for side in sides}
        if len(sizes) > 1:
            raise ValueError(f"question {qid}: groups have different numbers of options {sorted(sizes)}")
        out[qid] = {}
        for side in sides:
            key, name = _SIDES[side]
            out[qid][side] = mean_pairwise_jsd([r[key] for r in group], f"question {qid}: {name}")
        out[qid]["n_groups"] = len(group)
    return out


def mean_pairwise_jsd(dists, name: str = "distributions") -> float:
    """Mean of `jsd` over all pairs of the rows of `dists` [G, K] (G >= 2), computed for all pairs at once."""
    d = np.asarray(dists, dtype=np.float64)
    if d.ndim != 2 or d.shape[0] < 2 or d.shape[1] < 1:
        raise ValueError(f"{name}: needs at least 2 distributions of equal length, got shape {d.shape}")
    if not np.all(np.isfinite(d)) or np.any(d < 0) or np.any(d.sum(axis=1) <= 0):
        raise ValueError(f"{name}: every distribution must be finite, non-negative and not all zero")
    d = d / d.sum(axis=1, keepdims=True)
    i, j = np.triu_indices(len(d), k=1)
    p, q = d[i], d[j]
    m = (p + q) / 2.0
    js = np.maximum(0.0, 0.5 * (rel_entr(p, m).sum(axis=1) + rel_entr(q, m).sum(axis=1)))
    return float(np.mean(1.0 - np.sqrt(js)))

