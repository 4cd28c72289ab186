"""The country table: canonical names, aliases, Pew sample flags, ISO codes, resolution of user input."""

from __future__ import annotations

import json
import re

import pytest

from survey_sim.data.countries import (
    ALIASES,
    COUNTRY_NAMES,
    ISO_ALPHA2,
    ISO_ALPHA3,
    ISO_NUMERIC,
    canonical_country,
    parse_country_label,
    resolve_country,
)
from survey_sim.errors import ConfigError, SurveyDataError

# The 64 countries and territories of the WVS-7 cross-national file (v5.0), by B_COUNTRY code.
WVS7 = {
    20: "Andorra", 32: "Argentina", 36: "Australia", 50: "Bangladesh", 51: "Armenia", 68: "Bolivia",
    76: "Brazil", 104: "Myanmar", 124: "Canada", 152: "Chile", 156: "China", 158: "Taiwan ROC",
    170: "Colombia", 196: "Cyprus", 203: "Czechia", 218: "Ecuador", 231: "Ethiopia", 276: "Germany",
    300: "Greece", 320: "Guatemala", 344: "Hong Kong SAR", 360: "Indonesia", 364: "Iran", 368: "Iraq",
    392: "Japan", 398: "Kazakhstan", 400: "Jordan", 404: "Kenya", 410: "South Korea", 417: "Kyrgyzstan",
    422: "Lebanon", 434: "Libya", 446: "Macao SAR", 458: "Malaysia", 462: "Maldives", 484: "Mexico",
    496: "Mongolia", 504: "Morocco", 528: "Netherlands", 554: "New Zealand", 558: "Nicaragua",
    566: "Nigeria", 586: "Pakistan", 604: "Peru", 608: "Philippines", 630: "Puerto Rico", 642: "Romania",
    643: "Russia", 688: "Serbia", 702: "Singapore", 703: "Slovakia", 704: "Vietnam", 716: "Zimbabwe",
    762: "Tajikistan", 764: "Thailand", 788: "Tunisia", 792: "Turkey", 804: "Ukraine", 818: "Egypt",
    826: "Great Britain", 840: "United States", 858: "Uruguay", 862: "Venezuela", 909: "Northern Ireland",
}


def test_iso_numeric_covers_every_wvs7_country_with_wvs_names():
    for code, name in WVS7.items():
        assert ISO_NUMERIC[code] == name
    assert len(ISO_NUMERIC) == 250  # the 249 ISO 3166-1 countries and Northern Ireland


def test_alpha_codes_and_numeric_agree():
    assert ISO_ALPHA3["DEU"] == ISO_ALPHA2["DE"] == ISO_NUMERIC[276] == "Germany"
    assert ISO_ALPHA3["TWN"] == "Taiwan ROC" and ISO_ALPHA2["GB"] == "Great Britain"
    assert set(ISO_ALPHA2.values()) == set(ISO_ALPHA3.values()) == COUNTRY_NAMES - {"Northern Ireland"}


@pytest.mark.parametrize(("alias", "canonical"), [
    ("Czech Rep.", "Czechia"), ("Britain", "Great Britain"), ("S. Korea", "South Korea"),
    ("S. Africa", "South Africa"), ("Taiwan", "Taiwan ROC"), ("Macau SAR", "Macao SAR"),
    ("Palest. ter.", "Palestine"), ("Bosnia Herzegovina", "Bosnia and Herzegovina"),
    ("Ivory Coast", "Côte d'Ivoire"), ("Cote d'Ivoire", "Côte d'Ivoire"), ("Russian Federation", "Russia"),
    ("Türkiye", "Turkey"), ("Viet Nam", "Vietnam"), ("  united   STATES ", "United States"),
    ("Korea, Republic of", "South Korea"), ("Hong Kong", "Hong Kong SAR"),
])
def test_aliases_map_to_one_canonical_name(alias, canonical):
    assert canonical_country(alias) == canonical
    assert canonical_country(canonical) == canonical


def test_every_alias_targets_a_canonical_name():
    assert set(ALIASES.values()) <= COUNTRY_NAMES


def test_unknown_country_names_close_matches():
    with pytest.raises(SurveyDataError, match=r"unknown country 'Germny'.*Germany"):
        canonical_country("Germny")
    with pytest.raises(SurveyDataError, match="non-empty string"):
        canonical_country("  ")


@pytest.mark.parametrize(("label", "expected"), [
    ("Nigeria (Non-national sample)", ("Nigeria", ("non_national_sample",))),
    ("India (Current national sample)", ("India", ("current_national_sample",))),
    ("India (Old national sample)", ("India", ("old_national_sample",))),
    ("S. Africa (Non-national sample)", ("South Africa", ("non_national_sample",))),
    ("Ivory Coast (Non-national sample)", ("Côte d'Ivoire", ("non_national_sample",))),
    ("Falkland Islands (Malvinas)", ("Falkland Islands", ())),
    ("Germany", ("Germany", ())),
])
def test_parse_country_label_keeps_sample_flags(label, expected):
    assert parse_country_label(label) == expected


def test_parse_country_label_rejects_unknown_suffix():
    with pytest.raises(SurveyDataError, match="unknown country"):
        parse_country_label("Germany (West)")


@pytest.mark.parametrize(("given", "expected"), [
    ("DEU", "Germany"), ("de", "Germany"), (276, "Germany"), ("276", "Germany"), ("gbr", "Great Britain"),
    (909, "Northern Ireland"), ("Britain", "Great Britain"), ("Nigeria (Non-national sample)", "Nigeria"),
])
def test_resolve_country_accepts_names_and_codes(given, expected):
    assert resolve_country(given) == expected


def test_resolve_country_against_known_groups():
    known = ["Germany", "France", "Freedonia"]
    assert resolve_country("DE", known=known) == "Germany"
    assert resolve_country("Freedonia", known=known) == "Freedonia"  # a demo group that is no country
    with pytest.raises(ConfigError, match=r"'Japan' \(Japan\) is not in the data"):
        resolve_country("Japan", known=known)
    with pytest.raises(ConfigError, match="close matches: Freedonia"):
        resolve_country("Fredonia", known=known)
    for bad in ("XYZ", 999, "", True):
        with pytest.raises(ConfigError):
            resolve_country(bad)


def test_every_label_of_the_real_data_parses(data_root):
    labels = set()
    for name in ("wvs/train_en.json", "wvs/valid_en.json", "wvs/valid_zh.json", "wvs/test_en.json",
                 "pew/global_pew_test.json"):
        for record in json.loads((data_root / name).read_text(encoding="utf-8")):
            labels.add(re.search(r"from (.+) answer|来自(.+)的人", record["instruction"]).group(1, 2))
    labels = {a or b for a, b in labels}
    parsed = {label: parse_country_label(label) for label in labels}
    wvs = {label for label, (name, flags) in parsed.items() if name == label and not flags}
    assert len(labels) >= 131 and {"Taiwan ROC", "Macao SAR", "Great Britain", "Hong Kong SAR"} <= wvs
    dists = json.loads((data_root / "wvs/country_distributions.json").read_text(encoding="utf-8"))["dists"]
    assert all(canonical_country(c) == c for c in dists)  # the WVS files already use canonical names
