"""uniform, prior, prior_loo and the registry, on small hand-made item sets."""

import logging

import numpy as np
import pytest

from survey_sim.baselines import BASELINES, make_baseline
from survey_sim.data.item import SurveyItem
from survey_sim.errors import ConfigError, SurveySimError


def item(group, qid, dist, letters=None, order=None, language="en"):
    k = len(dist)
    letters = letters or "ABCDEFGHIJ"[:k]
    return SurveyItem(group=group, question_id=qid, question=f"Question {qid}?",
                      options=tuple(f"opt {qid}{i}" for i in range(k)), letters=tuple(letters),
                      distribution=tuple(dist), language=language, option_order=order or ())


TRAIN = [
    item("A", "q1", [0.5, 0.5, 0.0]),
    item("B", "q1", [0.1, 0.2, 0.7]),
    item("C", "q1", [0.3, 0.3, 0.4]),
    item("A", "q2", [0.9, 0.1]),
    item("B", "q2", [0.2, 0.8]),
    item("A", "q3", [0.6, 0.4]),
]


def test_registry_names_and_errors():
    assert {"uniform", "prior", "prior_loo", "knn"} <= set(BASELINES)
    with pytest.raises(ConfigError, match="knn, prior, prior_loo, uniform"):
        make_baseline("nope")
    with pytest.raises(ConfigError, match="unknown option"):
        make_baseline("prior", k=3)
    with pytest.raises(SurveySimError, match="fit"):
        make_baseline("uniform").predict(TRAIN)


def test_uniform_is_exactly_one_over_k():
    preds = make_baseline("uniform").fit(TRAIN).predict([item("Z", "q9", [1, 2, 3, 4]), TRAIN[3]])
    np.testing.assert_array_equal(preds[0], np.full(4, 0.25))
    np.testing.assert_array_equal(preds[1], np.full(2, 0.5))


def test_prior_is_country_mean_and_counts_unseen_questions(caplog):
    prior = make_baseline("prior").fit(TRAIN)
    tests = [item("D", "q1", [1, 0, 0]), item("D", "q2", [0, 1]), item("D", "q7", [0.2, 0.8]),
             item("D", "q3", [0.2, 0.3, 0.5])]  # q3 with 3 options: not the trained (q3, AB) question
    with caplog.at_level(logging.WARNING):
        preds = prior.predict(tests)
    np.testing.assert_allclose(preds[0], [0.3, 1 / 3, 11 / 30])
    np.testing.assert_allclose(preds[1], [0.55, 0.45])
    np.testing.assert_array_equal(preds[2], [0.5, 0.5])
    np.testing.assert_array_equal(preds[3], np.full(3, 1 / 3))
    assert prior.n_fallback == 2
    assert [key for key, _ in prior.fallbacks] == [("D", "q7", "en"), ("D", "q3", "en")]
    assert "2 of 4 items fell back" in caplog.text
    prior.predict(tests[:2])
    assert prior.n_fallback == 0
    assert prior.stats["items"] == 6 and prior.stats["fallback"] == 2
    assert prior.stats["fallback_reasons"] == {"question not seen in training": 2}


def test_prior_weights_countries_equally_and_follows_option_order():
    # Country A appears twice (e.g. an English and a Chinese copy): it counts once.
    train = TRAIN + [item("A", "q2", [0.7, 0.3], language="zh")]
    preds = make_baseline("prior").fit(train).predict([item("D", "q2", [0.5, 0.5])])
    np.testing.assert_allclose(preds[0], [(0.8 + 0.2) / 2, (0.2 + 0.8) / 2])
    # Shuffled test item: position 0 holds original option 2.
    shuffled = item("D", "q1", [0.4, 0.3, 0.3], order=[2, 0, 1])
    pred = make_baseline("prior").fit(TRAIN).predict([shuffled])[0]
    np.testing.assert_allclose(pred, [11 / 30, 0.3, 1 / 3])


def test_prior_loo_leaves_out_own_country():
    loo = make_baseline("prior_loo").fit(TRAIN)
    preds = loo.predict([item("A", "q1", [1, 0, 0]), item("B", "q2", [1, 0]), item("D", "q2", [1, 0]),
                         item("A", "q3", [1, 0])])
    np.testing.assert_allclose(preds[0], [0.2, 0.25, 0.55])  # mean of B and C
    np.testing.assert_allclose(preds[1], [0.9, 0.1])  # only A left
    np.testing.assert_allclose(preds[2], [0.55, 0.45])  # D not in training: plain prior
    np.testing.assert_array_equal(preds[3], [0.5, 0.5])  # only its own country answered q3
    assert loo.n_fallback == 1 and "own country" in loo.fallbacks[0][1]
