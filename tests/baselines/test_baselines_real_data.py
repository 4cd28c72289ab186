"""The prior baselines on the real WVS splits ($SURVEY_SIM_DATA; skipped without it)."""

import os
from pathlib import Path

import numpy as np
import pytest

from survey_sim.baselines import make_baseline
from survey_sim.evaluation.metrics import aggregate, item_metrics
from survey_sim.paths import DATA_ENV

pytestmark = pytest.mark.real_data


@pytest.fixture(scope="module")
def splits():
    root = os.environ.get(DATA_ENV)
    if not root or not Path(root).is_dir():
        pytest.skip(f"{DATA_ENV} not set: real WVS data unavailable")
    from survey_sim.data.__main__ import compose_data
    from survey_sim.data.splits import load_splits

    return load_splits(compose_data(["data=wvs_en", f"data.root={root}", "data.test_splits=[C2-Q1]"]))


def mean_jsd(items, preds) -> float:
    rows = [item_metrics(it.to_original_order(it.distribution), it.to_original_order(p))
            for it, p in zip(items, preds)]
    return aggregate(rows)["jsd"]


def test_prior_on_unseen_questions_is_uniform(splits):
    prior = make_baseline("prior").fit(splits["train"])
    val = splits["val"]  # C1 x Q2: no validation question is a training question
    preds = prior.predict(val)
    assert prior.n_fallback == len(val) == 1586
    assert all(np.allclose(p, 1 / len(p)) for p in preds)
    assert mean_jsd(val, preds) == pytest.approx(0.6643, abs=5e-4)


def test_prior_on_unseen_countries_beats_uniform(splits):
    items = splits["C2-Q1"]  # new countries, training questions
    prior = make_baseline("prior").fit(splits["train"])
    preds = prior.predict(items)
    assert prior.n_fallback == 0
    uniform = mean_jsd(items, make_baseline("uniform").fit([]).predict(items))
    assert uniform == pytest.approx(0.7606, abs=5e-4)
    assert mean_jsd(items, preds) == pytest.approx(0.8456, abs=5e-4)


def test_prior_loo_on_train_removes_the_own_country(splits):
    train = splits["train"]
    leaky = mean_jsd(train, make_baseline("prior").fit(train).predict(train))
    loo = make_baseline("prior_loo").fit(train)
    fair = mean_jsd(train, loo.predict(train))
    assert loo.n_fallback == 0 and fair < leaky
    assert (leaky, fair) == (pytest.approx(0.8570, abs=5e-4), pytest.approx(0.8540, abs=5e-4))
