"""Nearest-neighbour baseline: the distribution of the most similar training item(s) by sentence embedding."""

from __future__ import annotations

import numpy as np

from survey_sim.baselines.base import Baseline, current_order, original_order
from survey_sim.baselines.embeddings import SentenceEncoder
from survey_sim.data.item import SurveyItem
from survey_sim.errors import ConfigError
from survey_sim.modeling.prompts import country_text

WEIGHTINGS = ("inverse_distance", "softmax")
# The paper's instruction naming the country (prompts.country_text), then the question and the options.
_TEXTS = {"en": "{country} {question} Options: {options}", "zh": "{country}{question} 选项：{options}"}


def item_text(item: SurveyItem) -> str:
    """The text that identifies an item's (country, question): country prompt, question, options.

    Options are listed in their original order so that shuffling does not move an
    item in embedding space; the country is the one named in the prompt.
    """
    options = [""] * item.num_options
    for pos, orig in enumerate(item.option_order):
        options[orig] = item.options[pos]
    return _TEXTS[item.language].format(country=country_text(item.prompt_group, item.language),
                                        question=item.question.strip(), options=", ".join(options))


class KNNBaseline(Baseline):
    """Predicts from the k training items nearest in embedding space with the same number of options.

    Each item is embedded through `item_text` with a `SentenceEncoder` (cosine
    similarity s, distance d = 1 - s). Only training items with the same option count
    are candidates, because their distributions align position by position in the
    original option order. k=1 returns the nearest item's distribution (ties go to
    the earlier training item). For k>1 the k nearest are averaged with weights
    `inverse_distance`: 1 / (d + eps), or `softmax`: exp(s / temperature) normalised.
    An item with no candidate gets the uniform distribution, recorded in `fallbacks`.
    """

    name = "knn"

    def __init__(self, k: int = 1, weighting: str = "inverse_distance", eps: float = 1e-6,
                 temperature: float = 0.05, encoder_path: str | None = None, batch_size: int = 64,
                 max_length: int = 256, device: str = "cpu", encoder: SentenceEncoder | None = None) -> None:
        super().__init__()
        if int(k) < 1:
            raise ConfigError(f"knn: k must be >= 1, got {k}")
        if weighting not in WEIGHTINGS:
            raise ConfigError(f"knn: unknown weighting {weighting!r}; choose one of {', '.join(WEIGHTINGS)}")
        if eps <= 0 or temperature <= 0:
            raise ConfigError(f"knn: eps and temperature must be > 0, got eps={eps}, temperature={temperature}")
        self.k, self.weighting, self.eps, self.temperature = int(k), weighting, float(eps), float(temperature)
        self.encoder = encoder or SentenceEncoder(encoder_path, batch_size=batch_size, max_length=max_length,
                                                  device=device)

    def _fit(self, train_items: list[SurveyItem]) -> None:
        vectors = self.encoder.encode([item_text(it) for it in train_items])
        by_k: dict[int, list[int]] = {}
        for i, item in enumerate(train_items):
            by_k.setdefault(item.num_options, []).append(i)
        self._index = {
            k: (vectors[idx], np.stack([original_order(train_items[i], train_items[i].distribution) for i in idx]))
            for k, idx in by_k.items()
        }

    def _weights(self, sims: np.ndarray) -> np.ndarray:
        if self.weighting == "inverse_distance":
            w = 1.0 / (np.clip(1.0 - sims, 0.0, None) + self.eps)
        else:
            z = sims / self.temperature
            w = np.exp(z - z.max(axis=-1, keepdims=True))
        return w / w.sum(axis=-1, keepdims=True)

    def _predict(self, items: list[SurveyItem]) -> list[np.ndarray]:
        out: list[np.ndarray | None] = [None] * len(items)
        vectors = self.encoder.encode([item_text(it) for it in items]) if items else None
        by_k: dict[int, list[int]] = {}
        for i, item in enumerate(items):
            by_k.setdefault(item.num_options, []).append(i)
        for k_opts, idx in by_k.items():
            if k_opts not in self._index:
                for i in idx:
                    out[i] = self._fallback(items[i], f"no training item with {k_opts} options")
                continue
            train_vecs, train_dists = self._index[k_opts]
            k = min(self.k, len(train_vecs))
            for start in range(0, len(idx), 1024):
                chunk = idx[start:start + 1024]
                sims = vectors[chunk].astype(np.float64) @ train_vecs.T.astype(np.float64)
                top = np.argsort(-sims, axis=1, kind="stable")[:, :k]
                if k == 1:  # the neighbour's distribution exactly, without weighting round-off
                    mixed = train_dists[top[:, 0]]
                else:
                    weights = self._weights(np.take_along_axis(sims, top, axis=1))
                    mixed = np.einsum("nk,nkj->nj", weights, train_dists[top])
                    mixed /= mixed.sum(axis=1, keepdims=True)
                for row, i in enumerate(chunk):
                    out[i] = current_order(items[i], mixed[row])
        return out
