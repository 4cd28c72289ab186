"""Transforms: seeded per item, recorded, and reversible through option_order."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from survey_sim.data.item import LETTERS, SurveyItem
from survey_sim.data.transforms import (
    apply_transforms,
    country_swap,
    cyclic_shift,
    select_language,
    shuffle_options,
    stable_seed,
    translate_items,
)
from survey_sim.errors import ConfigError

COUNTRIES = ["Japan", "Germany", "Brazil", "Great Britain", "Kenya"]


def make_item(group="Japan", qid="1", k=4, dist=None, split="train", language="en"):
    dist = dist or [float(i + 1) for i in range(k)]
    return SurveyItem(group=group, question_id=qid, question=f"Question {qid}?",
                      options=[f"option {i}" for i in range(k)], letters=LETTERS[:k], distribution=dist,
                      split=split, language=language)


def items(n=40):
    return [make_item(group=COUNTRIES[i % len(COUNTRIES)], qid=str(i), k=2 + i % 5) for i in range(n)]


def test_stable_seed_is_fixed_across_processes():
    # a pinned value (blake2b): Python's salted hash() would change from one process to the next
    assert stable_seed("a", "b") == 0xF84C4D669FE0D410
    assert stable_seed(1, "x") != stable_seed(2, "x")


def test_shuffle_is_deterministic_and_seed_dependent():
    base = items()
    a, b = shuffle_options(base, 7), shuffle_options(base, 7)
    assert a == b
    c = shuffle_options(base, 8)
    assert any(x.options != y.options for x, y in zip(a, c))
    # per item: the result does not depend on the other items
    assert shuffle_options(base[5:6], 7)[0] == a[5]


def test_shuffle_permutes_consistently_and_records():
    base = items()
    for old, new in zip(base, shuffle_options(base, 3)):
        assert new.letters == old.letters
        assert sorted(new.options) == sorted(old.options)
        assert new.to_original_order(new.distribution) == pytest.approx(old.distribution)
        for pos, orig in enumerate(new.option_order):
            assert new.options[pos] == old.options[orig]
        assert new.transforms[-1] == "shuffle:" + ",".join(map(str, new.option_order))


@settings(max_examples=30, deadline=None)
@given(k=st.integers(2, 10), seeds=st.lists(st.integers(0, 10**6), min_size=1, max_size=3),
       shift=st.integers(-12, 12))
def test_composed_transforms_map_back_to_the_original(k, seeds, shift):
    item = make_item(k=k, dist=[float(3 * i % 7 + 1) for i in range(k)])
    new = item
    for s in seeds:
        new = shuffle_options([new], s)[0]
    new = cyclic_shift(new, shift)
    assert new.to_original_order(new.distribution) == pytest.approx(item.distribution)
    assert [new.options[new.option_order.index(i)] for i in range(k)] == list(item.options)
    assert len(new.transforms) == len(seeds) + 1


def test_cyclic_shift_composes():
    item = make_item(k=5)
    twice = cyclic_shift(cyclic_shift(item, 2), 4)
    once = cyclic_shift(item, 6)
    assert (twice.options, twice.distribution, twice.option_order) == (once.options, once.distribution,
                                                                       once.option_order)
    assert cyclic_shift(item, 1).options == ("option 1", "option 2", "option 3", "option 4", "option 0")
    assert cyclic_shift(item, 1).transforms == ("cyclic_shift:1",)
    assert cyclic_shift(item, 5).options == item.options


def test_country_swap_never_picks_own_country():
    base = items(200)
    swapped = country_swap(base, COUNTRIES, seed=1)
    assert all(s.prompt_group != s.group for s in swapped)
    assert all(s.prompt_group in COUNTRIES for s in swapped)
    for s, b in zip(swapped, base):
        assert s.distribution == pytest.approx(b.distribution) and s.options == b.options
    assert all(s.transforms == (f"country_swap:{s.prompt_group}",) for s in swapped)
    assert len({s.prompt_group for s in swapped}) == len(COUNTRIES)
    assert country_swap(base, COUNTRIES, 1) == swapped
    assert country_swap(base, COUNTRIES, 2) != swapped


def test_country_swap_compares_canonical_names():
    item = make_item(group="Great Britain")
    for seed in range(20):
        assert country_swap([item], ["Britain", "Japan"], seed)[0].prompt_group == "Japan"
    with pytest.raises(ConfigError, match="no country other than"):
        country_swap([item], ["Great Britain", "Britain"], 0)


def test_select_language_skips_missing_translations():
    en = [make_item(qid=str(q)) for q in range(4)]
    zh = [make_item(qid="0", language="zh").with_(question="问题？", options=("一", "二", "三", "四")),
          make_item(qid="2", language="zh", k=3)]  # other option letters: no usable translation
    out, report = select_language(en, zh, "zh")
    assert [it.question_id for it in out] == ["0"]
    assert out[0].question == "问题？" and out[0].language == "zh" and out[0].split == "train"
    assert report["requested"] == 4 and report["selected"] == 1 and report["skipped"] == 3
    assert report["skipped_questions"] == {"1": 1, "2": 1, "3": 1}
    same, rep = select_language(en, [], "en")
    assert same == en and rep["skipped"] == 0


def test_translate_items_refuses_untranslated_text():
    en = [make_item(qid="1", k=2), make_item(qid="2", k=2), make_item(qid="3", k=2), make_item(qid="4", k=2)]
    entries = {
        "1": {"question": "问题一", "options": ["是", "否"], "letters": ["A", "B"]},
        "2": {"question": "问题二", "options": ["option 0", "否"], "letters": ["A", "B"]},  # left in English
        "3": {"question": "问题三", "options": ["是", "否"], "letters": ["X", "A"]},
    }
    out, reasons = translate_items(en, entries, "zh")
    assert [(it.question_id, it.question, it.options, it.language) for it in out] == [
        ("1", "问题一", ("是", "否"), "zh")]
    assert sum(reasons.values()) == 3 and len(reasons) == 3


def test_apply_transforms_follows_config():
    splits = {"train": items(20), "val": items(10)}
    cfg = {"seed": 3, "control": {"train": False, "eval": True}, "shuffle": {"train": True, "eval": False}}
    out = apply_transforms(splits, cfg)
    assert all(it.prompt_group == it.group for it in out["train"])
    assert all(it.prompt_group != it.group for it in out["val"])
    assert all(it.transforms[0].startswith("shuffle:") for it in out["train"])
    assert all(not any(t.startswith("shuffle") for t in it.transforms) for it in out["val"])
    assert apply_transforms(splits, {"control": False, "shuffle": {}}) == splits
