"""Tokenizer setup shared by every model: left padding, a pad token, the configured chat template.

Prompts are encoded elsewhere (survey_sim/modeling/prompts.py). This module only guarantees the facts the encoder
and the batcher rely on:

- ``padding_side == "left"``, so the last position of every row is the prediction point;
- a pad token exists, taken from tokens the model already has (unk, else eos, else Qwen-1's ``eod_id``):
  the embeddings are never resized, and padded positions are masked anyway;
- ``chat_template`` of the model config: ``true`` keeps the tokenizer's own template (an error if it has
  none), a string installs that Jinja template (for models such as Vicuna whose tokenizer ships none),
  ``false`` leaves the tokenizer untouched and prompts are used as plain text.
"""

from __future__ import annotations

import logging

from survey_sim.errors import TokenizerError

log = logging.getLogger(__name__)


def prepare_tokenizer(tokenizer, model_cfg):
    """Set left padding, a pad token and the configured chat template on `tokenizer` (in place); return it."""
    name = model_cfg.get("name")
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        _set_pad_token(tokenizer, name)
    template = model_cfg.get("chat_template")
    if isinstance(template, str):
        tokenizer.chat_template = template
    elif template and not getattr(tokenizer, "chat_template", None):
        raise TokenizerError(
            f"model {name!r}: chat_template is true but tokenizer {tokenizer.name_or_path!r} has no chat template; "
            "set model.chat_template=false for plain prompts, or give a Jinja template string")
    return tokenizer


def _set_pad_token(tokenizer, name) -> None:
    if tokenizer.unk_token is not None and tokenizer.unk_token != tokenizer.eos_token:
        tokenizer.pad_token = tokenizer.unk_token
    elif tokenizer.eos_token is not None:
        tokenizer.pad_token = tokenizer.eos_token
    elif getattr(tokenizer, "eod_id", None) is not None:  # Qwen-1 remote-code tokenizer (tiktoken based)
        tokenizer.pad_token_id = tokenizer.eod_id
    else:
        raise TokenizerError(
            f"model {name!r}: tokenizer {tokenizer.name_or_path!r} has no pad, unk or eos token to pad with; "
            "survey-sim does not add tokens (that would change the embedding matrix)")
    log.info("model %r: tokenizer has no pad token; padding with %r (id %s, masked out)",
             name, tokenizer.pad_token, tokenizer.pad_token_id)
