"""`PromptBuilder`: the text and token ids of one survey item's prompt, per template and language.

A template is data (conf/prompt/*.yaml or a mapping with the same fields):
`instruction_<lang>` (with `{country}`), `options_header_<lang>`, `option_format` (with `{letter}` and
`{label}`), `option_sep` and `answer_prefix_<lang>`, for lang in en/zh. The prompt is

    instruction + question + options_header + option_sep.join(option_format per option) + answer_prefix

and the model's next token after it is read at the option letters. The built-in templates (TEMPLATES) are the
shipped prompt configs; `paper` (conf/prompt/paper.yaml, the one home of the paper's wording, which the others
inherit) reproduces the prompt of Cao et al. (NAACL 2025) byte for byte.

A subgroup item (one with `attributes`, e.g. women aged 18-29 in Japan) replaces the instruction by a
steering format's (conf/steering/*.yaml: `bio`, a first-person biography; `qa`, a question-answer
preamble; `portray`, an instruction to answer as a member of the group; `none`, the country instruction
with the attributes unsaid): `instruction_<lang>` with {country} and {description}, the description being
the attributes' phrases (`attribute_<lang>`: label -> phrase with {value}, "*" for any other label with
{attribute}) joined by `joiner_<lang>`, values translated by `values_<lang>` where given. Items without
attributes always get the template's own instruction, so the country prompt is unchanged by any steering.

Chat models get the prompt in one of two chat formats (`chat_format`, a prompt config key):

- `official` (default): everything but the answer prefix as the user turn of the tokenizer's chat template,
  and the answer prefix (leading whitespace removed) after the generation prompt. Whatever that template
  appends is kept: DeepSeek-R1 distills' hub templates append "<think>\n" in some snapshots, so the
  letter is then read inside the thinking block ("<｜Assistant｜><think>\nIf had ... (").
- `paper`: the hand-built wrappers of the paper's released training code, per model family (the model
  config's `paper_chat_format`, see PAPER_FAMILIES; none: plain text, as the paper fed its base models and
  Vicuna), so that numbers compare with the published ones.

The rendered text is tokenized once without special tokens, since chat templates and the paper's wrappers
already contain the BOS where the model wants one; plain prompts (and the paper's Vicuna, which it fed plain
text) are tokenized with the tokenizer's own special tokens.
"""

from __future__ import annotations

import string
from collections.abc import Mapping

from survey_sim.config import group_config, group_options
from survey_sim.data.item import SurveyItem
from survey_sim.errors import ConfigError

LANGUAGES = ("en", "zh")
_PER_LANGUAGE = ("instruction", "options_header", "answer_prefix")
_SHARED = ("option_format", "option_sep")
_PLACEHOLDERS = {"instruction": {"country"}, "options_header": set(), "answer_prefix": set(),
                 "option_format": {"letter", "label"}, "option_sep": set()}

CHAT_FORMATS = ("official", "paper")
LETTER_RULES = ("context", "paper")
#: Keys of a prompt config that are options of the builder, not template fields.
BUILDER_OPTIONS = ("chat_format", "letter_rule")

_BOS_DS, _EOS_DS = "<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>"
_SYSTEM = "You are a helpful assistant."


def _llama3_paper(user: str, prefix: str) -> str:
    """The paper's Llama-3-Instruct turns, written by hand: no blank line after <|end_header_id|>, the answer
    prefix with its leading space."""
    return (f"<|begin_of_text|><|start_header_id|>user<|end_header_id|>{user}<|eot_id|>"
            f"<|start_header_id|>assistant<|end_header_id|>{prefix}")


def _deepseek_paper(user: str, prefix: str) -> str:
    """The paper's DeepSeek-R1-Distill-Qwen layout: a system turn, role words and every piece each encoded
    with the tokenizer's BOS in front (it encoded the pieces one by one, and that tokenizer adds a BOS to each),
    and the answer prefix twice: at the end of the user turn and as the assistant turn."""
    b, e = _BOS_DS, _EOS_DS
    return (f"{b}{b}system{b}\n{b}{_SYSTEM}{e}{b}\n"
            f"{b}{b}user{b}\n{b}{user}{prefix}{e}{b}\n"
            f"{b}{b}assistant{b}\n{b}{prefix}")


def _qwen_paper(user: str, prefix: str) -> str:
    """The same layout with Qwen's ChatML markers (the paper's variant for Qwen, whose tokenizer adds no BOS)."""
    return (f"<|im_start|>system\n{_SYSTEM}<|im_end|>\n<|im_start|>user\n{user}{prefix}<|im_end|>\n"
            f"<|im_start|>assistant\n{prefix}")


#: chat_format=paper: model family (model config `paper_chat_format`) -> wrapper of (user text, answer
#: prefix); None: plain text with the tokenizer's special tokens (the paper fed Vicuna no chat template).
PAPER_FAMILIES = {"llama3": _llama3_paper, "deepseek": _deepseek_paper, "qwen": _qwen_paper, "vicuna": None}


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
    """(name, fields) of a built-in template name or a template mapping (its builder options, BUILDER_OPTIONS,
    left out); ConfigError if malformed."""
    if isinstance(template, str):
        if template not in TEMPLATES:
            raise ConfigError(f"unknown prompt template {template!r}; built-in templates: {sorted(TEMPLATES)}")
        return template, dict(TEMPLATES[template])
    fields = {str(k): v for k, v in dict(template).items() if k not in BUILDER_OPTIONS}
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


#: The built-in templates: the fields of every shipped prompt config (conf/prompt/NAME.yaml), by name.
TEMPLATES: dict[str, dict[str, str]] = {
    name: resolve_template(group_config("prompt", name))[1] for name in group_options("prompt")}


def country_text(country: str, language: str = "en") -> str:
    """The paper's instruction naming `country`, without its trailing blank lines (the baselines' text)."""
    return TEMPLATES["paper"][f"instruction_{language}"].strip().format(country=country)


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
    """Builds and tokenizes prompts from a template (a built-in name or a mapping of template fields, which
    may also hold the builder options `chat_format` and `letter_rule`) and, for subgroup items, a steering
    format (a mapping as in conf/steering/*.yaml; None: no steering).

    `family`: the model's paper chat format (PAPER_FAMILIES), used when chat_format is `paper`.
    `letter_rule` (read by the data module): `context`, the letter token as it follows the answer prefix
    (see option_tokens), or `paper`, the token the paper's code read (`paper_letter_ids`)."""

    def __init__(self, template: str | Mapping = "paper", *, tokenizer=None, chat_template: bool = False,
                 family: str | None = None, steering: Mapping | None = None):
        options = {k: template[k] for k in BUILDER_OPTIONS if k in template} if isinstance(template, Mapping) else {}
        self.name, self.fields = resolve_template(template)
        self.steering = resolve_steering(steering)
        self.chat_format = str(options.get("chat_format") or "official")
        self.letter_rule = str(options.get("letter_rule") or "context")
        if self.chat_format not in CHAT_FORMATS:
            raise ConfigError(f"prompt.chat_format={self.chat_format!r} is not one of {list(CHAT_FORMATS)}")
        if self.letter_rule not in LETTER_RULES:
            raise ConfigError(f"prompt.letter_rule={self.letter_rule!r} is not one of {list(LETTER_RULES)}")
        self.tokenizer = tokenizer
        self.chat_template = bool(chat_template)
        self.family = family
        if family is not None and family not in PAPER_FAMILIES:
            raise ConfigError(f"model paper_chat_format={family!r} is not one of {sorted(PAPER_FAMILIES)} (or null)")
        if (self.chat_template and not self.paper_format and tokenizer is not None
                and not getattr(tokenizer, "chat_template", None)):
            raise ConfigError(f"chat_template is true but tokenizer {tokenizer.name_or_path!r} has no chat "
                              "template; set the model's chat_template to false")

    @property
    def paper_format(self) -> bool:
        """Whether prompts are built as the paper's code built them: its wrapper of the model's family, or
        plain text for a model without one (the paper's base models and Vicuna)."""
        return self.chat_format == "paper"

    @property
    def adds_special_tokens(self) -> bool:
        """Whether the text is tokenized with the tokenizer's special tokens (plain prompts, paper Vicuna)."""
        if self.paper_format:
            return PAPER_FAMILIES.get(self.family) is None
        return not self.chat_template

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
        return text.lstrip() if self.chat_template and not self.paper_format else text

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
        if self.paper_format:
            wrapper = PAPER_FAMILIES.get(self.family)
            return user + prefix if wrapper is None else wrapper(user, prefix)
        if not self.chat_template:
            return user + prefix
        rendered = self._require_tokenizer().apply_chat_template(
            [{"role": "user", "content": user}], add_generation_prompt=True, tokenize=False)
        return rendered + prefix

    def encode(self, item: SurveyItem) -> list[int]:
        """Token ids of the full prompt; exactly the special tokens the model expects, none doubled."""
        tok = self._require_tokenizer()
        ids = tok(self.full_text(item), add_special_tokens=self.adds_special_tokens)["input_ids"]
        return [int(i) for i in ids]

    def _require_tokenizer(self):
        if self.tokenizer is None:
            raise ConfigError(f"PromptBuilder({self.name!r}) was built without a tokenizer; pass tokenizer=")
        return self.tokenizer
