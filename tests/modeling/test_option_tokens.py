"""Option letter token ids: SmolLM2's real ids, and every way a tokenizer can make them wrong."""

from __future__ import annotations

import pytest
from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers
from transformers import PreTrainedTokenizerFast

from survey_sim.config import group_config
from survey_sim.data.item import LETTERS
from survey_sim.errors import TokenizerError
from survey_sim.modeling.loading import load_tokenizer
from survey_sim.modeling.option_tokens import OptionTokens, check_prompt_end, option_token_ids
from survey_sim.modeling.prompts import PromptBuilder

PAPER_END = " If had to select one of the options, my answer would be ("


@pytest.fixture(scope="module")
def smol():
    return load_tokenizer(group_config("model", "smollm2_135m"))


#: The pre-tokenizer pattern of Qwen (Qwen-7B, Qwen2, the DeepSeek-R1 Qwen distills) and Llama 3 (which
#: groups digits by three): a punctuation mark may open a run of letters, so "(A" is one piece.
QWEN_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                r"|\s*[\r\n]+|\s+(?!\S)|\s+")


def byte_bpe(merges=(), *, lowercase=False, name="toy-bpe", pattern=None) -> PreTrainedTokenizerFast:
    """Byte-level BPE whose only merges are `merges` (pairs of characters), applied across spaces too, or
    within the pieces of a pre-tokenizer `pattern`."""
    vocab = {c: i for i, c in enumerate(sorted(pre_tokenizers.ByteLevel.alphabet()))}
    for a, b in merges:
        vocab[a + b] = len(vocab)
    tok = Tokenizer(models.BPE(vocab=vocab, merges=list(merges)))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    if pattern is not None:
        tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Split(Regex(pattern), behavior="isolated"),
                                                     tok.pre_tokenizer])
    tok.decoder = decoders.ByteLevel()
    if lowercase:
        tok.normalizer = normalizers.Lowercase()
    return PreTrainedTokenizerFast(tokenizer_object=tok, name_or_path=name)


def test_smollm2_letter_ids(smol):
    ids = option_token_ids(smol, list("ABCDEFGHIJX"), PAPER_END)
    assert ids == [49, 50, 51, 52, 53, 54, 55, 56, 57, 58, 72]
    assert [smol.decode([i]) for i in ids] == list("ABCDEFGHIJX")
    # the full prompt followed by a letter ends in exactly that letter's id
    builder = PromptBuilder(tokenizer=smol, chat_template=True)
    assert option_token_ids(smol, ["X", "A"], builder.answer_prefix("zh")) == [72, 49]


def test_option_tokens_class(smol):
    tokens = OptionTokens(smol, PAPER_END)
    table = tokens.all()
    assert list(table) == [chr(c) for c in range(ord("A"), ord("Z") + 1)]
    assert len(set(table.values())) == 26
    assert tokens["C"] == 51 and tokens(("B", "A")) == [50, 49]


def test_results_are_cached_per_tokenizer():
    class Counting(PreTrainedTokenizerFast):
        calls = 0

        def __call__(self, *args, **kwargs):
            type(self).calls += 1
            return super().__call__(*args, **kwargs)

    tok = Counting(tokenizer_object=byte_bpe().backend_tokenizer, name_or_path="counting")
    first = option_token_ids(tok, ("A", "B"), "answer (")
    calls = Counting.calls
    assert option_token_ids(tok, ["A", "B"], "answer (") == first and Counting.calls == calls
    option_token_ids(tok, ("A", "B"), "answer: (")
    assert Counting.calls == calls + 3


@pytest.mark.parametrize("merge, prompt_end, merged_letter", [
    (("(", "A"), "my answer would be (", "A"),     # '(A' is one token: the letter is not on its own
    ((":", "A"), "my answer would be (", None),    # ':A' merges, but the prompt ends with '(': fine
    ((":", "A"), "Answer:", "A"),                 # ... unless the prompt ends with ':'
    (("(", "A"), "Answer: ", None),               # a space before the letter keeps it apart
])
def test_letter_merging_with_the_prompt_end(merge, prompt_end, merged_letter):
    tok = byte_bpe([merge], name="merging-bpe")
    letters = ["A", "B", "C"]
    if merged_letter is None:
        ids = option_token_ids(tok, letters, prompt_end)
        assert [tok.decode([i]) for i in ids] == letters
        return
    with pytest.raises(TokenizerError, match=rf"merging-bpe.*letter '{merged_letter}'.*merges with the text"):
        option_token_ids(tok, letters, prompt_end)
    assert option_token_ids(tok, ["B", "C"], prompt_end)  # the other letters are fine


def test_letter_that_decodes_to_something_else():
    tok = byte_bpe(lowercase=True, name="lowercasing")
    with pytest.raises(TokenizerError, match=r"lowercasing.*letter 'A'.*decodes to 'a'"):
        option_token_ids(tok, ["A", "B"], "answer (")


def test_multi_token_letter():
    with pytest.raises(TokenizerError, match=r"letter 'AB'.*2 tokens"):
        option_token_ids(byte_bpe(), ["AB", "C"], "answer (")


def test_letters_must_have_distinct_ids():
    with pytest.raises(TokenizerError, match=r"toy-bpe.*share token ids \[\('A', \d+\)\]"):
        option_token_ids(byte_bpe(), ["A", "B", "A"], "answer (")


def test_shipped_prompts_keep_letters_apart_in_qwen_and_llama3_tokenizers():
    """Their vocabularies hold "(A"-style tokens and their pre-tokenizer keeps "(A" in one piece: an answer
    prefix ending in "(" right after a letter or ideograph ("...我的答案是(") would merge with the option
    letter. Every shipped prompt must end so that each letter stays a token of its own."""
    tok = byte_bpe([("(", letter) for letter in LETTERS], pattern=QWEN_PATTERN, name="qwen-like")
    with pytest.raises(TokenizerError, match="merges with the text before it"):
        option_token_ids(tok, LETTERS, "我的答案是(")  # the tokenizer models the merge
    for template in ("paper", "plain"):
        for language in ("en", "zh"):
            ids = option_token_ids(tok, LETTERS, PromptBuilder(template).answer_prefix(language))
            assert [tok.decode([i]) for i in ids] == list(LETTERS), (template, language)


@pytest.mark.parametrize("chat", [False, True])
def test_prompt_ends_with_the_answer_prefix_tokens(smol, chat):
    """The letters are validated after the answer prefix alone; the encoded prompt must end in its tokens."""
    from survey_sim.data.demo import make_demo_survey

    builder = PromptBuilder(tokenizer=smol, chat_template=chat)
    end = builder.answer_prefix("en")
    for item in make_demo_survey(n_countries=4, n_questions=6)["val"]:
        check_prompt_end(smol, builder.encode(item), end)
    ids = builder.encode(item)
    with pytest.raises(TokenizerError, match="does not end with the tokens of the answer prefix"):
        check_prompt_end(smol, ids + smol("?", add_special_tokens=False)["input_ids"], end)
    with pytest.raises(TokenizerError, match="does not end with the tokens of the answer prefix"):
        check_prompt_end(smol, ids[:-1], end)



def test_llama3_letter_facts_with_the_real_tokenizer(llama3):
    """Llama 3's pre-tokenizer lets punctuation open a run of letters: after " (" the letter is a token of its
    own (id 32 for A); after "是(" or ":" it merges into "(A" / ":A", which the validation rejects."""
    ids = option_token_ids(llama3, list("ABCD"), PAPER_END)
    assert ids == [32, 33, 34, 35] and [llama3.decode([i]) for i in ids] == list("ABCD")
    for end in ("我的答案是(", "Answer:"):
        with pytest.raises(TokenizerError, match="merges with the text before it"):
            option_token_ids(llama3, ["A"], end)
