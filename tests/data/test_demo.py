"""The synthetic demo survey: deterministic, labelled synthetic, with country and question effects."""

import numpy as np
import pytest

from survey_sim.data.demo import COUNTRIES, FLAG, SOURCE, SPLITS, make_demo_survey
from survey_sim.errors import ConfigError


@pytest.fixture(scope="module")
def survey():
    return make_demo_survey()


def test_deterministic_and_seeded(survey):
    assert make_demo_survey() == survey
    other = make_demo_survey(seed=1)
    assert [it.distribution for it in other["train"]] != [it.distribution for it in survey["train"]]


def test_splits_non_empty_and_labelled_synthetic(survey):
    assert tuple(survey) == SPLITS
    assert all(survey[name] for name in SPLITS)
    for name, items in survey.items():
        for it in items:
            assert it.split == name and it.source == SOURCE and FLAG in it.flags
            assert it.group in COUNTRIES and 3 <= it.num_options <= 5 and it.ordinal
    assert 200 <= sum(map(len, survey.values())) <= 600


def test_unseen_splits_are_disjoint(survey):
    def countries(name):
        return {it.group for it in survey[name]}

    def questions(name):
        return {it.question_id for it in survey[name]}

    seen_c, seen_q = countries("train"), questions("train")
    assert countries("val") == seen_c and not questions("val") & seen_q
    assert not countries("test-unseen-country") & seen_c and questions("test-unseen-country") == seen_q
    assert countries("test-unseen-question") == seen_c
    assert not questions("test-unseen-question") & (seen_q | questions("val"))
    assert not countries("test-unseen-both") & seen_c
    assert questions("test-unseen-both") == questions("test-unseen-question")
    keys = [it.key for items in survey.values() for it in items]
    assert len(keys) == len(set(keys))


def test_country_and_question_effects(survey):
    """Two-way decomposition of the mean answer position: both main effects and the interaction matter."""
    items = [it for v in survey.values() for it in v]
    groups = sorted({it.group for it in items})
    qids = sorted({it.question_id for it in items})
    table = np.full((len(groups), len(qids)), np.nan)
    for it in items:
        table[groups.index(it.group), qids.index(it.question_id)] = (
            np.dot(it.distribution, np.arange(it.num_options)) / (it.num_options - 1))
    table = table[:, ~np.isnan(table).any(axis=0)]  # questions asked of every country
    grand = table.mean()
    total = ((table - grand) ** 2).sum()
    country = ((table.mean(axis=1) - grand) ** 2).sum() * table.shape[1] / total
    question = ((table.mean(axis=0) - grand) ** 2).sum() * table.shape[0] / total
    assert country > 0.05 and question > 0.15 and 1 - country - question > 0.1


def test_bad_sizes_are_config_errors():
    with pytest.raises(ConfigError, match="n_countries"):
        make_demo_survey(n_countries=100)
    with pytest.raises(ConfigError, match="n_questions"):
        make_demo_survey(n_questions=2)
