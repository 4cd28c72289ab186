"""Shared prompt prefixes run once: their keys and values cached (`PrefixCache`) and joined to each row's own."""

from __future__ import annotations

import inspect
from collections.abc import Mapping

import torch
from torch import nn
from transformers import DynamicCache


class PrefixCache(DynamicCache):
    """Keys and values of prompt prefixes, computed once: the batch's prefix (batch size 1) or its items'
    prefixes (one row per item). Once `frozen`, each layer returns them joined to the batch's own keys and
    values without storing those, so evaluation keeps no [B, T] keys and values of every layer alive; row i
    of the batch gets prefix row `rows[i]` (`rows` None: the one prefix row, expanded)."""

    frozen = False
    rows: torch.Tensor | None = None

    @classmethod
    def new(cls, config) -> PrefixCache:
        try:
            return cls(config=config)
        except TypeError:  # transformers 4.x
            return cls()

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, layer_idx: int, *args, **kwargs):
        if not self.frozen:
            keys, values = super().update(key_states, value_states, layer_idx, *args, **kwargs)
            self.prefix = getattr(self, "prefix", {})
            self.prefix[layer_idx] = (keys, values)
            return keys, values
        keys, values = self.prefix[layer_idx]
        if self.rows is not None:
            keys, values = keys[self.rows], values[self.rows]
        b = key_states.shape[0]
        return (torch.cat([keys.expand(b, -1, -1, -1), key_states], dim=-2),
                torch.cat([values.expand(b, -1, -1, -1), value_states], dim=-2))

    def repeated(self, config, n: int) -> PrefixCache:
        """A new (not frozen) cache holding this one's prefix repeated for n rows, to run n continuations."""
        out = PrefixCache.new(config)
        for layer_idx, (keys, values) in sorted(self.prefix.items()):
            out.update(keys.expand(n, -1, -1, -1), values.expand(n, -1, -1, -1), layer_idx)
        return out


def prefixed_last_hidden(body: nn.Module, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """The decoder's last hidden state at the last position of a batch with shared prefixes (see `collate`):
    the batch's prefix runs once (batch size 1), then its items' prefixes (one row per item) against those
    keys and values, then the rest of every prompt against the cached keys and values of its prefixes."""
    prefix, items = batch.get("prefix_ids"), batch.get("item_prefix_ids")
    # transformers >= 5 names the argument `cache` (`past_key_values` goes away in 5.40)
    key = "cache" if "cache" in inspect.signature(body.forward).parameters else "past_key_values"
    ids, mask = batch["input_ids"], batch["attention_mask"]
    cache = PrefixCache.new(body.config)
    past = mask.new_ones(1, 0)  # the attention mask of what the cache holds
    if prefix is not None:
        p = prefix.shape[0]
        body(input_ids=prefix[None], position_ids=torch.arange(p, device=ids.device)[None], use_cache=True,
             **{key: cache})
        past = mask.new_ones(1, p)
    if items is not None:
        g = items.shape[0]
        if prefix is not None:
            cache = cache.repeated(body.config, g)
        past = torch.cat([past.expand(g, -1), batch["item_prefix_mask"]], dim=1)
        body(input_ids=items, attention_mask=past, position_ids=batch["item_prefix_position_ids"],
             use_cache=True, **{key: cache})
        cache.rows = batch["item_of_row"]
        past = past[cache.rows]
    cache.frozen = True
    mask = torch.cat([past.expand(ids.shape[0], -1), mask], dim=1)
    out = body(input_ids=ids, attention_mask=mask, position_ids=batch["position_ids"], use_cache=True,
               **{key: cache})
    return out.last_hidden_state[:, -1]
