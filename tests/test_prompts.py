"""PromptBuilder: the paper's prompt byte for byte, chat templates, BOS handling, templates as config."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
from omegaconf import OmegaConf
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
from transformers import PreTrainedTokenizerFast

from survey_sim.data.item import SurveyItem
from survey_sim.errors import ConfigError
from survey_sim.model.loading import load_tokenizer
from survey_sim.prompts import TEMPLATES, PromptBuilder, resolve_template

CONF = Path(__file__).resolve().parents[1] / "conf" / "prompt"
PAPER_SUFFIX = " If had to select one of the options, my answer would be ("


@pytest.fixture(scope="module")
def smol():
    return load_tokenizer(OmegaConf.load(Path(__file__).resolve().parents[1] / "conf/model/smollm2_135m.yaml"))


LLAMA3_CHAT = ("{{ bos_token }}{% for m in messages %}<|start_header_id|>{{ m['role'] }}<|end_header_id|>\n\n"
               "{{ m['content'] }}<|eot_id|>{% endfor %}"
               "{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}")


@pytest.fixture(scope="module")
def llama3_like():
    """Byte-level tokenizer that adds a BOS itself and whose chat template also starts with the BOS."""
    vocab = {c: i for i, c in enumerate(sorted(pre_tokenizers.ByteLevel.alphabet()))}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens(["<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"])
    bos = tok.token_to_id("<|begin_of_text|>")
    tok.post_processor = processors.TemplateProcessing(
        single="<|begin_of_text|> $A", pair="<|begin_of_text|> $A $B", special_tokens=[("<|begin_of_text|>", bos)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|begin_of_text|>", eos_token="<|eot_id|>",
                                   pad_token="<|eot_id|>", chat_template=LLAMA3_CHAT, name_or_path="toy-llama3")


def make_item(language="en", **changes) -> SurveyItem:
    question = {"en": "How interested are you in politics? ", "zh": "您对政治有多大兴趣？ "}[language]
    options = {"en": ("Very interested", "Somewhat interested", "Not at all interested"),
               "zh": ("非常感兴趣", "有些兴趣", "完全不感兴趣")}[language]
    fields = {"group": "Japan", "question_id": "4", "question": question, "options": options,
              "letters": ("A", "B", "C"), "distribution": (0.2, 0.5, 0.3), "language": language}
    fields.update(changes)
    return SurveyItem(**fields)


# ---- the paper's prompt, from real records ----------------------------------------------------------------

HEADERS = {"en": "\nHere are the options: \n", "zh": "\n以下是选项：\n"}
COUNTRY = {"en": re.compile(r"^How would someone from (.+) answer the following question:\n\n$"),
           "zh": re.compile(r"^来自(.+)的人会如何回答以下问题：\n\n$")}


def item_from_record(rec: dict, language: str) -> SurveyItem:
    """A SurveyItem from one record of the paper's JSON (the test's own minimal reading of the format)."""
    assert rec["input"].endswith(HEADERS[language])
    letters = tuple(o[1] for o in rec["options"])
    dist = {k: float(v) for k, v in rec["options_dist"].items()}
    return SurveyItem(group=COUNTRY[language].match(rec["instruction"]).group(1), question_id=str(rec["id"]),
                      question=rec["input"][: -len(HEADERS[language])], options=tuple(o[3:] for o in rec["options"]),
                      letters=letters, distribution=tuple(dist.get(x, 0.0) for x in letters), language=language)


@pytest.mark.real_data
@pytest.mark.parametrize("file, language", [("wvs/train_en.json", "en"), ("wvs/test_en.json", "en"),
                                            ("wvs/valid_zh.json", "zh"), ("pew/global_pew_test.json", "en")])
def test_paper_prompt_reproduces_real_records(file, language):
    root = os.environ.get("SURVEY_SIM_DATA")
    if not root:
        pytest.skip("SURVEY_SIM_DATA is not set: the real records are not available")
    records = json.loads((Path(root) / file).read_text(encoding="utf-8"))
    builder = PromptBuilder("paper")
    checked = 0
    for rec in records:
        if not any(float(v) > 0 for v in rec["options_dist"].values()):
            continue
        user, prefix = builder.build_text(item_from_record(rec, language))
        assert user == rec["instruction"] + rec["input"] + ", ".join(rec["options"])
        checked += 1
    assert checked > 0.99 * len(records)
    assert prefix == TEMPLATES["paper"][f"answer_prefix_{language}"]
    if language == "en":
        assert prefix == PAPER_SUFFIX


def test_paper_prompt_text():
    user, prefix = PromptBuilder("paper").build_text(make_item())
    assert user == ("How would someone from Japan answer the following question:\n\n"
                    "How interested are you in politics? \nHere are the options: \n"
                    "(A)Very interested, (B)Somewhat interested, (C)Not at all interested")
    assert prefix == PAPER_SUFFIX
    user_zh, prefix_zh = PromptBuilder("paper").build_text(make_item("zh"))
    assert user_zh.startswith("来自Japan的人会如何回答以下问题：\n\n您对政治有多大兴趣？ \n以下是选项：\n(A)非常感兴趣, ")
    assert prefix_zh == " 如果必须从选项中选择一个，我的答案是 ("


def test_prompt_names_the_prompt_group_not_the_group():
    user, _ = PromptBuilder().build_text(make_item(prompt_group="Chile"))
    assert "someone from Chile answer" in user and "Japan" not in user


def test_letters_follow_the_item():
    user, _ = PromptBuilder().build_text(make_item(letters=("X", "A", "B")))
    assert user.endswith("(X)Very interested, (A)Somewhat interested, (B)Not at all interested")


# ---- tokenization: chat templates and BOS ----------------------------------------------------------------

def _bos_count(tok, ids) -> int:
    return sum(i == tok.bos_token_id for i in ids)


def _adds_bos(tok) -> bool:
    return tok.bos_token_id is not None and tok("a")["input_ids"][0] == tok.bos_token_id


def test_plain_prompt_uses_the_tokenizers_special_tokens(smol, llama3_like):
    for tok in (smol, llama3_like):
        builder = PromptBuilder(tokenizer=tok, chat_template=False)
        ids = builder.encode(make_item())
        assert ids == tok(builder.full_text(make_item()))["input_ids"]
        assert tok.decode(ids[-1:]).endswith("(")
        if _adds_bos(tok):
            assert ids[0] == tok.bos_token_id and _bos_count(tok, ids) == 1
        else:
            assert _bos_count(tok, ids) == 0
    assert _adds_bos(llama3_like) and not _adds_bos(smol)


def test_chat_prompt_has_one_bos_on_a_llama3_like_tokenizer(llama3_like):
    builder = PromptBuilder(tokenizer=llama3_like, chat_template=True)
    item = make_item()
    text = builder.full_text(item)
    assert text.startswith("<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHow would someone")
    assert text.endswith("<|start_header_id|>assistant<|end_header_id|>\n\n" + PAPER_SUFFIX.lstrip())
    ids = builder.encode(item)
    assert ids[0] == llama3_like.bos_token_id and _bos_count(llama3_like, ids) == 1
    # what tokenizing the rendered template with special tokens would have done
    assert _bos_count(llama3_like, llama3_like(text)["input_ids"]) == 2


def test_chat_prompt_on_smollm2(smol):
    builder = PromptBuilder(tokenizer=smol, chat_template=True)
    item = make_item()
    user, prefix = builder.build_text(item)
    rendered = smol.apply_chat_template([{"role": "user", "content": user}], add_generation_prompt=True,
                                        tokenize=False)
    assert builder.full_text(item) == rendered + "If had to select one of the options, my answer would be ("
    assert "If had to select" not in user and user.endswith("Not at all interested")
    ids = builder.encode(item)
    assert ids == smol(rendered + prefix, add_special_tokens=False)["input_ids"]
    im_start = smol.convert_tokens_to_ids("<|im_start|>")
    assert ids[0] == im_start and ids[1] != im_start
    assert ids.count(im_start) == rendered.count("<|im_start|>") == 3  # system, user, assistant


def test_answer_prefix_is_the_exact_end_of_the_prompt(smol):
    for chat in (False, True):
        builder = PromptBuilder(tokenizer=smol, chat_template=chat)
        for lang in ("en", "zh"):
            assert builder.full_text(make_item(lang)).endswith(builder.answer_prefix(lang))
    assert PromptBuilder(tokenizer=smol, chat_template=False).answer_prefix("en") == PAPER_SUFFIX
    assert PromptBuilder(tokenizer=smol, chat_template=True).answer_prefix("en") == PAPER_SUFFIX.lstrip()


def test_chat_template_required_when_asked(llama3_like):
    no_chat = PreTrainedTokenizerFast(tokenizer_object=llama3_like.backend_tokenizer, name_or_path="no-chat")
    with pytest.raises(ConfigError, match="no-chat.*no chat template"):
        PromptBuilder(tokenizer=no_chat, chat_template=True)
    with pytest.raises(ConfigError, match="without a tokenizer"):
        PromptBuilder().encode(make_item())


# ---- templates as data -----------------------------------------------------------------------------------

def test_shipped_prompt_configs_match_the_builtins():
    files = sorted(CONF.glob("*.yaml"))
    assert {f.stem for f in files} >= {"paper", "plain"}
    for f in files:
        cfg = OmegaConf.load(f)
        name, fields = resolve_template(cfg)
        assert name == f.stem
        if name in TEMPLATES:
            assert fields == TEMPLATES[name]
        builder = PromptBuilder(cfg)
        for lang in builder.languages:
            user, prefix = builder.build_text(make_item(lang))
            assert "Japan" in user and prefix.strip()


def test_plain_template():
    user, prefix = PromptBuilder("plain").build_text(make_item())
    assert user == ("The following question was asked to people in Japan.\n\n"
                    "How interested are you in politics? \nOptions:\n"
                    "(A) Very interested\n(B) Somewhat interested\n(C) Not at all interested")
    assert prefix == "\nAnswer: ("


def test_custom_template_mapping_with_literal_braces():
    cfg = dict(TEMPLATES["paper"], name="braces", options_header_en="\n{{options}}\n")
    cfg = {k: v for k, v in cfg.items() if not k.endswith("_zh")}
    builder = PromptBuilder(cfg)
    assert builder.languages == ("en",)
    assert "\n{options}\n(A)Very" in builder.build_text(make_item())[0]
    with pytest.raises(ConfigError, match="'braces' has no 'zh' version"):
        builder.build_text(make_item("zh"))


@pytest.mark.parametrize("change, message", [
    ({"option_format": "{letter}"}, "must contain {letter} and {label}"),
    ({"instruction_en": "From {nation}:"}, "unknown placeholder.*nation"),
    ({"instruction_en": "From {country:"}, "malformed format string"),
    ({"colour": "red"}, "unknown field.*colour"),
    ({"answer_prefix_zh": None}, "answer_prefix_zh' must be a string"),
    ({"answer_prefix_en": "  "}, "answer_prefix_en is empty"),
])
def test_malformed_templates_are_rejected(change, message):
    with pytest.raises(ConfigError, match=message):
        PromptBuilder(dict(TEMPLATES["paper"], name="bad", **change))


def test_incomplete_language_and_unknown_name():
    cfg = {k: v for k, v in TEMPLATES["paper"].items() if k != "options_header_zh"}
    with pytest.raises(ConfigError, match="language 'zh' is incomplete.*options_header_zh"):
        PromptBuilder(cfg)
    with pytest.raises(ConfigError, match=r"unknown prompt template 'fancy'.*\['paper', 'plain'\]"):
        PromptBuilder("fancy")


# ---- subgroup steering formats -----------------------------------------------------------------------------

STEERING = Path(__file__).resolve().parents[1] / "conf" / "steering"


def steering(name: str) -> dict:
    """A shipped steering format as a run composes it (its defaults merged)."""
    from hydra import compose, initialize_config_dir

    import survey_sim.run  # noqa: F401  (registers the run-name resolver)

    with initialize_config_dir(config_dir=str(STEERING.parent), version_base="1.3"):
        cfg = compose("config", overrides=[f"steering={name}"])
    return OmegaConf.to_container(cfg.steering, resolve=True)


GROUP = {"group": "Japan | sex: female, age: 18-29", "country": "Japan",
         "attributes": (("sex", "female"), ("age", "18-29"))}


@pytest.mark.parametrize("name", ["bio", "qa", "portray", "none"])
def test_country_items_keep_the_paper_prompt_under_every_steering(name):
    for language in ("en", "zh"):
        item = make_item(language)
        assert PromptBuilder("paper", steering=steering(name)).build_text(item) == \
            PromptBuilder("paper").build_text(item)


def test_steering_formats_describe_the_group_in_english_and_chinese():
    texts = {}
    for name in ("bio", "qa", "portray"):
        for language in ("en", "zh"):
            user, prefix = PromptBuilder("paper", steering=steering(name)).build_text(make_item(language, **GROUP))
            assert "Japan" in user and "18-29" in user and "|" not in user
            assert prefix == PromptBuilder("paper").answer_prefix(language)
            texts[name, language] = user
    assert "I am female. I am 18-29 years old." in texts["bio", "en"]
    assert "Question: What is your sex?\nAnswer: female" in texts["qa", "en"]
    assert texts["portray", "en"].startswith(
        "Answer the following question as if you were a person from Japan: female, aged 18-29.\n\n")
    assert "我是女性。" in texts["bio", "zh"] and "女性" in texts["portray", "zh"] and "女性" in texts["qa", "zh"]
    assert len(set(texts.values())) == 6
    none_user, _ = PromptBuilder("paper", steering=steering("none")).build_text(make_item(**GROUP))
    assert none_user.startswith("How would someone from Japan answer the following question:\n\n")
    other = make_item(**{**GROUP, "attributes": (("religion", "none"),)})
    assert "My religion is none." in PromptBuilder("paper", steering=steering("bio")).build_text(other)[0]


def test_bad_steering_formats():
    good = steering("bio")
    with pytest.raises(ConfigError, match="unknown placeholder"):
        PromptBuilder(steering={**good, "instruction_en": "{country} {group}"})
    with pytest.raises(ConfigError, match="include '\\*'"):
        PromptBuilder(steering={**good, "attribute_en": {"sex": "I am {value}."}})
    with pytest.raises(ConfigError, match="unknown field"):
        PromptBuilder(steering={**good, "prefix_en": "x"})
    only_en = {k: v for k, v in good.items() if not k.endswith("_zh")}
    with pytest.raises(ConfigError, match="no 'zh' version"):
        PromptBuilder(steering=only_en).build_text(make_item("zh", **GROUP))
