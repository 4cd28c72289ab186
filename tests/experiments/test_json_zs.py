"""The json_zs baseline: the reply parser (formats it tolerates, replies it rejects) and end-to-end runs."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from survey_sim.baselines import BASELINES, make_baseline
from survey_sim.baselines.json_zs import JSONZeroShotBaseline, ParseError, object_span, parse_distribution
from survey_sim.data.item import SurveyItem
from survey_sim.errors import ConfigError

LETTERS = ("A", "B", "C", "D")
OPTIONS = ("Very interested", "Somewhat interested", "Not very interested", "Not at all interested")


def parse(text, letters=LETTERS, options=OPTIONS):
    return parse_distribution(text, letters, options)


@pytest.mark.parametrize("text, expected", [
    ('{"A": 30, "B": 70}', [0.3, 0.7, 0, 0]),                                    # missing letters get 0
    ('{"A": 0.1, "B": 0.2, "C": 0.3, "D": 0.4}', [0.1, 0.2, 0.3, 0.4]),          # fractions
    ('{"A": "30%", "B": "20 %", "C": 50}', [0.3, 0.2, 0.5, 0]),                  # percent strings
    ('Sure!\n```json\n{"A": 25, "B": 25, "C": 25, "D": 25}\n```\nHope it helps.', [0.25] * 4),  # fences, text
    ('{"A": 1, "B": 3} and then {"A": 9}', [0.25, 0.75, 0, 0]),                  # first object only
    ('{"(A)": 1, "(B)": 1}', [0.5, 0.5, 0, 0]),                                  # letters in parentheses
    ('{"(A)Very interested": 2, "B) Somewhat interested": 2}', [0.5, 0.5, 0, 0]),  # letter + label
    ('{"A. Very": 1, "D - Not at all": 3}', [0.25, 0, 0, 0.75]),
    ('{"Very interested": 1, "not very interested": 1}', [0.5, 0, 0.5, 0]),     # labels as keys
    ('{"a": 1, "(b)": 3}', [0.25, 0.75, 0, 0]),                                  # lower case letters
    ('{"option_letter_A": 1, "Option B": 1}', [0.5, 0.5, 0, 0]),
    ('{"distribution": {"A": 1, "D": 3}}', [0.25, 0, 0, 0.75]),                  # wrapper object
    ("{A: 10%, B: 90%,}", [0.1, 0.9, 0, 0]),                                     # not JSON: tolerant scan
    ("{'A': 40, 'C': 60}", [0.4, 0, 0.6, 0]),                                    # single quotes
    ('{"A": 1e1, "B": 3E1}', [0.25, 0.75, 0, 0]),
    ('{"A": "a brace } inside", "B": 1}', None),                                 # braces in strings are text
])
def test_parser_accepts(text, expected):
    if expected is None:
        with pytest.raises(ParseError, match="non-numeric"):
            parse(text)
        return
    got = parse(text)
    assert got.sum() == pytest.approx(1.0)
    np.testing.assert_allclose(got, expected, atol=1e-12)


@pytest.mark.parametrize("text, reason", [
    ("no json here", "no JSON object"),
    ('{"A": 25, "B": 25, "C": 2', "unclosed object"),                # cut off at max_new_tokens
    ('{"A": -10, "B": 110}', "negative value"),
    ('{"A": NaN, "B": 1}', "non-finite value"),
    ('{"A": Infinity, "B": 1}', "non-finite value"),
    ('{"A": 1, "A": 2}', "duplicate key"),
    ('{"A": 1, "(A)": 2}', "duplicate key"),                          # two spellings of one option
    ('{"A": 0, "B": 0}', "all zero"),
    ("{}", "no key/value pairs"),
    ('{"A": true, "B": 1}', "non-numeric value"),
    ('{"A": null}', "non-numeric value"),
    ('{"A": "high", "B": 1}', "non-numeric value"),
    ('{"A": [1], "B": 1}', "non-numeric value"),
    ('{"E": 10, "A": 90}', "unknown option key"),                     # no such option
    ('{"probability": 0.2}', "unknown option key"),
    ('{"A": {"B": 0.25, "C": 0.75}}', "nested object"),              # nested under a letter
    ('{"A": {"B": 0.25,\n "C": 0.75}, ', "unclosed object"),
    ("{A: {B: 1, C: 2}}", "nested object"),
])
def test_parser_rejects(text, reason):
    with pytest.raises(ParseError) as info:
        parse(text)
    assert info.value.reason == reason


def test_parser_uses_the_item_letters():
    np.testing.assert_allclose(parse_distribution('{"X": 1, "A": 3}', ("X", "A", "B")), [0.25, 0.75, 0])
    with pytest.raises(ParseError, match="unknown option key"):
        parse_distribution('{"D": 1}', ("A", "B", "C"))


def test_object_span_ignores_braces_in_strings_and_escapes():
    text = 'x {"A": "}\\"}", "B": {"C": 1}} tail'
    start, end = object_span(text)
    assert text[start:end] == '{"A": "}\\"}", "B": {"C": 1}}'
    assert object_span('{"A": 1') is None and object_span("none") is None


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 1000), min_size=2, max_size=8).filter(lambda v: sum(v) > 0),
       st.sampled_from(["json", "percent", "paren", "fenced"]))
def test_parser_round_trips_written_distributions(values, style):
    letters = tuple("ABCDEFGH"[: len(values)])
    if style == "json":
        text = json.dumps(dict(zip(letters, values)))
    elif style == "percent":
        text = "{" + ", ".join(f'"{k}": "{v}%"' for k, v in zip(letters, values)) + "}"
    elif style == "paren":
        text = "{" + ", ".join(f'"({k})": {v}' for k, v in zip(letters, values)) + "}"
    else:
        text = "Here you go:\n```json\n" + json.dumps(dict(zip(letters, values)), indent=2) + "\n```"
    np.testing.assert_allclose(parse_distribution(text, letters), np.array(values) / sum(values))


def test_registered_and_needs_a_model():
    assert BASELINES["json_zs"] is JSONZeroShotBaseline and JSONZeroShotBaseline.needs_model
    with pytest.raises(ConfigError, match="needs a model"):
        make_baseline("json_zs")
    with pytest.raises(ConfigError, match="max_new_tokens"):
        make_baseline("json_zs", model_cfg={"name": "x"}, max_new_tokens=0)


def _items(n=3):
    return [SurveyItem(group=g, question_id=f"Q{i}", question=f"How much do you like thing {i}?",
                       options=OPTIONS, letters=LETTERS, distribution=(0.4, 0.3, 0.2, 0.1), split="test")
            for i, g in enumerate(["Germany", "Japan", "Brazil"][:n])]


class _ScriptedTokenizer:
    """Stands in for a chat tokenizer; only prompt_text's use of apply_chat_template is exercised."""

    chat_template = "scripted"

    def apply_chat_template(self, messages, add_generation_prompt, tokenize):
        assert add_generation_prompt and not tokenize and len(messages) == 1
        return f"<user>{messages[0]['content']}</user><assistant>"


def test_prompt_asks_for_the_item_letters_in_its_shown_order():
    baseline = JSONZeroShotBaseline(model=object(), tokenizer=_ScriptedTokenizer())
    item = _items(1)[0]
    shuffled = item.with_(options=tuple(reversed(item.options)), option_order=(3, 2, 1, 0))
    text = baseline.prompt_text(shuffled)
    assert text.startswith("<user>How would someone from Germany answer")
    assert "(A)Not at all interested, (B)Not very interested" in text
    assert '{"A": ..., "B": ..., "C": ..., "D": ...}' in text
    assert text.endswith("</user><assistant>{")


def test_predictions_fall_back_and_are_counted(monkeypatch):
    baseline = JSONZeroShotBaseline(model=object(), tokenizer=_ScriptedTokenizer())
    baseline._fitted, baseline.stats = True, {"items": 0, "fallback": 0, "fallback_by_split": {},
                                               "fallback_reasons": {}}
    replies = ['{"A": 50, "B": 50}', "I cannot answer that.", '{"A": -1}']
    monkeypatch.setattr(baseline, "generate", lambda items: replies[: len(items)])
    preds = baseline.predict(_items())
    np.testing.assert_allclose(preds[0], [0.5, 0.5, 0, 0])
    np.testing.assert_allclose(preds[1], [0.25] * 4)
    np.testing.assert_allclose(preds[2], [0.25] * 4)
    assert baseline.stats["parsed"] == 1 and baseline.stats["fallback"] == 2
    assert baseline.stats["fallback_reasons"] == {"unparsable reply: no JSON object": 1,
                                                  "unparsable reply: negative value": 1}
    assert baseline.stats["examples"]["no JSON object"] == ["I cannot answer that."]


def _run(tmp_path, overrides):
    from hydra import compose, initialize_config_dir

    from survey_sim.pipeline.job import run
    from survey_sim.run import CONFIG_DIR

    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(config_name="config", overrides=[
            "method=json_zs", "logger=csv", f"output_dir={tmp_path}", *overrides])
    return run(cfg)


def test_end_to_end_tiny_random_counts_every_fallback(tmp_path):
    """A random model writes no JSON: every item falls back to uniform, and metrics.json says so."""
    metrics = _run(tmp_path, ["data=demo", "model=tiny_random", "max_items=3", "method.max_new_tokens=12",
                              "eval_splits=[test-unseen-country]"])
    stats = metrics["baseline_stats"]
    assert metrics["run"]["model"] == "tiny_random" and metrics["run"]["method"] == "json_zs"
    assert stats["items"] == 6 and stats["fallback"] == 6 and stats["parsed"] == 0
    assert stats["fallback_by_split"] == {"val": 3, "test-unseen-country": 3}
    assert sum(stats["fallback_reasons"].values()) == 6
    written = json.loads((tmp_path / "metrics.json").read_text())
    assert written["baseline_stats"] == stats
    rows = [json.loads(line) for line in (tmp_path / "predictions.jsonl").read_text().splitlines()]
    assert len(rows) == 6
    for row in rows:
        np.testing.assert_allclose(row["pred"], np.full(len(row["pred"]), 1 / len(row["pred"])))


@pytest.mark.slow
def test_end_to_end_smollm2_on_real_items(tmp_path, real_data_root):
    """SmolLM2-135M-Instruct on a handful of real WVS items: every item parsed or counted, nothing lost."""
    metrics = _run(tmp_path, ["model=smollm2_135m", "max_items=2", "eval_splits=[C1-Q3]",
                              "method.max_new_tokens=48"])
    stats = metrics["baseline_stats"]
    assert stats["items"] == 4 and stats["parsed"] + stats["fallback"] == 4
    assert set(metrics["splits"]) == {"val", "C1-Q3"}
    for split in metrics["splits"].values():
        assert 0.0 <= split["jsd"] <= 1.0
