"""Facts the prompt encoder relies on, checked on tokenizers set up by `load_tokenizer`.

Recipe (survey_sim/modeling/prompts.py): chat prompts are rendered with apply_chat_template(tokenize=False) and
tokenized once WITHOUT special tokens; plain prompts are tokenized WITH them. Either way the BOS the model
expects appears exactly once, and padding is on the left with a pad token the model already has.
"""

from __future__ import annotations

import pytest
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import PreTrainedTokenizerFast

from survey_sim.errors import TokenizerError
from survey_sim.modeling.loading import load_tokenizer

CORPUS = ["The capital of France is Paris.", "How important is family in your life?",
          "Here are the options: (A) Very important, (B) Rather important", "USER: ASSISTANT: A chat"] * 10
LLAMA3_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}{{ '<|start_header_id|>' + m['role'] + '<|end_header_id|>\n\n'"
    " + m['content'] + '<|eot_id|>' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}")
MESSAGES = [{"role": "user", "content": "How important is family in your life?"}]


def _bpe(special: list[str], bos: str, *, byte_level: bool, unk: str | None = None) -> Tokenizer:
    """A small trained BPE whose post-processor adds `bos` to every sequence (as Llama's tokenizers do)."""
    tok = Tokenizer(models.BPE(unk_token=unk))
    if byte_level:
        tok.pre_tokenizer, tok.decoder = pre_tokenizers.ByteLevel(add_prefix_space=False), decoders.ByteLevel()
        alphabet = pre_tokenizers.ByteLevel.alphabet()
    else:
        tok.pre_tokenizer, tok.decoder = pre_tokenizers.Metaspace(), decoders.Metaspace()
        alphabet = sorted(set("".join(CORPUS)) | {"▁"})
    tok.train_from_iterator(CORPUS, trainers.BpeTrainer(vocab_size=400, special_tokens=special,
                                                        initial_alphabet=alphabet))
    bos_id = tok.token_to_id(bos)
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A", pair=f"{bos} $A {bos} $B", special_tokens=[(bos, bos_id)])
    return tok


@pytest.fixture(scope="module")
def llama3_like_cfg(tmp_path_factory, model_config):
    """A hub-style config whose local_path holds a Llama-3-like tokenizer: BOS added, template adds it too."""
    folder = tmp_path_factory.mktemp("llama3_like")
    special = ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]
    PreTrainedTokenizerFast(tokenizer_object=_bpe(special, "<|begin_of_text|>", byte_level=True),
                            bos_token="<|begin_of_text|>", eos_token="<|eot_id|>",
                            chat_template=LLAMA3_TEMPLATE).save_pretrained(folder)
    cfg = model_config("llama3_8b_instruct")
    cfg.local_path = str(folder)
    return cfg


@pytest.fixture(scope="module")
def llama2_like_folder(tmp_path_factory):
    """A Llama-2-like tokenizer (Vicuna's family): <s> added, <unk> present, no pad token, no chat template."""
    folder = tmp_path_factory.mktemp("llama2_like")
    PreTrainedTokenizerFast(tokenizer_object=_bpe(["<unk>", "<s>", "</s>"], "<s>", byte_level=False, unk="<unk>"),
                            bos_token="<s>", eos_token="</s>", unk_token="<unk>").save_pretrained(folder)
    return folder


def _count(ids, token_id) -> int:
    return sum(1 for i in ids if i == token_id)


def _assert_left_padding(tok):
    assert tok.padding_side == "left"
    assert tok.pad_token is not None and tok.pad_token_id is not None
    batch = tok(["Paris", "The capital of France is Paris"], padding=True)
    short_ids, short_mask = batch["input_ids"][0], batch["attention_mask"][0]
    n_pad = short_mask.count(0)
    assert n_pad > 0 and short_mask == [0] * n_pad + [1] * (len(short_mask) - n_pad)
    assert short_ids[:n_pad] == [tok.pad_token_id] * n_pad


# --------------------------------------------------------------------------------------------- real SmolLM2

def test_smollm2_pads_left_with_an_existing_token(smollm2_tokenizer):
    _assert_left_padding(smollm2_tokenizer)
    assert smollm2_tokenizer.pad_token_id < len(smollm2_tokenizer)


def test_smollm2_plain_prompt_gets_no_special_tokens(smollm2_tokenizer):
    """SmolLM2's bos_token <|im_start|> is a ChatML turn marker: plain text gets no BOS added."""
    tok = smollm2_tokenizer
    text = "The capital of France is"
    assert tok(text)["input_ids"] == tok(text, add_special_tokens=False)["input_ids"]
    assert _count(tok(text)["input_ids"], tok.bos_token_id) == 0


def test_smollm2_chat_prompt_tokenized_once_has_one_leading_bos(smollm2_tokenizer):
    tok = smollm2_tokenizer
    text = tok.apply_chat_template(MESSAGES, tokenize=False, add_generation_prompt=True)
    ids = tok(text, add_special_tokens=False)["input_ids"]
    assert ids[0] == tok.bos_token_id and ids[1] != tok.bos_token_id
    # One <|im_start|> opens each turn: system (default), user, assistant generation prompt.
    assert _count(ids, tok.bos_token_id) == 3
    assert ids == list(tok.apply_chat_template(MESSAGES, tokenize=True, add_generation_prompt=True)["input_ids"])
    assert text.endswith("<|im_start|>assistant\n")


# ------------------------------------------------------------------------------ constructed Llama-3-like

def test_llama3_like_chat_prompt_has_bos_once_only_when_tokenized_without_special_tokens(llama3_like_cfg):
    tok = load_tokenizer(llama3_like_cfg)
    bos = tok.bos_token_id
    text = tok.apply_chat_template(MESSAGES, tokenize=False, add_generation_prompt=True)
    once = tok(text, add_special_tokens=False)["input_ids"]
    assert once[0] == bos and _count(once, bos) == 1
    # The pitfall this recipe avoids: the template already holds BOS, the tokenizer adds another.
    doubled = tok(text)["input_ids"]
    assert doubled[:2] == [bos, bos]


def test_llama3_like_plain_prompt_gets_exactly_one_bos(llama3_like_cfg):
    tok = load_tokenizer(llama3_like_cfg)
    ids = tok("The capital of France is", add_special_tokens=True)["input_ids"]
    assert ids[0] == tok.bos_token_id and _count(ids, tok.bos_token_id) == 1


def test_llama3_like_without_pad_or_unk_pads_left_with_eos(llama3_like_cfg):
    tok = load_tokenizer(llama3_like_cfg)
    assert tok.pad_token == tok.eos_token == "<|eot_id|>"
    _assert_left_padding(tok)


# ------------------------------------------------------------------------- constructed Llama-2-like (Vicuna)

def test_vicuna_config_installs_its_template_and_pads_with_unk(llama2_like_folder, model_config):
    cfg = model_config("vicuna_7b")
    cfg.local_path = str(llama2_like_folder)
    tok = load_tokenizer(cfg)
    assert tok.pad_token == "<unk>"
    _assert_left_padding(tok)
    text = tok.apply_chat_template(MESSAGES, tokenize=False, add_generation_prompt=True)
    assert text == ("<s>A chat between a curious user and an artificial intelligence assistant. The assistant "
                    "gives helpful, detailed, and polite answers to the user's questions. USER: "
                    "How important is family in your life? ASSISTANT: ")
    ids = tok(text, add_special_tokens=False)["input_ids"]
    assert ids[0] == tok.bos_token_id and _count(ids, tok.bos_token_id) == 1
    system = [{"role": "system", "content": "Answer as a survey respondent."}] + MESSAGES
    assert tok.apply_chat_template(system, tokenize=False).startswith("<s>Answer as a survey respondent. USER: ")


def test_chat_template_true_without_a_template_is_an_error(llama2_like_folder, model_config):
    cfg = model_config("llama3_8b_instruct")
    cfg.local_path = str(llama2_like_folder)
    with pytest.raises(TokenizerError, match="has no chat template"):
        load_tokenizer(cfg)
    cfg.chat_template = False
    assert load_tokenizer(cfg).chat_template is None
