"""The simulation's tidy table: one row per (country or subgroup, question, option), averaged over option orders."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from survey_sim.data.item import LETTERS, SurveyItem
from survey_sim.evaluation.orders import OptionOrders


def average_copies(items: Sequence[SurveyItem], probs: np.ndarray, base: Sequence[int]) -> list[dict]:
    """Per base item: the copies' predictions in original order, their mean, min, max and std."""
    orders = OptionOrders(items, base)
    means, (lows, highs, stds) = orders.mean(probs), orders.spread(probs)
    out = []
    for b, first in enumerate(orders.first):
        k = items[first].num_options
        mean = means[b, :k]
        out.append({"mean": mean / mean.sum(), "low": lows[b, :k], "high": highs[b, :k], "std": stds[b, :k],
                    "n": int(orders.counts[b])})
    return out


def tidy_table(items: Sequence[SurveyItem], stats: Sequence[dict]) -> pd.DataFrame:
    """One row per (country, question, option): probability, permutation interval and per-item summaries."""
    records = []
    for item, s in zip(items, stats):
        p = s["mean"]
        top = int(np.argmax(p))
        entropy = float(-(p[p > 0] * np.log2(p[p > 0])).sum())
        for j, label in enumerate(item.options):
            records.append({
                "country": item.country, "group": item.group, "question_id": item.question_id,
                "question": item.question, **{f"attribute:{k}": v for k, v in item.attributes},
                "option_index": j, "letter": LETTERS[j], "option": label, "probability": float(p[j]),
                "probability_low": float(s["low"][j]), "probability_high": float(s["high"][j]),
                "probability_std": float(s["std"][j]), "predicted_majority": item.options[top],
                "majority_probability": float(p[top]), "entropy_bits": entropy,
                "n_permutations": int(s["n"]), "ordinal": bool(item.ordinal), "language": item.language})
    return pd.DataFrame.from_records(records)
