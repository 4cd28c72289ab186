"""`json_zs`: ask the model to write the answer distribution as JSON, parse it, fall back to uniform.

The one baseline that loads a model. Each item becomes the paper's question and options (the prompt
template's instruction, question, options header and options, in the item's current order) followed by a
request for a JSON object of percentages per option letter. Chat models get it as the user turn of their
chat template, base models as plain text; the reply starts with `response_prefix` ("{" by default), is
generated greedily (at most `max_new_tokens`, stopping at the first "}") and parsed by `parse_distribution`.
An unparsable reply gives the uniform distribution, counted per reason in `stats` (metrics.json
`baseline_stats`) and logged, with a few raw replies kept as examples.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Mapping, Sequence
from functools import cached_property

import numpy as np

from survey_sim.baselines.base import Baseline
from survey_sim.data.item import SurveyItem
from survey_sim.errors import ConfigError
from survey_sim.modeling.prompts import PromptBuilder

log = logging.getLogger(__name__)

REQUESTS = {
    "en": ("\n\nEstimate how people from {country} would answer this question. Reply only with a JSON object of "
           "the form {form} giving, for each option letter, the percentage of people who would choose it."),
    "zh": ("\n\n请估计来自{country}的人会如何回答这个问题。只回复一个形如{form}的JSON对象，"
           "给出每个选项字母对应的选择该选项的人所占的百分比。"),
}
PLAIN_ANSWER = {"en": "\nAnswer: ", "zh": "\n回答："}
N_EXAMPLES = 5  # raw replies kept per failure reason in stats["examples"]


class ParseError(ValueError):
    """A reply that is no usable distribution; `reason` is a short category for counting."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


# ------------------------------------------------------------------------------------------------ parsing

_NUMBER = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?|[-+]?(?:nan|NaN|inf(?:inity)?|Infinity)"
_PAIR = re.compile(r"""["']?\s*(?P<key>[^"':,{}]+?)\s*["']?\s*[:=]\s*["']?\s*(?P<value>""" + _NUMBER +
                   r""")\s*(?P<pct>%)?\s*["']?""")
_KEY = re.compile(r"^\(?\s*([A-Z])\s*(?:$|\)|[\s.:\-])")
_OPTION_KEY = re.compile(r"^(?i:option)[\s_\-]*(?:(?i:letter)[\s_\-]*)?\(?([A-Z])\)?$")
_FENCE = re.compile(r"```[a-zA-Z]*")


def object_span(text: str) -> tuple[int, int] | None:
    """(start, end) of the first balanced {...} in `text` (braces inside strings ignored), or None."""
    start = text.find("{")
    if start < 0:
        return None
    depth, in_str, escaped = 0, False, False
    for i in range(start, len(text)):
        ch = text[i]
        if in_str:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_str = False
        elif ch == '"':
            in_str = True
        elif ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                return start, i + 1
    return None


def _first_object(text: str) -> str:
    """The first balanced {...} of `text` (code fences removed); ParseError if there is none."""
    text = _FENCE.sub(" ", text)
    span = object_span(text)
    if span is None:
        start = text.find("{")
        if start < 0:
            raise ParseError("no JSON object", text[:80])
        raise ParseError("unclosed object", text[start:start + 80])
    return text[span[0]:span[1]]


def _unique_pairs(pairs: list[tuple[str, object]]) -> dict:
    keys = [k for k, _ in pairs]
    dup = sorted({k for k in keys if keys.count(k) > 1})
    if dup:
        raise ParseError("duplicate key", ", ".join(dup))
    return dict(pairs)


def _letter(key: str) -> str | None:
    """The option letter a key names ("A", "a", "(A)", "A)", "A. label", "(A)label", "Option A"), if any."""
    key = key.strip().strip("\"'").strip()
    m = _KEY.match(key.upper() if len(key) <= 3 else key) or _OPTION_KEY.match(key)
    return m.group(1) if m else None


def _pairs(obj_text: str) -> list[tuple[str, object]]:
    """Key/value pairs of the object: strict JSON first, else a tolerant key: number scan.

    A wrapper object with one non-letter key ({"distribution": {...}}) is unwrapped; an object nested
    under an option letter ({"A": {"B": ...}}) is rejected.
    """
    try:
        obj = json.loads(obj_text, object_pairs_hook=_unique_pairs, parse_constant=float)
    except ParseError:
        raise
    except ValueError:
        obj = None
    if isinstance(obj, dict):
        if len(obj) == 1:
            (key, value), = obj.items()
            if isinstance(value, dict) and _letter(key) is None:
                obj = value
        if not obj:
            raise ParseError("no key/value pairs", obj_text[:80])
        return list(obj.items())
    if obj is not None:
        raise ParseError("not an object", obj_text[:80])
    inner = obj_text[1:].rstrip().rstrip("}")
    if "{" in inner:
        outer_key = inner[:inner.find("{")].strip().rstrip(":=").strip()
        if _letter(outer_key) is not None:
            raise ParseError("nested object", obj_text[:80])
        inner = inner[inner.find("{") + 1:]
    pairs = [(m["key"], m["value"] + (m["pct"] or "")) for m in _PAIR.finditer(inner)]
    if not pairs:
        raise ParseError("no key/value pairs", obj_text[:80])
    return pairs


def _position(key: str, letters: Sequence[str], options: Sequence[str]) -> int:
    """Option position of a key: an option label, or a key naming one of `letters` (see `_letter`)."""
    key = str(key).strip()
    for i, label in enumerate(options):
        if key.casefold() == str(label).strip().casefold():
            return i
    letter = _letter(key)
    if letter in letters:
        return list(letters).index(letter)
    raise ParseError("unknown option key", key)


def _value(raw) -> float:
    if isinstance(raw, dict):
        raise ParseError("nested object", repr(raw)[:80])
    if isinstance(raw, bool) or raw is None:
        raise ParseError("non-numeric value", repr(raw))
    if isinstance(raw, str):
        text = raw.strip().rstrip("%").strip()
        try:
            value = float(text)
        except ValueError:
            raise ParseError("non-numeric value", repr(raw)) from None
    elif isinstance(raw, (int, float)):
        value = float(raw)
    else:
        raise ParseError("non-numeric value", repr(raw))
    if not math.isfinite(value):
        raise ParseError("non-finite value", repr(raw))
    if value < 0:
        raise ParseError("negative value", repr(raw))
    return value


def parse_distribution(text: str, letters: Sequence[str], options: Sequence[str] = ()) -> np.ndarray:
    """The distribution over `letters` written in `text`, normalised; ParseError if there is none.

    Reads the first {...} of the text (code fences and text around it ignored; an object left unclosed, e.g.
    cut off at max_new_tokens, is rejected since its last value may be cut too). Keys are option letters, optionally quoted, in parentheses or followed by the option label
    ("(A)", "A) Agree"), or an option label itself; values are numbers, numeric strings or percentages
    ("30%"), in any scale (they are normalised). Missing letters get 0. Rejected: no object, a key that is
    no option, duplicate keys, a negative, non-numeric or non-finite value, all zeros.
    """
    letters = list(letters)
    out = np.zeros(len(letters), dtype=np.float64)
    seen: set[int] = set()
    for key, raw in _pairs(_first_object(text)):
        i = _position(key, letters, options)
        if i in seen:
            raise ParseError("duplicate key", str(key))
        seen.add(i)
        out[i] = _value(raw)
    total = out.sum()
    if not total > 0:
        raise ParseError("all zero", text[:80])
    return out / total


# ------------------------------------------------------------------------------------------------ baseline

def _object_closed_criterion():
    """A transformers StoppingCriteria class (imported lazily): stop a row once its reply closes an object."""
    from transformers import StoppingCriteria

    class ObjectClosed(StoppingCriteria):
        def __init__(self, tokenizer, prompt_width: int, prefix: str) -> None:
            self.tokenizer, self.prompt_width, self.prefix = tokenizer, prompt_width, prefix

        def __call__(self, input_ids, scores, **kwargs):
            import torch

            texts = self.tokenizer.batch_decode(input_ids[:, self.prompt_width:], skip_special_tokens=True)
            return torch.tensor([object_span(self.prefix + t) is not None for t in texts], device=input_ids.device)

    return ObjectClosed



class JSONZeroShotBaseline(Baseline):
    """Zero-shot distribution written by the model as JSON (greedy generation, parsed, uniform fallback)."""

    name = "json_zs"
    needs_model = True

    def __init__(self, model_cfg: Mapping | None = None, prompt: str | Mapping = "paper", max_new_tokens: int = 96,
                 batch_size: int = 8, response_prefix: str = "{", device: str = "auto",
                 model=None, tokenizer=None) -> None:
        super().__init__()
        if model_cfg is None and (model is None or tokenizer is None):
            raise ConfigError("json_zs needs a model: give model_cfg (the run's model config) or model and tokenizer")
        if int(max_new_tokens) < 1 or int(batch_size) < 1:
            raise ConfigError(f"json_zs: max_new_tokens and batch_size must be >= 1, got {max_new_tokens}, "
                              f"{batch_size}")
        self.model_cfg, self.prompt = model_cfg, prompt
        self.max_new_tokens, self.batch_size = int(max_new_tokens), int(batch_size)
        self.response_prefix, self.device = str(response_prefix), device
        self._model, self._tokenizer = model, tokenizer
        self.chat_template = bool(model_cfg.get("chat_template")) if model_cfg is not None else \
            bool(getattr(tokenizer, "chat_template", None))

    def _fit(self, train_items: list[SurveyItem]) -> None:
        if self._model is None:
            from survey_sim.modeling.loading import load_backbone
            self._model, self._tokenizer = load_backbone(self.model_cfg)
        import torch
        device = self.device
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        if not getattr(self._model, "hf_device_map", None):
            self._model.to(device)
        self._model.eval()

    @cached_property
    def builder(self) -> PromptBuilder:
        """The prompt template (built on first use, once the tokenizer is loaded)."""
        return PromptBuilder(self.prompt, tokenizer=self._tokenizer, chat_template=self.chat_template)

    def prompt_text(self, item: SurveyItem) -> str:
        """The full prompt, ending where the model's reply (after `response_prefix`) starts."""
        user, _ = self.builder.build_text(item)  # instruction, question, options (shown order)
        form = "{" + ", ".join(f'"{x}": ...' for x in item.letters) + "}"
        user += REQUESTS[item.language].format(country=item.prompt_group, form=form)
        if not self.chat_template:
            return user + PLAIN_ANSWER[item.language] + self.response_prefix
        rendered = self._tokenizer.apply_chat_template([{"role": "user", "content": user}],
                                                       add_generation_prompt=True, tokenize=False)
        return rendered + self.response_prefix

    def generate(self, items: Sequence[SurveyItem]) -> list[str]:
        """The model's replies (with `response_prefix` in front), greedy, in the order of `items`."""
        import torch
        from transformers import StoppingCriteriaList

        tok = self._tokenizer
        encoded = [tok(self.prompt_text(it), add_special_tokens=not self.chat_template)["input_ids"] for it in items]
        order = sorted(range(len(items)), key=lambda i: len(encoded[i]))
        replies: list[str] = [""] * len(items)
        device = next(self._model.parameters()).device
        for start in range(0, len(order), self.batch_size):
            idx = order[start:start + self.batch_size]
            width = max(len(encoded[i]) for i in idx)
            ids = torch.full((len(idx), width), tok.pad_token_id, dtype=torch.long)
            mask = torch.zeros((len(idx), width), dtype=torch.long)
            for row, i in enumerate(idx):  # left padding: the last position is the generation point
                ids[row, width - len(encoded[i]):] = torch.tensor(encoded[i])
                mask[row, width - len(encoded[i]):] = 1
            with torch.inference_mode():
                out = self._model.generate(
                    input_ids=ids.to(device), attention_mask=mask.to(device), max_new_tokens=self.max_new_tokens,
                    do_sample=False, num_beams=1, pad_token_id=tok.pad_token_id,
                    stopping_criteria=StoppingCriteriaList([_object_closed_criterion()(tok, width, self.response_prefix)]))
            for row, i in enumerate(idx):
                replies[i] = self.response_prefix + tok.decode(out[row, width:], skip_special_tokens=True)
        return replies

    def _predict(self, items: list[SurveyItem]) -> list[np.ndarray]:
        self.stats.setdefault("parsed", 0)
        examples = self.stats.setdefault("examples", {})
        preds = []
        for item, reply in zip(items, self.generate(items) if items else []):
            try:
                preds.append(parse_distribution(reply, item.letters, item.options))
                self.stats["parsed"] += 1
            except ParseError as err:
                shown = examples.setdefault(err.reason, [])
                if len(shown) < N_EXAMPLES:
                    shown.append(reply[:300])
                log.debug("json_zs: %s %s: %s (reply %r)", item.group, item.question_id, err, reply[:200])
                preds.append(self._fallback(item, f"unparsable reply: {err.reason}"))
        return preds
