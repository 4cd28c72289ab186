"""Subgroup items from respondent rows: recovery of known subgroup effects, counts, Kish N, skips, bad input."""

from __future__ import annotations

import json
import logging

import numpy as np
import pandas as pd
import pytest
import yaml

from survey_sim.data.__main__ import main
from survey_sim.data.demo import make_demo_respondents, make_demo_survey
from survey_sim.data.sources import build_wvs_items, load_processed
from survey_sim.data.sources.wvs_raw import items_from_respondents
from survey_sim.data.subgroups import band_labels, parse_attribute, select_attributes
from survey_sim.errors import ConfigError, SurveyDataError
from tests.conftest import REPO

ATTRIBUTES = yaml.safe_load((REPO / "conf" / "data" / "attributes" / "wvs7.yaml").read_text(encoding="utf-8"))
SEX = {"male": 1, "female": 2}
AGE = {"18-29": (18, 30), "30-49": (30, 50), "50+": (50, 200)}


@pytest.fixture(scope="module", params=["ones", "skewed"])
def respondents(request):
    return make_demo_respondents(seed=5, n_countries=4, n_questions=6, n_respondents=4000, weights=request.param)


def build(respondents, group_by=("sex", "age_band"), **kwargs):
    return items_from_respondents(respondents.frame, respondents.book, "en", file="demo rows", source="demo",
                                  group_by=select_attributes(ATTRIBUTES, group_by),
                                  country_names=respondents.country_names, **kwargs)


def cell_mask(respondents, item):
    """Rows of the item's cell that answered its question, selected independently of the builder."""
    frame, attrs = respondents.frame, dict(item.attributes)
    code = {v: k for k, v in respondents.country_names.items()}[item.country]
    mask = (frame["B_COUNTRY"] == code) & (frame[f"Q{item.question_id}"] > 0)
    if "sex" in attrs:
        mask &= frame["Q260"] == SEX[attrs["sex"]]
    if "age" in attrs:
        lo, hi = AGE[attrs["age"]]
        mask &= (frame["Q262"] >= lo) & (frame["Q262"] < hi)
    return mask.to_numpy()


@pytest.mark.parametrize("weighted", [False, True])
def test_recovers_each_cell_within_sampling_error(respondents, weighted):
    result = build(respondents, weighted=weighted)
    assert len(result.items) == 4 * 6 * 6  # countries x sex x age bands x questions, every cell >= 100
    weights = respondents.frame["W_WEIGHT"].to_numpy()
    worst = 0.0
    for item in result.items:
        mask = cell_mask(respondents, item)
        assert item.n_respondents == mask.sum()
        w = weights[mask] if weighted else np.ones(mask.sum())
        assert item.n_effective == pytest.approx(w.sum() ** 2 / (w * w).sum())
        truth = respondents.true_distribution(mask, item.question_id, weighted)
        se = np.sqrt(truth * (1 - truth) / item.n_effective)
        worst = max(worst, float((np.abs(np.asarray(item.distribution) - truth) / se).max()))
    assert worst < 4.5  # 864 cells x options: |z| beyond 4.5 has odds below 1 in 10,000
    if respondents.frame["W_WEIGHT"].nunique() == 1:  # weights all ones: weighted = unweighted, N_eff = N
        assert all(it.n_effective == it.n_respondents for it in result.items)
    elif weighted:
        assert all(it.n_effective < it.n_respondents for it in result.items)


def test_groups_really_differ_and_weights_matter():
    """The demo's subgroup effects are large next to sampling error, and skewed weights move country totals."""
    rows = make_demo_respondents(seed=5, n_countries=4, n_questions=6, n_respondents=4000, weights="skewed")
    items = {(it.group, it.question_id): it for it in build(rows, group_by=("sex",)).items}
    gaps = [np.abs(np.subtract(items[f"{c} | sex: female", q].distribution,
                               items[f"{c} | sex: male", q].distribution)).sum() / 2
            for c in rows.country_names.values() for q in ("D1", "D2", "D3", "D4", "D5", "D6")]
    assert np.median(gaps) > 0.08  # a TV distance many times the ~0.02 of sampling noise at N ~ 2,000
    country = {w: {(it.group, it.question_id): it for it in build(rows, group_by=(), weighted=w).items}
               for w in (False, True)}
    shifts = [np.abs(np.subtract(country[True][k].distribution, country[False][k].distribution)).sum() / 2
              for k in country[True]]
    assert max(shifts) > 0.03
    for it in build(rows, group_by=("sex",), weighted=True).items:  # every respondent of the country
        assert it.country_distribution == pytest.approx(country[True][it.country, it.question_id].distribution)


def test_counts_skips_and_min_cell(respondents, caplog):
    with caplog.at_level(logging.WARNING):
        result = build(respondents, group_by=("sex", "age_band", "education"), min_cell=250)
    skipped = dict(result.skipped)
    frame = respondents.frame
    assert skipped["Q260"].startswith(f"{int((frame['Q260'] < 0).sum())} respondents without a value of "
                                      "attribute 'sex'")
    assert skipped["Q275"].startswith(f"{int((frame['Q275'] < 0).sum())} respondents without a value")
    small = [k for k, why in result.skipped if "fewer than min_cell=250" in why]
    built = {it.group for it in result.items}
    assert small and not set(small) & built
    assert all(it.n_respondents >= 250 for it in result.items)
    assert f"skipped {len(result.skipped)} record(s)" in caplog.text
    # an empty cell (no respondent at all) is a counted skip too
    only_young = respondents.frame[respondents.frame["Q262"].between(18, 29)]
    result = items_from_respondents(only_young.reset_index(drop=True), respondents.book, "en", file="f",
                                    source="s", group_by=select_attributes(ATTRIBUTES, ["age_band"]),
                                    country_names=respondents.country_names)
    empty = [(k, why) for k, why in result.skipped if why.startswith("0 respondents")]
    assert len(empty) == 4 * 2 and all(" | age: " in k for k, _ in empty)


def test_demo_subgroup_survey_names_groups_in_words():
    splits = make_demo_survey(seed=1, n_countries=5, n_questions=8, n_respondents=1500,
                              group_by=["sex", "age_band"], attributes=ATTRIBUTES)
    items = [it for v in splits.values() for it in v]
    assert all(v for v in splits.values())
    assert {dict(it.attributes)["sex"] for it in items} == {"male", "female"}
    assert {dict(it.attributes)["age"] for it in items} == {"18-29", "30-49", "50+"}
    it = items[0]
    assert it.group == f"{it.country} | sex: {dict(it.attributes)['sex']}, age: {dict(it.attributes)['age']}"
    assert len({it.key for it in items}) == len(items)
    with pytest.raises(ConfigError, match="attribute definitions"):
        make_demo_survey(group_by=["sex"])


def test_bad_attribute_definitions_and_edges():
    with pytest.raises(ConfigError, match=r"unknown attribute\(s\) \['religion'\]"):
        select_attributes(ATTRIBUTES, ["sex", "religion"])
    with pytest.raises(ConfigError, match="not strictly increasing"):
        parse_attribute("age_band", {"column": "Q262", "edges": [18, 50, 30]})
    with pytest.raises(ConfigError, match="not strictly increasing"):
        parse_attribute("age_band", {"column": "Q262", "edges": [18, 18, 30]})
    with pytest.raises(ConfigError, match="exactly one of values"):
        parse_attribute("x", {"column": "Q1"})
    with pytest.raises(ConfigError, match="negative"):
        parse_attribute("x", {"column": "Q1", "values": {-1: "dk"}})
    assert band_labels((18.0, 30.0, 50.0)) == ["18-29", "30-49", "50+"]
    assert band_labels((0.5, 2.0)) == ["0.5-<2", "2+"]


def write_raw(tmp_path, **columns_override) -> tuple:
    """A small WVS-layout CSV (Andorra, Germany, Northern Ireland) with sex, age and two questions, and
    its questionnaire; women answer Q1 'Very important' far more often."""
    rng = np.random.default_rng(3)
    n = 1800
    country = np.repeat([20, 276, 909], n // 3)
    sex = rng.choice([1, 2, -2], size=n, p=[0.49, 0.49, 0.02])
    age = rng.integers(18, 90, size=n)
    q1 = np.where(rng.random(n) < np.where(sex == 2, 0.7, 0.2), 1, rng.integers(2, 5, size=n))
    columns = {"B_COUNTRY": country, "W_WEIGHT": rng.uniform(0.5, 2.0, n), "Q260": sex, "Q262": age, "Q1": q1,
               "Q164": rng.integers(1, 11, size=n)}
    columns.update(columns_override)
    raw = tmp_path / "raw.csv"
    pd.DataFrame(columns).to_csv(raw, index=False)
    book = tmp_path / "questionnaire_en.json"
    trailer = " \nHere are the options: \n"
    book.write_text(json.dumps([
        {"id": "1", "split": "Q1", "input": "How important is family?" + trailer,
         "options": ["(A)Very important", "(B)Rather important", "(C)Not very important", "(D)Not at all important"]},
        {"id": "164", "split": "Q2", "input": "How important is God in your life?" + trailer,
         "options": [f"({chr(65 + i)}){i + 1}" for i in range(10)]}]), encoding="utf-8")
    return raw, book


def test_cli_builds_subgroup_files_that_load_back(tmp_path, capsys):
    raw, book = write_raw(tmp_path)
    out = tmp_path / "out"
    assert main(["build-wvs", "--raw", str(raw), "--questionnaire", str(book), "--out", str(out),
                 "--group-by", "sex,age_band", "--weighted", "--min-cell", "30"]) == 0
    printed = capsys.readouterr().out
    assert "Northern Ireland: 600 respondents, country excluded by name" in printed
    records = json.loads((out / "wvs" / "train_en.json").read_text(encoding="utf-8"))
    assert {tuple(r["attributes"].items()) for r in records} >= {(("sex", "female"), ("age", "18-29"))}
    assert all(r["instruction"].startswith("How would someone from ") for r in records)
    items = load_processed(out / "wvs" / "train_en.json").items
    assert {it.country for it in items} == {"Andorra", "Germany"}  # C1 countries x Q1 questions
    female = next(it for it in items if it.group == "Andorra | sex: female, age: 30-49")
    male = next(it for it in items if it.group == "Andorra | sex: male, age: 30-49")
    assert female.distribution[0] > male.distribution[0] + 0.3
    assert female.n_effective < female.n_respondents


def test_country_builds_keep_every_country_but_northern_ireland(tmp_path):
    raw, book = write_raw(tmp_path)
    result = build_wvs_items(raw, book)
    assert {it.group for it in result.items} == {"Andorra", "Germany"}
    assert ("Northern Ireland", "600 respondents, country excluded by name (excluded_countries)") in result.skipped
    result = build_wvs_items(raw, book, min_respondents=601, excluded_countries=())
    assert not result.items
    assert [k for k, _ in result.skipped] == ["Andorra", "Germany", "Northern Ireland"]


def test_missing_and_all_missing_attribute_columns(tmp_path):
    raw, book = write_raw(tmp_path)
    with pytest.raises(SurveyDataError, match="no column Q275 for attribute 'education'") as err:
        build_wvs_items(raw, book, group_by=select_attributes(ATTRIBUTES, ["education"]))
    assert err.value.field == "Q275"
    raw, book = write_raw(tmp_path, Q260=np.full(1800, -5))
    with pytest.raises(SurveyDataError, match="attribute 'sex': no respondent has a value"):
        build_wvs_items(raw, book, group_by=select_attributes(ATTRIBUTES, ["sex"]))
    assert main(["build-wvs", "--raw", str(raw), "--questionnaire", str(book), "--out", str(tmp_path / "o"),
                 "--group-by", "sex,religion"]) == 1
