"""Bootstrap intervals of mean per-item metrics, with items resampled in clusters, and paired differences.

Items of a split are (country, question) pairs: one question's items share its wording and options, one
country's items its respondents, so their errors are correlated and an interval that resamples independent
items is too narrow for claims about new questions or new countries. `CLUSTERINGS`:

- `item`: independent items (the narrowest; only right for claims about these very questions and countries);
- `question`: whole questions resampled with replacement (all of a question's countries together);
  scipy.stats.bootstrap over the clusters, with the ratio estimator sum(values) / sum(sizes);
- `question_country`: questions and countries resampled independently (a two-way "pigeonhole" bootstrap:
  an item counts as often as its question times its country was drawn), for claims about new questions
  and new countries at once.

`paired_difference(a, b, metric)` is the mean per-item difference a - b over the same items (e.g. a model's
rows minus the best baseline's on one split) with its clustered interval: the two rows' items are matched by
ITEM_KEY and resampled together, so what they share (hard questions) cancels.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import bootstrap

CLUSTERINGS = ("item", "question", "question_country")
#: What identifies one item in prediction rows; the paired difference matches rows on it.
ITEM_KEY = ("split", "group", "question_id", "language")
QUESTION, COUNTRY = "question_id", "group"


@dataclass(frozen=True)
class Interval:
    """A mean with its bootstrap interval (None without resampling), and what it was computed over:
    `n_clusters` counts the units resampled (items, questions, or questions plus countries)."""

    value: float
    low: float | None
    high: float | None
    n_items: int
    n_clusters: int
    clustering: str

    @property
    def width(self) -> float | None:
        return None if self.low is None else self.high - self.low


def _check(values, clustering: str) -> np.ndarray:
    if clustering not in CLUSTERINGS:
        raise ValueError(f"unknown clustering {clustering!r}; choose from {list(CLUSTERINGS)}")
    v = np.asarray(values, dtype=np.float64)
    if v.ndim != 1 or v.size == 0 or not np.all(np.isfinite(v)):
        raise ValueError(f"intervals need a non-empty 1-D array of finite values, got shape {v.shape}")
    return v


def _codes(labels, n: int, name: str) -> np.ndarray:
    if labels is None:
        raise ValueError(f"this clustering needs the items' {name} labels")
    codes = pd.factorize(pd.Series(list(labels), dtype=object))[0]
    if len(codes) != n:
        raise ValueError(f"{n} values but {len(codes)} {name} labels")
    return codes


def _two_way_means(v: np.ndarray, q: np.ndarray, c: np.ndarray, n_boot: int, rng) -> np.ndarray:
    """Means of `n_boot` pigeonhole resamples: questions and countries drawn independently with replacement."""
    nq, nc = q.max() + 1, c.max() + 1
    out = []
    chunk = max(1, 2_000_000 // v.size)
    for start in range(0, n_boot, chunk):
        b = min(chunk, n_boot - start)
        wq = rng.multinomial(nq, np.full(nq, 1.0 / nq), size=b)      # [b, nq] draws per question
        wc = rng.multinomial(nc, np.full(nc, 1.0 / nc), size=b)      # [b, nc] draws per country
        w = (wq[:, q] * wc[:, c]).astype(np.float64)                 # [b, N] multiplicity of each item
        total = w.sum(axis=1)
        out.append(np.where(total > 0, (w @ v) / np.maximum(total, 1), np.nan))
    means = np.concatenate(out)
    return means[np.isfinite(means)]  # a draw that hits no item (questions and countries never crossed)


def clustered_interval(values, *, questions: Sequence | None = None, countries: Sequence | None = None,
                       clustering: str = "question", n_boot: int = 1000, seed: int = 0, level: float = 0.95,
                       method: str = "percentile") -> Interval:
    """Mean of per-item `values` with a `level` bootstrap interval under `clustering` (see CLUSTERINGS).

    `questions` / `countries`: each item's question id and country (needed by the clusterings that use
    them). `n_boot` 0: no interval. `method`: scipy.stats.bootstrap's ('percentile', 'basic', 'BCa'), for
    `item` and `question`; the two-way bootstrap gives percentile intervals."""
    v = _check(values, clustering)
    mean = float(v.mean())
    if clustering == "item":
        clusters = np.arange(v.size)
    else:
        clusters = _codes(questions, v.size, "question")
    n_clusters = int(clusters.max()) + 1
    if clustering == "question_country":
        countries_ = _codes(countries, v.size, "country")
        n_clusters += int(countries_.max()) + 1
    if n_boot <= 0:
        return Interval(mean, None, None, v.size, n_clusters, clustering)
    if np.ptp(v) == 0:
        return Interval(mean, mean, mean, v.size, n_clusters, clustering)
    rng = np.random.default_rng(seed)
    if clustering == "question_country":
        means = _two_way_means(v, clusters, countries_, n_boot, rng)
        alpha = (1.0 - level) / 2.0
        lo, hi = np.quantile(means, [alpha, 1.0 - alpha])
        return Interval(mean, float(lo), float(hi), v.size, n_clusters, clustering)
    sums = np.bincount(clusters, weights=v)
    sizes = np.bincount(clusters).astype(np.float64)
    if sums.size < 2:  # one cluster: nothing to resample
        return Interval(mean, mean, mean, v.size, n_clusters, clustering)
    res = bootstrap((sums, sizes), lambda s, n, axis=-1: s.sum(axis=axis) / n.sum(axis=axis), paired=True,
                    vectorized=True, n_resamples=n_boot, confidence_level=level, method=method, random_state=rng)
    lo, hi = res.confidence_interval
    return Interval(mean, float(lo), float(hi), v.size, n_clusters, clustering)


def paired_difference(a: pd.DataFrame, b: pd.DataFrame, metric: str, *, clustering: str = "question",
                      n_boot: int = 1000, seed: int = 0, level: float = 0.95,
                      key: Sequence[str] = ITEM_KEY) -> Interval:
    """Mean of a[metric] - b[metric] over the items both frames hold (matched on `key`), with its clustered
    interval. Both must hold the same items, each once (a ValueError names what differs): a difference over
    a subset of one row's items would be read as a difference over all of them."""
    key = [k for k in key if k in a.columns and k in b.columns]
    for name, frame in (("a", a), ("b", b)):
        if metric not in frame.columns:
            raise ValueError(f"paired difference: frame {name} has no column {metric!r}")
        if frame.duplicated(key).any():
            raise ValueError(f"paired difference: frame {name} holds an item twice (key {key})")
    joined = a[[*key, metric]].merge(b[[*key, metric]], on=key, how="outer", suffixes=("_a", "_b"),
                                     indicator=True)
    unmatched = joined[joined["_merge"] != "both"]
    if len(unmatched):
        example = unmatched.iloc[0]
        raise ValueError(f"paired difference: {len(unmatched)} item(s) are in only one of the two rows, e.g. "
                         f"{ {k: example[k] for k in key} } (only in {'a' if example['_merge'] == 'left_only' else 'b'})")
    diff = (joined[f"{metric}_a"] - joined[f"{metric}_b"]).to_numpy(np.float64)
    return clustered_interval(diff, questions=joined.get(QUESTION), countries=joined.get(COUNTRY),
                              clustering=clustering, n_boot=n_boot, seed=seed, level=level)
