"""Permutation averaging: copies mapped back to the original option order and summarised per base item."""

from __future__ import annotations

import numpy as np

from survey_sim.data.item import LETTERS, SurveyItem
from survey_sim.evaluation.orders import OptionOrders, expand_permutations


def _item(k: int, qid: str) -> SurveyItem:
    return SurveyItem(group="Kenya", question_id=qid, question="Q?", options=tuple(f"o{j}" for j in range(k)),
                      letters=tuple(LETTERS[:k]), distribution=tuple(np.arange(1, k + 1) / (k * (k + 1) / 2)))


def test_mean_and_spread_equal_the_copies_in_original_order():
    items, base = expand_permutations([_item(3, "a"), _item(5, "b"), _item(2, "c")], 4)
    assert base == [0, 0, 0, 1, 1, 1, 1, 2, 2]
    rng = np.random.default_rng(0)
    probs = np.zeros((len(items), 26))
    for i, it in enumerate(items):
        probs[i, : it.num_options] = rng.dirichlet(np.ones(it.num_options))
    orders = OptionOrders(items, base)
    mean, (low, high, std) = orders.mean(probs), orders.spread(probs)
    ragged = [p[: it.num_options].tolist() for p, it in zip(probs, items)]
    np.testing.assert_array_equal(orders.mean(ragged), mean)
    for b, first in enumerate(orders.first):
        k = items[first].num_options
        copies = np.stack([it.to_original_order(probs[i]) for i, it in enumerate(items) if base[i] == b])
        np.testing.assert_allclose(mean[b, :k], copies.mean(axis=0), rtol=0, atol=1e-15)
        np.testing.assert_allclose(std[b, :k], copies.std(axis=0), rtol=0, atol=1e-15)
        np.testing.assert_array_equal(low[b, :k], copies.min(axis=0))
        np.testing.assert_array_equal(high[b, :k], copies.max(axis=0))
        assert orders.counts[b] == len(copies) and not items[first].transforms
    assert orders.average(np.arange(len(items), dtype=float)).tolist() == [1.0, 4.5, 7.5]
