"""The noise ceiling: the best score a perfect simulator can expect against a human sample of N respondents.

A human distribution p is itself estimated from N respondents, so even the true p scores below 1 against
the observed sample: the ceiling of an item is E[1-JSD(p, p_hat)] and E[EMD(p, p_hat)] with
N * p_hat ~ Multinomial(N, p) (`jsd` is the paper-compatible 1 - JS distance, `emd` the ordinal EMD over
positions divided by K-1, as in `survey_sim.evaluation.metrics`). The observed distribution stands in for p.

- `expected_emd` is exact: the CDF of p_hat at option j is Binomial(N, F_j) / N, so
  E[EMD] = sum_j E|Binomial(N, F_j)/N - F_j| / (K-1), summed over the binomial probabilities.
- `expected_jsd` is exact for two options (one binomial sum). With more options it approximates the JS
  divergence X = JS(p, p_hat) (nats) by a gamma law with X's mean and variance, so that
  E[sqrt(X)] = sqrt(theta) Gamma(k + 1/2) / Gamma(k), k = E[X]^2 / Var[X], theta = E[X] / k (a scaled
  chi-square, the asymptotic law of 8 N X, is the special case). E[X] is exact: X is a sum of per-option
  terms, each a function of one Binomial(N, p_i) margin; Var[X] adds the exact per-option variances and
  the asymptotic covariances 2 p_i p_j / (8N)^2. The gamma law is accurate when every option expects at
  least one respondent (N p_i >= 1); otherwise `expected_jsd` falls back to `monte_carlo` (seed 0,
  20,000 draws). All within 0.002 of Monte-Carlo for N from 50 to 5,000 (tests/evaluation/test_noise_ceiling.py).
- `monte_carlo` draws the samples (seeded) and is the reference the approximations are tested against.

Non-integer N (a Kish effective sample size under weights) is rounded to the nearest integer >= 1.
Items without a respondent count use an assumed N (default 1,200, about a WVS-7 country sample) and are
counted as assumed.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, MutableMapping
from functools import lru_cache

import numpy as np
from scipy.special import gammaln, rel_entr
from scipy.stats import binom

from survey_sim.evaluation.metrics import _distribution

ASSUMED_N = 1200
MC_DRAWS = 20000
# Binomial outcomes farther than this many standard deviations from the mean carry no mass that matters.
_TAIL_SDS = 14.0


def _sample_size(n: float) -> int:
    if not (isinstance(n, (int, float, np.integer, np.floating)) and math.isfinite(n) and n > 0):
        raise ValueError(f"respondent count must be a positive number, got {n!r}")
    return max(1, round(float(n)))


def _binomial_support(n: int, p: float) -> tuple[np.ndarray, np.ndarray]:
    """Outcomes k of Binomial(n, p) that carry mass, and their probabilities."""
    sd = math.sqrt(n * p * (1.0 - p))
    lo = max(0, math.floor(n * p - _TAIL_SDS * sd) - 2)
    hi = min(n, math.ceil(n * p + _TAIL_SDS * sd) + 2)
    k = np.arange(lo, hi + 1)
    return k, binom.pmf(k, n, p)


def _js_nats(p: np.ndarray, sample: np.ndarray) -> np.ndarray:
    """JS divergence (nats) between p and each row of `sample`."""
    m = (p + sample) / 2.0
    return np.maximum(0.0, 0.5 * (rel_entr(p, m).sum(axis=-1) + rel_entr(sample, m).sum(axis=-1)))


def _js_term_moments(p: float, n: int) -> tuple[float, float]:
    """Mean and variance over k ~ Binomial(n, p) of one option's JS term
    0.5 [p log(2p/(p+x)) + x log(2x/(p+x))], x = k/n."""
    k, w = _binomial_support(n, p)
    x = k / n
    m = (p + x) / 2.0
    term = 0.5 * (rel_entr(p, m) + rel_entr(x, m))
    mean = float((w * term).sum())
    return mean, max(float((w * term * term).sum()) - mean * mean, 0.0)


def _mean_abs_deviation(f: float, n: int) -> float:
    """E|Binomial(n, f)/n - f|."""
    if f <= 0.0 or f >= 1.0:
        return 0.0
    k, w = _binomial_support(n, f)
    return float((w * np.abs(k / n - f)).sum())


def expected_jsd(p, n: float) -> float:
    """Approximate E[1 - JS distance(p, p_hat)] for a multinomial sample of n (see the module docstring)."""
    p, n = _distribution(p, "p"), _sample_size(n)
    return _expected_jsd(tuple(p.tolist()), n)


@lru_cache(maxsize=65536)
def _expected_jsd(p: tuple[float, ...], n: int) -> float:
    support = [pi for pi in p if pi > 0.0]
    if len(support) < 2:
        return 1.0
    if len(support) == 2:  # p_hat is determined by one Binomial(n, p_1)
        k, w = _binomial_support(n, support[0])
        x = np.stack([k / n, 1.0 - k / n], axis=1)
        return 1.0 - float((w * np.sqrt(_js_nats(np.asarray(support), x))).sum())
    if n * min(support) < 1.0:
        return monte_carlo(p, n, draws=MC_DRAWS, seed=0)["jsd"]
    mean = var = 0.0
    for pi in support:
        mean_i, var_i = _js_term_moments(pi, n)
        mean, var = mean + mean_i, var + var_i
    total = sum(support)
    var += (total * total - sum(pi * pi for pi in support)) * 2.0 / (8.0 * n) ** 2
    shape = mean * mean / var
    return 1.0 - math.sqrt(mean / shape) * math.exp(gammaln(shape + 0.5) - gammaln(shape))


def expected_emd(p, n: float) -> float:
    """Exact E[EMD(p, p_hat)] (positions 0..K-1, divided by K-1) for a multinomial sample of n."""
    p, n = _distribution(p, "p"), _sample_size(n)
    return _expected_emd(tuple(p.tolist()), n)


@lru_cache(maxsize=65536)
def _expected_emd(p: tuple[float, ...], n: int) -> float:
    if len(p) < 2:
        return 0.0
    cdf = np.minimum(np.cumsum(p)[:-1], 1.0)
    return sum(_mean_abs_deviation(float(f), n) for f in cdf) / (len(p) - 1)


def monte_carlo(p, n: float, draws: int = 20000, seed: int = 0) -> dict[str, float]:
    """Seeded Monte-Carlo estimate of the ceiling: mean 1-JSD and EMD of p against `draws` samples of n."""
    p, n = _distribution(p, "p"), _sample_size(n)
    if draws < 1:
        raise ValueError(f"draws must be >= 1, got {draws}")
    sample = np.random.default_rng(seed).multinomial(n, p, size=draws) / n
    js = _js_nats(p, sample)
    diff = np.abs(np.cumsum(sample - p, axis=1)[:, :-1]).sum(axis=1) / max(p.size - 1, 1)
    return {"jsd": float(1.0 - np.sqrt(js).mean()), "emd": float(diff.mean())}


def item_ceiling(p, n: float | None, assumed_n: float = ASSUMED_N) -> dict:
    """The ceiling of one item: `ceiling_jsd`, `ceiling_emd`, the N used and whether it was assumed."""
    assumed = n is None
    size = assumed_n if assumed else n
    return {"ceiling_jsd": expected_jsd(p, size), "ceiling_emd": expected_emd(p, size),
            "ceiling_n": float(size), "ceiling_n_assumed": assumed}


def add_ceiling(rows: Iterable[MutableMapping], assumed_n: float = ASSUMED_N) -> None:
    """Add the item ceiling to prediction rows (in place), from their `human` and effective sample size:
    `n_effective` (Kish's, for weighted subgroup items), else `n_respondents`, else `assumed_n`."""
    _sample_size(assumed_n)
    for row in rows:
        n = row.get("n_effective")
        row.update(item_ceiling(row["human"], row.get("n_respondents") if n is None else n, assumed_n))


def ceiling_summary(rows: Iterable[Mapping]) -> dict:
    """Mean ceiling over rows that carry one: `ceiling_jsd`, `ceiling_emd`, mean N, and how many items used
    the assumed N (`ceiling_n_assumed`, with that N as `assumed_n`); empty when no row has a ceiling."""
    rows = [r for r in rows if r.get("ceiling_jsd") is not None]
    if not rows:
        return {}
    assumed = [r["ceiling_n"] for r in rows if r.get("ceiling_n_assumed")]
    out = {"ceiling_jsd": float(np.mean([r["ceiling_jsd"] for r in rows])),
           "ceiling_emd": float(np.mean([r["ceiling_emd"] for r in rows])),
           "ceiling_n_mean": float(np.mean([r["ceiling_n"] for r in rows])),
           "ceiling_n_assumed": len(assumed)}
    if assumed:
        out["assumed_n"] = float(assumed[0])
    return out
