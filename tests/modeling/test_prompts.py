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

from survey_sim.config import group_config
from survey_sim.data.item import SurveyItem
from survey_sim.errors import ConfigError
from survey_sim.modeling.loading import load_tokenizer
from survey_sim.modeling.prompts import TEMPLATES, PromptBuilder, resolve_template

CONF = Path(__file__).resolve().parents[2] / "conf" / "prompt"
PAPER_SUFFIX = " If had to select one of the options, my answer would be ("


@pytest.fixture(scope="module")
def smol():
    return load_tokenizer(group_config("model", "smollm2_135m"))


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
    assert prefix_zh == PAPER_SUFFIX  # the released code's English suffix for every language


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
        cfg = group_config("prompt", f.stem)
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
    with pytest.raises(ConfigError, match=r"unknown prompt template 'fancy'.*\['paper', 'paper_translated_suffix', 'plain'\]"):
        PromptBuilder("fancy")


# ---- subgroup steering formats -----------------------------------------------------------------------------

STEERING = Path(__file__).resolve().parents[2] / "conf" / "steering"


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
# ---- chat_format=paper: the paper code's hand-built wrappers, per model family --------------------------

def paper_llama3_ids(tok, user: str, suffix: str) -> list[int]:
    """The paper's Llama-3-Instruct input, token by token as its code concatenates it: special ids, and each
    text piece encoded with the BOS then dropped (`encode(x)[1:]`)."""
    vocab = tok.get_vocab()
    special = [vocab[t] for t in ("<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>")]
    bot, sh, eh, eot = special

    def enc(text):
        return tok(text)["input_ids"][1:]

    return [bot, sh, *enc("user"), eh, *enc(user), eot, sh, *enc("assistant"), eh, *enc(suffix)]


def test_paper_chat_format_llama3_equals_the_papers_token_construction(llama3):
    builder = PromptBuilder({**TEMPLATES["paper"], "chat_format": "paper"}, tokenizer=llama3, chat_template=True,
                            family="llama3")
    item = make_item()
    user, prefix = builder.build_text(item)
    assert prefix == PAPER_SUFFIX  # the leading space is kept
    assert builder.full_text(item) == (f"<|begin_of_text|><|start_header_id|>user<|end_header_id|>{user}<|eot_id|>"
                                       f"<|start_header_id|>assistant<|end_header_id|>{PAPER_SUFFIX}")
    assert builder.encode(item) == paper_llama3_ids(llama3, user, PAPER_SUFFIX)
    # letter ids: the context rule and the paper's rule ("A)label" after the BOS) agree on Llama 3
    from survey_sim.modeling.option_tokens import option_token_ids, paper_letter_ids

    context = option_token_ids(llama3, item.letters, prefix)
    assert context == paper_letter_ids(llama3, item.letters, item.options)
    assert [llama3.decode([i]) for i in context] == list(item.letters)


def _deepseek_pieces(user: str, suffix: str) -> str:
    """The paper's DeepSeek-R1-Distill-Qwen input at string level: its code encodes every piece separately
    with a tokenizer that puts a BOS in front of each encoding; role words carry a BOS of their own too."""
    bos, eos = "<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>"

    def enc(text):
        return bos + text

    nl = enc("\n")
    system = bos + enc("system") + nl + enc("You are a helpful assistant.") + eos + nl
    turn_user = enc(bos + "user") + nl + enc(user + suffix) + eos + nl
    turn_assistant = enc(bos + "assistant") + nl + enc(suffix)
    return system + turn_user + turn_assistant


@pytest.mark.parametrize("family", ["deepseek", "qwen", "vicuna"])
def test_paper_chat_format_other_families_at_string_level(family, smol):
    builder = PromptBuilder({**TEMPLATES["paper"], "chat_format": "paper"}, tokenizer=smol, chat_template=True,
                            family=family)
    item = make_item()
    user, _ = builder.build_text(item)
    expected = {
        "deepseek": _deepseek_pieces(user, PAPER_SUFFIX),
        "qwen": (f"<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n{user}"
                 f"{PAPER_SUFFIX}<|im_end|>\n<|im_start|>assistant\n{PAPER_SUFFIX}"),
        "vicuna": user + PAPER_SUFFIX,  # plain text, with the tokenizer's own special tokens
    }[family]
    assert builder.full_text(item) == expected
    assert builder.adds_special_tokens == (family == "vicuna")
    assert builder.full_text(item).count(PAPER_SUFFIX) == (2 if family in ("deepseek", "qwen") else 1)


def test_official_chat_format_keeps_what_a_deepseek_template_appends(smol):
    """Under chat_format=official the template's generation prompt is kept as it is: a DeepSeek-R1 template
    that opens a thinking block puts the answer prefix (and the letter read after it) inside it."""
    import copy

    tok = copy.deepcopy(smol)
    tok.chat_template = ("{% for m in messages %}<｜User｜>{{ m['content'] }}{% endfor %}"
                         "{% if add_generation_prompt %}<｜Assistant｜><think>\n{% endif %}")
    item = make_item()
    user, _ = PromptBuilder("paper", tokenizer=tok, chat_template=True).build_text(item)
    text = PromptBuilder("paper", tokenizer=tok, chat_template=True).full_text(item)
    assert text == f"<｜User｜>{user}<｜Assistant｜><think>\n{PAPER_SUFFIX.lstrip()}"


def test_chat_format_and_letter_rule_are_checked():
    with pytest.raises(ConfigError, match="chat_format='paperish'"):
        PromptBuilder({**TEMPLATES["paper"], "chat_format": "paperish"})
    with pytest.raises(ConfigError, match="letter_rule='first'"):
        PromptBuilder({**TEMPLATES["paper"], "letter_rule": "first"})
    with pytest.raises(ConfigError, match="paper_chat_format='mistral'"):
        PromptBuilder("paper", family="mistral")


def test_paper_letter_rule_without_bos_is_an_error(llama3):
    """The paper rule reads the token after the BOS; a tokenizer that adds none would read ')'."""
    import copy

    from survey_sim.errors import TokenizerError
    from survey_sim.modeling.option_tokens import paper_letter_ids

    no_bos = copy.deepcopy(llama3)
    no_bos.backend_tokenizer.post_processor = processors.TemplateProcessing(single="$A")
    with pytest.raises(TokenizerError, match="shared ids"):
        paper_letter_ids(no_bos, ["A", "B"], ["Yes", "No"])


def test_chinese_items_get_the_english_suffix_under_paper():
    zh = make_item("zh")
    assert PromptBuilder("paper").build_text(zh)[1] == PAPER_SUFFIX
    assert PromptBuilder("paper_translated_suffix").build_text(zh)[1] == " 如果必须从选项中选择一个，我的答案是 ("


@pytest.mark.real_data
@pytest.mark.parametrize("files, language, count", [
    (("wvs/train_en.json", "wvs/valid_en.json", "wvs/test_en.json"), "en", 11_781),
    (("wvs/valid_zh.json",), "zh", 1_586), (("pew/global_pew_test.json",), "en", 3_983)])
def test_every_real_prompt_equals_the_papers_llama3_construction(llama3, files, language, count):
    """WVS (English and Chinese: the released English suffix) and Pew prompts under chat_format=paper."""
    root = os.environ.get("SURVEY_SIM_DATA")
    if not root:
        pytest.skip("SURVEY_SIM_DATA is not set: the real records are not available")
    builder = PromptBuilder({**TEMPLATES["paper"], "chat_format": "paper"}, tokenizer=llama3, chat_template=True,
                            family="llama3")
    ours, papers = [], []
    for name in files:
        for rec in json.loads((Path(root) / name).read_text(encoding="utf-8")):
            if any(float(v) > 0 for v in rec["options_dist"].values()):
                ours.append(builder.full_text(item_from_record(rec, language)))
                papers.append(rec["instruction"] + rec["input"] + ", ".join(rec["options"]))
    # batched: the paper's pieces around the user text are the same for every prompt
    head, tail = paper_llama3_ids(llama3, "\x00", PAPER_SUFFIX), None
    cut = head.index(llama3("\x00")["input_ids"][1])
    head, tail = head[:cut], head[cut + 1:]
    expected = [head + ids[1:] + tail for ids in llama3(papers)["input_ids"]]
    got = llama3(ours, add_special_tokens=False)["input_ids"]
    equal = sum(a == b for a, b in zip(got, expected))
    print(f"{files}: {equal} of {len(ours)} prompts equal the paper's Llama-3 construction token for token")
    assert equal == len(ours) == count
    assert builder.encode(item_from_record(rec, language)) == got[-1]


@pytest.mark.real_data
@pytest.mark.parametrize("file", ["pew/global_pew_test.json", "wvs/test_en.json", "wvs/valid_zh.json"])
def test_loaded_items_prompt_with_the_sources_country_label(file):
    """Items loaded by the processed source name the country as the source file does (e.g. Pew's "Britain",
    "India (Current national sample)"); the canonical name is only their group, for matching."""
    from survey_sim.data.sources.processed import load_processed

    root = os.environ.get("SURVEY_SIM_DATA")
    if not root:
        pytest.skip("SURVEY_SIM_DATA is not set: the real records are not available")
    path = Path(root) / file
    records = [r for r in json.loads(path.read_text(encoding="utf-8"))
               if any(float(v) > 0 for v in r["options_dist"].values())]
    items = load_processed(path).items
    builder = PromptBuilder("paper")
    equal = sum(builder.build_text(it)[0] == r["instruction"] + r["input"] + ", ".join(r["options"])
                for it, r in zip(items, records))
    renamed = sum(it.group != it.prompt_group for it in items)
    print(f"{file}: {equal} of {len(items)} prompts equal the paper's; {renamed} name the country otherwise "
          "than its canonical group")
    assert len(items) == len(records) and equal == len(items)


@pytest.mark.real_data
@pytest.mark.parametrize("family", ["deepseek", "qwen", "vicuna"])
def test_every_real_prompt_equals_the_papers_construction_at_string_level(family):
    """WVS (English) and Pew prompts under chat_format=paper for the families whose tokenizers are not
    available offline, compared as text with the paper's pieces reassembled from each record."""
    root = os.environ.get("SURVEY_SIM_DATA")
    if not root:
        pytest.skip("SURVEY_SIM_DATA is not set: the real records are not available")
    builder = PromptBuilder({**TEMPLATES["paper"], "chat_format": "paper"}, family=family)
    paper = {"deepseek": _deepseek_pieces,
             "qwen": lambda user, suffix: (f"<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
                                           f"<|im_start|>user\n{user}{suffix}<|im_end|>\n<|im_start|>assistant\n"
                                           f"{suffix}"),
             "vicuna": lambda user, suffix: user + suffix}[family]
    total = equal = 0
    for name in ("wvs/train_en.json", "wvs/valid_en.json", "wvs/test_en.json", "pew/global_pew_test.json"):
        for rec in json.loads((Path(root) / name).read_text(encoding="utf-8")):
            if any(float(v) > 0 for v in rec["options_dist"].values()):
                total += 1
                user = rec["instruction"] + rec["input"] + ", ".join(rec["options"])
                equal += builder.full_text(item_from_record(rec, "en")) == paper(user, PAPER_SUFFIX)
    print(f"{family}: {equal} of {total} WVS and Pew prompts equal the paper's construction (string level)")
    assert equal == total == 11_781 + 3_983
