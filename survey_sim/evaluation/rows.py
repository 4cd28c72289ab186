"""Turn predicted option distributions into prediction rows and per-split metrics.

Predictions arrive in each item's current option order (possibly shuffled or cyclically shifted); they are
mapped back to the original order before any metric, and predictions of the shifted copies of one item
are averaged into one row (permutation averaging, `survey_sim.evaluation.orders`). `first_option_mass` and
`a_bias` refer to the option shown first in the item as evaluated (after any shuffling; for permutation
averaging, the unshifted copy).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

import numpy as np

from survey_sim.data.item import SurveyItem
from survey_sim.errors import SurveySimError
from survey_sim.evaluation.metrics import aggregate, item_metrics
from survey_sim.evaluation.noise_ceiling import ceiling_summary
from survey_sim.evaluation.orders import OptionOrders

log = logging.getLogger(__name__)


def prediction_rows(items: Sequence[SurveyItem], probs: Sequence[Sequence[float]],
                    base: Sequence[int] | None = None, letter_mass: Sequence[float] | None = None) -> list[dict]:
    """One row per base item: human and predicted distributions in original order, spread, metrics, and
    (given per item) the letter mass, averaged over an item's permuted copies."""
    base = list(range(len(items))) if base is None else list(base)
    if len(base) != len(items) or len(probs) != len(items):
        raise ValueError(f"{len(items)} items, {len(probs)} predictions, {len(base)} base indices")
    if letter_mass is not None and len(letter_mass) != len(items):
        raise ValueError(f"{len(items)} items, {len(letter_mass)} letter masses")
    orders = OptionOrders(items, base)
    means, (_, _, stds) = orders.mean(probs), orders.spread(probs)
    masses = None if letter_mass is None else orders.average(np.asarray(letter_mass, dtype=np.float64))
    rows = []
    for b, first in enumerate(orders.first):
        item = items[first]
        q = means[b, : item.num_options]
        if not np.all(np.isfinite(q)):
            raise SurveySimError(f"split {item.split}, item {base[first]} ({item.group!r}, question "
                                 f"{item.question_id!r}): the predicted distribution {q.tolist()} is not finite; "
                                 "the model's outputs overflowed (e.g. float16 weights) or its training diverged")
        q = q / q.sum()
        human = np.asarray(item.to_original_order(item.distribution))
        order = list(item.option_order)
        row = {
            "split": item.split, "group": item.group, "prompt_group": item.prompt_group,
            "country": item.country, "attributes": dict(item.attributes), "n_effective": item.n_effective,
            "question_id": item.question_id, "language": item.language,
            "letters": list(item.letters),  # transforms keep the letter sequence at positions
            "options": [item.options[order.index(j)] for j in range(item.num_options)],
            "option_order": order, "transforms": list(item.transforms), "source": item.source,
            "n_respondents": item.n_respondents,
            "human": human.tolist(), "pred": q.tolist(), "n_permutations": int(orders.counts[b]),
            "pred_std": stds[b, : item.num_options].tolist(),
        }
        # A-bias: mass on the option SHOWN first (in the base item's presentation) minus the human mass on it;
        # without shuffling that is the original first option.
        row.update(item_metrics(human, q, first_index=order[0], positions=item.scale_positions(),
                                ordinal=item.ordinal))
        if masses is not None:
            row["letter_mass"] = float(masses[b])
        rows.append(row)
    return rows


def split_metrics(rows: Sequence[dict]) -> dict:
    """Mean metrics over the rows of one split, with n_items, the mean letter mass where rows have it, and the
    mean noise ceiling when the rows have one (`survey_sim.evaluation.noise_ceiling.add_ceiling`)."""
    rows = list(rows)
    return {**aggregate(rows), **ceiling_summary(rows)}


def warn_low_letter_mass(by_split: Mapping[str, Mapping[str, float]], threshold: float, *, model: str,
                         prompt: str) -> list[str]:
    """Log a warning for each split whose mean letter mass is below `threshold`; returns those splits.

    A distribution renormalised over letters that the model barely predicts looks confident but mostly
    reflects tokens the readout throws away (the prompt does not lead the model to answer with a letter)."""
    low = [s for s, m in by_split.items() if m.get("letter_mass") is not None and m["letter_mass"] < threshold]
    for split in low:
        log.warning("split %s: mean letter mass %.3f < %.2f (model %s, prompt %s): the option letters get little "
                    "of the next-token probability, so the renormalised distribution over them may mean little",
                    split, by_split[split]["letter_mass"], threshold, model, prompt)
    return low
