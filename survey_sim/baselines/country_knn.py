"""Country-similarity baseline: a trained question's answers in the training countries most like the item's."""

from __future__ import annotations

import numpy as np

from survey_sim.baselines.embeddings import SentenceEncoder
from survey_sim.baselines.prior import PriorBaseline, question_key
from survey_sim.data.item import SurveyItem
from survey_sim.errors import ConfigError
from survey_sim.modeling.prompts import country_text


class CountryKNNBaseline(PriorBaseline):
    """For a question seen in training: the mean of its distributions in the k training countries whose
    country text is nearest to the item's by sentence embedding, weighted by softmax(similarity / temperature).

    Countries are compared through the paper's English instruction (prompts.country_text) naming the country
    of the prompt (`prompt_group`), so the country-swap control moves the prediction with the prompt. The
    item's own country is never a neighbour: on training items this is the leave-own-country-out version, and
    nothing of a held-out country's answers is used. Unlike `knn`, which matches (country, question) texts and so
    borrows other questions' answers, this keeps the question fixed and varies only the country. A subgroup
    item's neighbours are the same subgroup (same attributes) in the other countries, compared by country. A
    question not seen in training for such a neighbour falls back to uniform, counted.
    """

    name = "country_knn"

    def __init__(self, k: int = 5, temperature: float = 1.0, encoder_path: str | None = None,
                 batch_size: int = 64, device: str = "cpu", encoder: SentenceEncoder | None = None) -> None:
        super().__init__()
        if int(k) < 1:
            raise ConfigError(f"country_knn: k must be >= 1, got {k}")
        if temperature <= 0:
            raise ConfigError(f"country_knn: temperature must be > 0, got {temperature}")
        self.k, self.temperature = int(k), float(temperature)
        self.encoder = encoder or SentenceEncoder(encoder_path, batch_size=batch_size, device=device)
        self._vectors: dict[str, np.ndarray] = {}

    def _fit(self, train_items: list[SurveyItem]) -> None:
        super()._fit(train_items)
        self._profile = {item.group: (item.country, item.attributes) for item in train_items}

    def _prior(self, item: SurveyItem) -> np.ndarray | str:
        means = self._country_means.get(question_key(item))
        if not means:
            return "question not seen in training"
        groups = [g for g in means
                  if self._profile[g][0] != item.country and self._profile[g][1] == item.attributes]
        if not groups:
            return "question seen in training only for the item's own country (or subgroup)"
        target = self._vectors[item.prompt_group]
        sims = np.array([self._vectors[self._profile[g][0]] @ target for g in groups])
        top = np.argsort(-sims, kind="stable")[: self.k]
        z = sims[top] / self.temperature
        weights = np.exp(z - z.max())
        weights /= weights.sum()
        return np.einsum("n,nj->j", weights, np.stack([means[groups[i]] for i in top]))

    def _predict(self, items: list[SurveyItem]) -> list[np.ndarray]:
        countries = sorted({it.prompt_group for it in items} | {country for country, _ in self._profile.values()})
        missing = [c for c in countries if c not in self._vectors]
        if missing:  # one encoder batch for every country text
            vectors = self.encoder.encode([country_text(c) for c in missing]).astype(np.float64)
            self._vectors.update(zip(missing, vectors))
        return super()._predict(items)
