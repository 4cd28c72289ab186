"""Clustered bootstrap intervals and paired differences (survey_sim.evaluation.intervals) on synthetic clustered data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from survey_sim.evaluation.intervals import clustered_interval, paired_difference


def clustered_values(seed=0, n_questions=30, n_countries=40, q_sd=0.5, c_sd=0.3, noise=0.2):
    """Per-item values with a question effect, a country effect and item noise; returns values, questions,
    countries."""
    rng = np.random.default_rng(seed)
    q = np.repeat(np.arange(n_questions), n_countries)
    c = np.tile(np.arange(n_countries), n_questions)
    v = rng.normal(size=n_questions)[q] * q_sd + rng.normal(size=n_countries)[c] * c_sd \
        + rng.normal(size=q.size) * noise
    return v, q, c


def test_item_level_interval_is_the_iid_one():
    values = np.random.default_rng(1).normal(0.7, 0.1, size=400)
    ci = clustered_interval(values, clustering="item", n_boot=2000, seed=0)
    assert ci.low < values.mean() < ci.high and ci.n_clusters == 400
    assert ci == clustered_interval(values, clustering="item", n_boot=2000, seed=0)
    assert ci.width == pytest.approx(2 * 1.96 * values.std() / np.sqrt(values.size), rel=0.15)
    flat = clustered_interval([0.5] * 10, clustering="item")
    assert (flat.low, flat.high) == (0.5, 0.5)
    assert clustered_interval(values, clustering="item", n_boot=0).low is None
    with pytest.raises(ValueError, match="non-empty"):
        clustered_interval([], clustering="item")
    with pytest.raises(ValueError, match="unknown clustering 'country'"):
        clustered_interval(values, clustering="country")


def test_question_clusters_give_the_between_question_uncertainty():
    v, q, c = clustered_values()
    item = clustered_interval(v, questions=q, clustering="item")
    question = clustered_interval(v, questions=q, clustering="question")
    both = clustered_interval(v, questions=q, countries=c, clustering="question_country")
    assert question.n_clusters == 30 and both.n_clusters == 70 and question.n_items == 1200
    assert question.width > 3 * item.width
    question_means = pd.Series(v).groupby(q).mean()
    se = question_means.std() / np.sqrt(len(question_means))
    assert question.width == pytest.approx(2 * 1.96 * se, rel=0.2)
    assert both.width > question.width  # country effects add uncertainty about new countries
    with pytest.raises(ValueError, match="country labels"):
        clustered_interval(v, questions=q, clustering="question_country")


def _frame(values, q, c, split="val"):
    return pd.DataFrame({"split": split, "group": [f"c{i}" for i in c], "question_id": [f"Q{i}" for i in q],
                         "language": "en", "jsd": values})


def test_paired_difference_cancels_what_the_rows_share():
    v, q, c = clustered_values(seed=2)
    rng = np.random.default_rng(3)
    gain = 0.05 + rng.normal(size=v.size) * 0.05
    a, b = _frame(v + gain, q, c), _frame(v, q, c).sample(frac=1.0, random_state=0)  # rows in another order
    diff = paired_difference(a, b, "jsd")
    assert diff.value == pytest.approx(gain.mean())
    assert diff.low < gain.mean() < diff.high and diff.low > 0
    unpaired = clustered_interval(v + gain, questions=q)
    assert diff.width < unpaired.width / 5
    same = paired_difference(a, a, "jsd")
    assert (same.value, same.low, same.high) == (0.0, 0.0, 0.0)
    with pytest.raises(ValueError, match=r"1 item\(s\) are in only one of the two rows.*only in a"):
        paired_difference(a, b.iloc[1:], "jsd")
    with pytest.raises(ValueError, match="holds an item twice"):
        paired_difference(pd.concat([a, a.iloc[:1]]), b, "jsd")
    with pytest.raises(ValueError, match="no column 'emd'"):
        paired_difference(a, b, "emd")
