"""country_knn baseline with the real all-MiniLM-L6-v2 weights: neighbours are other countries, same subgroup."""

import numpy as np
import pytest

from survey_sim.baselines import make_baseline
from survey_sim.baselines.embeddings import SentenceEncoder, default_model_path
from survey_sim.data.item import SurveyItem
from survey_sim.data.subgroups import group_label
from survey_sim.errors import ModelUnavailableError

try:
    default_model_path()
except ModelUnavailableError as exc:  # pragma: no cover - depends on the environment
    pytest.skip(f"sentence encoder not installed: {exc}", allow_module_level=True)

QUESTION, OPTIONS = "Do you trust your neighbours?", ("Completely", "Somewhat", "Not at all")
WOMEN = (("sex", "female"),)


@pytest.fixture(scope="module")
def encoder():
    return SentenceEncoder(batch_size=4)


def item(country, dist, attributes=(), prompt_group="", question=QUESTION):
    return SurveyItem(group=group_label(country, attributes) if attributes else country, country=country,
                      attributes=attributes, question_id=question[:12], question=question, options=OPTIONS,
                      letters=("A", "B", "C"), distribution=tuple(dist), prompt_group=prompt_group)


TRAIN = [item("Germany", [0.7, 0.2, 0.1]), item("Austria", [0.6, 0.3, 0.1]), item("Brazil", [0.1, 0.2, 0.7])]


def test_k1_takes_the_nearest_other_country_and_never_the_own(encoder):
    knn = make_baseline("country_knn", k=1, encoder=encoder).fit(TRAIN)
    austria, germany, swapped = knn.predict([item("Austria", [1, 0, 0]), item("Germany", [1, 0, 0]),
                                             item("Austria", [1, 0, 0], prompt_group="Brazil")])
    np.testing.assert_allclose(austria, TRAIN[0].distribution)  # Germany, not Austria's own answers
    np.testing.assert_allclose(germany, TRAIN[1].distribution)
    # the country-swap control moves the prediction with the prompt's country, still excluding Austria
    assert not np.allclose(swapped, austria)
    unseen = knn.predict([item("Germany", [1, 0, 0], question="Pick a colour")])[0]
    np.testing.assert_allclose(unseen, np.full(3, 1 / 3))
    assert [reason for _, reason in knn.fallbacks] == ["question not seen in training"]


def test_subgroup_neighbours_are_the_same_subgroup_in_other_countries(encoder):
    train = TRAIN + [item("Germany", [0.9, 0.1, 0.0], WOMEN), item("Brazil", [0.0, 0.1, 0.9], WOMEN),
                     item("Germany", [0.5, 0.5, 0.0], (("sex", "male"),))]
    knn = make_baseline("country_knn", k=1, encoder=encoder).fit(train)
    german_women, austrian_women = knn.predict([item("Germany", [1, 0, 0], WOMEN),
                                                item("Austria", [1, 0, 0], WOMEN)])
    # German women: not German men or the German country row (own country), but women elsewhere: Brazil's
    np.testing.assert_allclose(german_women, [0.0, 0.1, 0.9])
    np.testing.assert_allclose(austrian_women, [0.9, 0.1, 0.0])  # the nearest country's women
