"""`PromptBuilder`: the text and token ids of one survey item's prompt, per template and language.

A template is data (conf/prompt/*.yaml or a mapping with the same fields):
`instruction_<lang>` (with `{country}`), `options_header_<lang>`, `option_format` (with `{letter}` and
`{label}`), `option_sep` and `answer_prefix_<lang>`, for lang in en/zh. The prompt is

    instruction + question + options_header + option_sep.join(option_format per option) + answer_prefix

and the model's next token after it is read at the option letters. The built-in `paper` template
reproduces the prompt of Cao et al. (NAACL 2025) byte for byte.

A subgroup item (one with `attributes`, e.g. women aged 18-29 in Japan) replaces the instruction by a
steering format's (conf/steering/*.yaml: `bio`, a first-person biography; `qa`, a question-answer
preamble; `portray`, an instruction to answer as a member of the group; `none`, the country instruction
with the attributes unsaid): `instruction_<lang>` with {country} and {description}, the description being
the attributes' phrases (`attribute_<lang>`: label -> phrase with {value}, "*" for any other label with
{attribute}) joined by `joiner_<lang>`, values translated by `values_<lang>` where given. Items without
attributes always get the template's own instruction, so the country prompt is unchanged by any steering.

Chat models get everything but the answer prefix as the user turn of their chat template, and the answer
prefix (leading whitespace removed) opens the assistant turn. The rendered text is tokenized once without
special tokens, since chat templates already contain the BOS where the model wants one; plain prompts are
tokenized with the tokenizer's own special tokens.
"""

from __future__ import annotations

import string
from collections.abc import Mapping

from survey_sim.data.item import SurveyItem
from survey_sim.errors import ConfigError

LANGUAGES = ("en", "zh")
_PER_LANGUAGE = ("instruction", "options_header", "answer_prefix")
_SHARED = ("option_format", "option_sep")
_PLACEHOLDERS = {"instruction": {"country"}, "options_header": set(), "answer_prefix": set(),
                 "option_format": {"letter", "label"}, "option_sep": set()}

TEMPLATES: dict[str, dict[str, str]] = {
    # Cao et al.: instruction + input + ", ".join(options) + answer suffix. The paper's Chinese answer suffix
    # is not published with the data; this is a faithful translation of the English one, ending like it in
    # " (": with "是(" the letter would merge into one "(A" token in Qwen's and Llama 3's tokenizers.
    "paper": {
        "instruction_en": "How would someone from {country} answer the following question:\n\n",
        "instruction_zh": "来自{country}的人会如何回答以下问题：\n\n",
        "options_header_en": "\nHere are the options: \n",
        "options_header_zh": "\n以下是选项：\n",
        "option_format": "({letter}){label}",
        "option_sep": ", ",
        "answer_prefix_en": " If had to select one of the options, my answer would be (",
        "answer_prefix_zh": " 如果必须从选项中选择一个，我的答案是 (",
    },
    # One option per line and a short answer cue: a prompt-sensitivity alternative.
    "plain": {
        "instruction_en": "The following question was asked to people in {country}.\n\n",
        "instruction_zh": "以下问题是向{country}的人提出的。\n\n",
        "options_header_en": "\nOptions:\n",
        "options_header_zh": "\n选项：\n",
        "option_format": "({letter}) {label}",
        "option_sep": "\n",
        "answer_prefix_en": "\nAnswer: (",
        "answer_prefix_zh": "\n答案：(",
    },
}


def _fields(name: str, kind: str, value: str, allowed: set[str] | None = None,
            what: str = "prompt template") -> set[str]:
    """The placeholders of a format string; ConfigError if malformed or not in `allowed` (default: the
    template field kind's)."""
    allowed = _PLACEHOLDERS[kind] if allowed is None else allowed
    try:
        found = {f for _, f, _, _ in string.Formatter().parse(value) if f is not None}
    except ValueError as err:
        raise ConfigError(f"{what} {name!r}, field {kind!r}: malformed format string {value!r}: {err}") from None
    unknown = found - allowed
    if unknown:
        raise ConfigError(f"{what} {name!r}, field {kind!r}: unknown placeholder(s) {sorted(unknown)}; "
                          f"allowed: {sorted(allowed) or 'none'} (write literal braces as {{{{ }}}})")
    return found


def resolve_template(template: str | Mapping) -> tuple[str, dict[str, str]]:
    """(name, fields) of a built-in template name or a template mapping; ConfigError if malformed."""
    if isinstance(template, str):
        if template not in TEMPLATES:
            raise ConfigError(f"unknown prompt template {template!r}; built-in templates: {sorted(TEMPLATES)}")
        return template, dict(TEMPLATES[template])
    fields = {str(k): v for k, v in dict(template).items()}
    name = str(fields.pop("name", "<custom>"))
    allowed = set(_SHARED) | {f"{k}_{lang}" for k in _PER_LANGUAGE for lang in LANGUAGES}
    unknown = set(fields) - allowed
    if unknown:
        raise ConfigError(f"prompt template {name!r}: unknown field(s) {sorted(unknown)}; allowed: {sorted(allowed)}")
    for key in _SHARED:
        if not isinstance(fields.get(key), str):
            raise ConfigError(f"prompt template {name!r}: field {key!r} is missing or not a string")
    if _fields(name, "option_format", fields["option_format"]) != {"letter", "label"}:
        raise ConfigError(f"prompt template {name!r}: option_format must contain {{letter}} and {{label}}")
    _fields(name, "option_sep", fields["option_sep"])
    languages = []
    for lang in LANGUAGES:
        present = [k for k in _PER_LANGUAGE if f"{k}_{lang}" in fields]
        if not present:
            continue
        missing = [f"{k}_{lang}" for k in _PER_LANGUAGE if f"{k}_{lang}" not in fields]
        if missing:
            raise ConfigError(f"prompt template {name!r}: language {lang!r} is incomplete, missing {missing}")
        for kind in _PER_LANGUAGE:
            value = fields[f"{kind}_{lang}"]
            if not isinstance(value, str):
                raise ConfigError(f"prompt template {name!r}: field '{kind}_{lang}' must be a string")
            _fields(name, kind, value)
        if not fields[f"answer_prefix_{lang}"].strip():
            raise ConfigError(f"prompt template {name!r}: answer_prefix_{lang} is empty")
        languages.append(lang)
    if not languages:
        raise ConfigError(f"prompt template {name!r} defines no language (needs instruction_/options_header_/"
                          f"answer_prefix_ for one of {LANGUAGES})")
    return name, fields


STEERING_NONE = "none"


def resolve_steering(steering: Mapping | None) -> dict | None:
    """A steering format's fields (None for none); ConfigError if malformed."""
    if steering is None:
        return None
    fields = {str(k): v for k, v in dict(steering).items()}
    name = str(fields.get("name", "<custom>"))
    if name == STEERING_NONE and set(fields) <= {"name"}:
        return None
    allowed = {"name"} | {f"{k}_{lang}" for k in ("instruction", "joiner", "attribute", "values") for lang in LANGUAGES}
    unknown = set(fields) - allowed
    if unknown:
        raise ConfigError(f"steering format {name!r}: unknown field(s) {sorted(unknown)}; allowed: {sorted(allowed)}")
    languages = [lang for lang in LANGUAGES if f"instruction_{lang}" in fields]
    if not languages:
        raise ConfigError(f"steering format {name!r} defines no instruction_<lang> for any of {LANGUAGES}")
    for lang in languages:
        instruction = fields[f"instruction_{lang}"]
        if not isinstance(instruction, str):
            raise ConfigError(f"steering format {name!r}: instruction_{lang} must be a string")
        _fields(name, f"instruction_{lang}", instruction, {"country", "description"}, "steering format")
        if not isinstance(fields.get(f"joiner_{lang}", ""), str):
            raise ConfigError(f"steering format {name!r}: joiner_{lang} must be a string")
        phrases = fields.get(f"attribute_{lang}")
        if not isinstance(phrases, Mapping) or "*" not in phrases:
            raise ConfigError(f"steering format {name!r}: attribute_{lang} must map attribute labels to phrases "
                              "and include '*' (any other attribute)")
        for label, phrase in phrases.items():
            allowed_fields = {"attribute", "value"} if label == "*" else {"value"}
            if not isinstance(phrase, str):
                raise ConfigError(f"steering format {name!r}: attribute_{lang}.{label} must be a string")
            _fields(name, f"attribute_{lang}.{label}", phrase, allowed_fields, "steering format")
        if not isinstance(fields.get(f"values_{lang}") or {}, Mapping):
            raise ConfigError(f"steering format {name!r}: values_{lang} must map values to words")
    return fields


class PromptBuilder:
    """Builds and tokenizes prompts from a template (a built-in name or a mapping of template fields) and,
    for subgroup items, a steering format (a mapping as in conf/steering/*.yaml; None: no steering)."""

    def __init__(self, template: str | Mapping = "paper", *, tokenizer=None, chat_template: bool = False,
                 steering: Mapping | None = None):
        self.name, self.fields = resolve_template(template)
        self.steering = resolve_steering(steering)
        self.tokenizer = tokenizer
        self.chat_template = bool(chat_template)
        if self.chat_template and tokenizer is not None and not getattr(tokenizer, "chat_template", None):
            raise ConfigError(f"chat_template is true but tokenizer {tokenizer.name_or_path!r} has no chat "
                              "template; set the model's chat_template to false")

    @property
    def languages(self) -> tuple[str, ...]:
        return tuple(lang for lang in LANGUAGES if f"instruction_{lang}" in self.fields)

    def _field(self, kind: str, language: str) -> str:
        key = f"{kind}_{language}"
        if key not in self.fields:
            raise ConfigError(f"prompt template {self.name!r} has no {language!r} version (no field {key!r}); "
                              f"its languages: {list(self.languages)}")
        return self.fields[key]

    def answer_prefix(self, language: str = "en") -> str:
        """The exact text right before the option letter (leading whitespace dropped for chat models)."""
        text = self._field("answer_prefix", language).format()
        return text.lstrip() if self.chat_template else text

    def build_text(self, item: SurveyItem) -> tuple[str, str]:
        """(user text, answer prefix): instruction, question and options; then the text before the letter."""
        lang = item.language
        options = self.fields["option_sep"].format().join(
            self.fields["option_format"].format(letter=letter, label=label)
            for letter, label in zip(item.letters, item.options))
        user = (self.instruction(item) + item.question + self._field("options_header", lang).format() + options)
        return user, self.answer_prefix(lang)

    def instruction(self, item: SurveyItem) -> str:
        """The text naming who answers: the template's country instruction, or for a subgroup item the
        steering format's description of the group."""
        lang = item.language
        if not item.attributes or self.steering is None:
            return self._field("instruction", lang).format(country=item.prompt_group)
        fields = self.steering
        if f"instruction_{lang}" not in fields:
            raise ConfigError(f"steering format {fields.get('name')!r} has no {lang!r} version "
                              f"(no field 'instruction_{lang}')")
        phrases, words = fields[f"attribute_{lang}"], fields.get(f"values_{lang}") or {}
        description = fields.get(f"joiner_{lang}", " ").join(
            phrases.get(label, phrases["*"]).format(attribute=label, value=words.get(value, value))
            for label, value in item.attributes)
        return fields[f"instruction_{lang}"].format(country=item.prompt_group, description=description)

    def full_text(self, item: SurveyItem) -> str:
        """The whole prompt as the model sees it (chat template applied for chat models)."""
        user, prefix = self.build_text(item)
        if not self.chat_template:
            return user + prefix
        rendered = self._require_tokenizer().apply_chat_template(
            [{"role": "user", "content": user}], add_generation_prompt=True, tokenize=False)
        return rendered + prefix

    def encode(self, item: SurveyItem) -> list[int]:
        """Token ids of the full prompt; exactly the special tokens the model expects, none doubled."""
        tok = self._require_tokenizer()
        ids = tok(self.full_text(item), add_special_tokens=not self.chat_template)["input_ids"]
        return [int(i) for i in ids]

    def _require_tokenizer(self):
        if self.tokenizer is None:
            raise ConfigError(f"PromptBuilder({self.name!r}) was built without a tokenizer; pass tokenizer=")
        return self.tokenizer
