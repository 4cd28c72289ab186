"""The split registry (`survey_sim.data.registry`): question-id ranges and the paper's country and question sets."""

import pytest

from survey_sim.data.__main__ import compose_data
from survey_sim.data.registry import Registry, parse_ids
from survey_sim.errors import ConfigError


def test_parse_ids():
    assert parse_ids("1-3, 7") == {1, 2, 3, 7}
    assert parse_ids(["Q5", "q9-q10"]) == {5, 9, 10}
    with pytest.raises(ConfigError, match="bad question id"):
        parse_ids("1-x")


def test_registry_sets_follow_the_paper():
    reg = Registry.from_config(compose_data(["data=wvs_en", "data.root=/nowhere"]).registry)
    train = reg.splits["train"]
    assert len(train.countries) == 46 and train.questions == frozenset(range(1, 164)) - {82, *range(94, 106)}
    assert reg.splits["C3-Q3"].questions == frozenset(range(199, 260)) - {223}
    assert "Nigeria" in reg.splits["C2-Q1"].countries and "Nigeria" in reg.splits["C3-Q1"].countries
    assert "Czechia" in reg.splits["Pew-C3"].countries and reg.splits["Pew-C3"].questions is None
    assert [s for s in reg.splits if reg.splits[s].paper_items is None] == ["C2-Q2", "C3-Q2", "Pew-C'1", "Pew-C3",
                                                                            "dev"]
