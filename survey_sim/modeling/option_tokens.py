"""Token ids of the option letters as the model would produce them right after the prompt.

The id of letter L is the token that `encode(prompt_end + L)` adds to `encode(prompt_end)`. It must be
exactly one new token, the tokens of `prompt_end` must be unchanged (else L merged with the text before it,
as `(A` does in some BPE vocabularies), it must decode to L, and the ids of all letters must be distinct.
Anything else raises `TokenizerError` naming the tokenizer and the letter.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence

from survey_sim.data.item import LETTERS
from survey_sim.errors import TokenizerError

_CACHE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _name(tokenizer) -> str:
    return repr(getattr(tokenizer, "name_or_path", None) or type(tokenizer).__name__)


def _encode(tokenizer, text: str) -> list[int]:
    return [int(i) for i in tokenizer(text, add_special_tokens=False)["input_ids"]]


def _letter_id(tokenizer, letter: str, prompt_end: str, prefix: list[int]) -> int:
    where = f"tokenizer {_name(tokenizer)}, letter {letter!r} after {prompt_end[-20:]!r}"
    ids = _encode(tokenizer, prompt_end + letter)
    if ids[: len(prefix)] != prefix:
        raise TokenizerError(
            f"{where}: the letter merges with the text before it (the prompt's last tokens {prefix[-3:]} "
            f"become {ids[max(0, len(prefix) - 3):]}); end the answer prefix so that the letter is a token of its own")
    added = ids[len(prefix):]
    if len(added) != 1:
        raise TokenizerError(f"{where}: the letter is {len(added)} tokens {added}, not one")
    decoded = tokenizer.decode(added).strip()
    if decoded != letter:
        raise TokenizerError(f"{where}: token {added[0]} decodes to {decoded!r}, not to the letter")
    return added[0]


def option_token_ids(tokenizer, letters: Sequence[str], prompt_end: str) -> list[int]:
    """Validated token id of each letter when it follows `prompt_end` (cached per tokenizer)."""
    letters = tuple(letters)
    key = (letters, prompt_end)
    try:
        per_tokenizer = _CACHE.setdefault(tokenizer, {})
    except TypeError:  # a tokenizer that cannot be weakly referenced: no cache
        per_tokenizer = {}
    if key in per_tokenizer:
        return list(per_tokenizer[key])
    prefix = _encode(tokenizer, prompt_end)
    ids = [_letter_id(tokenizer, letter, prompt_end, prefix) for letter in letters]
    if len(set(ids)) != len(ids):
        dup = sorted({(a, i) for a, i in zip(letters, ids) if ids.count(i) > 1})
        raise TokenizerError(f"tokenizer {_name(tokenizer)}: option letters share token ids {dup} after "
                             f"{prompt_end[-20:]!r}; the model could not tell these options apart")
    per_tokenizer[key] = tuple(ids)
    return ids


def check_prompt_end(tokenizer, prompt_ids: Sequence[int], prompt_end: str) -> None:
    """The letter ids are validated after `prompt_end` alone: check that the encoded prompt ends with the
    tokens of `prompt_end` as well, all but its first token (which may merge with the text before it, as a
    leading space or newline does), else the model reads the letters in a context they were not checked in."""
    tail = _encode(tokenizer, prompt_end)
    tail = tail[1:] if len(tail) > 1 else tail
    if list(prompt_ids[len(prompt_ids) - len(tail):]) != tail:
        raise TokenizerError(
            f"tokenizer {_name(tokenizer)}: the prompt does not end with the tokens of the answer prefix "
            f"{prompt_end[-20:]!r} ({tail[-3:]} expected, {list(prompt_ids[-3:])} found); the text before it "
            "or the chat template changes how the prefix is tokenized")


def paper_letter_ids(tokenizer, letters: Sequence[str], labels: Sequence[str]) -> list[int]:
    """The paper code's letter rule (prompt.letter_rule=paper): the second token of the option text
    "L)label" encoded with the tokenizer's special tokens, i.e. the token after the BOS. With SentencePiece
    tokenizers (Vicuna) that is the word-initial "▁A" (id 319), not the "A" (id 29909) that follows "(" in the
    prompt. The ids must be distinct (else `TokenizerError`)."""
    ids = []
    for letter, label in zip(letters, labels):
        encoded = [int(i) for i in tokenizer(f"{letter}){label}")["input_ids"]]
        if len(encoded) < 2:
            raise TokenizerError(f"tokenizer {_name(tokenizer)}: {letter + ')' + label!r} is one token; the paper "
                                 "rule reads the second")
        ids.append(encoded[1])
    if len(set(ids)) != len(ids):
        raise TokenizerError(f"tokenizer {_name(tokenizer)}: the paper letter rule gives shared ids "
                             f"{list(zip(letters, ids))} (a tokenizer without BOS reads the token after the "
                             "letter); use prompt.letter_rule=context")
    return ids


class OptionTokens:
    """Letter -> token id for one tokenizer and answer prefix; letters are validated on first use."""

    def __init__(self, tokenizer, prompt_end: str):
        self.tokenizer, self.prompt_end = tokenizer, prompt_end

    def __call__(self, letters: Sequence[str]) -> list[int]:
        return option_token_ids(self.tokenizer, letters, self.prompt_end)

    def __getitem__(self, letter: str) -> int:
        return self([letter])[0]

    def all(self) -> dict[str, int]:
        """Ids of all 26 capital letters (raises if any of them is not a distinct single token)."""
        return dict(zip(LETTERS, self(LETTERS)))
