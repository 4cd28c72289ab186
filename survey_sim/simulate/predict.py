"""Option probabilities of survey items from a loaded simulator, predicted through Lightning's `trainer.predict`."""

from __future__ import annotations

import contextlib
import logging
import time
import warnings
from collections.abc import Iterator, Sequence

import lightning as L
import numpy as np
import torch

from survey_sim.data.datamodule import SurveyDataModule
from survey_sim.data.item import SurveyItem
from survey_sim.errors import ModelUnavailableError, SurveySimError
from survey_sim.modeling.loading import context_length, load_model, load_tokenizer
from survey_sim.modeling.lora import load_adapter
from survey_sim.modeling.prompts import PromptBuilder
from survey_sim.modeling.simulator import MAX_OPTIONS, SurveySimulator
from survey_sim.simulate.spec import ModelSpec
from survey_sim.training.strategy import InPlaceStrategy, accelerator_of

log = logging.getLogger(__name__)


class Progress(L.Callback):
    """Logs the prompts done out of `total` (described by `what`, e.g. "10 questions x 5 countries x 2-5
    orders"), the rate and the time left: at most every `every` seconds, and when all are done."""

    def __init__(self, total: int, what: str, every: float = 10.0):
        self.total, self.what, self.every = total, what, every
        self.done = 0
        self.start = self.last = time.perf_counter()

    def on_predict_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int, dataloader_idx: int = 0):
        self.update(self.done + len(batch["index"]))

    def update(self, done: int) -> None:
        self.done = done
        now = time.perf_counter()
        if done < self.total and now - self.last < self.every:
            return
        self.last = now
        rate = done / max(now - self.start, 1e-9)
        left = f", about {(self.total - done) / rate:.0f} s left" if done < self.total else ""
        log.info("simulated %d of %d prompts (%s): %.1f prompts/s%s", done, self.total, self.what, rate, left)


@contextlib.contextmanager
def _quiet_lightning() -> Iterator[None]:
    """Without Lightning's start-up lines (devices, tips) and its warnings about the batch sampler (which
    returns every index) and a torch API: simulate's own log says what runs."""
    logger = logging.getLogger("lightning.pytorch")
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            for text in ("custom batch sampler", "LeafSpec"):
                warnings.filterwarnings("ignore", message=f".*{text}")
            yield
    finally:
        logger.setLevel(level)


class LoadedSimulator:
    """A loaded backbone (+ adapter) and its tokenizer and prompt builder, predicting option distributions."""

    def __init__(self, spec: ModelSpec, batch_size: int | None = None):
        self.spec = spec
        cfg = spec.model_cfg
        self.tokenizer = load_tokenizer(cfg)
        self.builder = PromptBuilder(spec.prompt, tokenizer=self.tokenizer, chat_template=bool(cfg.chat_template),
                                     steering=spec.steering, family=cfg.get("paper_chat_format"))
        self.batch_size = int(batch_size or cfg.eval_batch_size)
        backbone = load_model(cfg)
        if spec.adapter is not None:
            try:
                backbone = load_adapter(backbone, spec.adapter, trainable=False)
            except (OSError, ValueError) as err:
                raise ModelUnavailableError(
                    f"cannot load adapter {spec.adapter!r}: it is neither a local adapter folder nor a Hugging "
                    f"Face adapter id that can be downloaded now ({type(err).__name__}: {err})") from err
        self.module = SurveySimulator(backbone, eval_split_names=["simulate"], val_split=None)
        self.module.temperature.fill_(float(spec.temperature))
        self.module.eval()
        self.placed = bool(cfg.get("device_map"))
        if self.placed:
            self.device = next(backbone.parameters()).device
        else:
            self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
            self.module.to(self.device)

    def trainer(self, callbacks: Sequence[L.Callback] = ()) -> L.Trainer:
        """A Trainer predicting on `device` at the model's own dtype (no autocast), without logs or checkpoints."""
        return L.Trainer(accelerator=accelerator_of(self.device),
                         strategy=InPlaceStrategy(self.device, placed=self.placed),
                         precision="32-true", logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, use_distributed_sampler=False, callbacks=list(callbacks))

    def datamodule(self, items: Sequence[SurveyItem]) -> SurveyDataModule:
        """The items as the encoded split "simulate"; prompt prefixes are shared (one item's option orders
        computed together, see `collate`) unless the model runs its own (remote) code."""
        cfg = self.spec.model_cfg
        dm = SurveyDataModule({"simulate": list(items)}, self.tokenizer, self.builder, eval_batch_size=self.batch_size,
                              max_length=context_length(cfg, self.tokenizer), train_split=None,
                              val_split=None, eval_splits=["simulate"],
                              share_prefix=not cfg.get("trust_remote_code"))
        dm.encode()
        return dm

    def probabilities(self, items: Sequence[SurveyItem], progress: Progress | None = None) -> np.ndarray:
        """[N, 26] option probabilities of each item (its current option order), at the spec's temperature, from
        `trainer.predict` over `datamodule(items)`; `progress` is told the prompts done after every batch."""
        with _quiet_lightning():
            batches = self.trainer([] if progress is None else [progress]).predict(self.module,
                                                                                  datamodule=self.datamodule(items))
        out = np.full((len(items), MAX_OPTIONS), np.nan)
        for batch in batches:
            probs = batch["probs"].float().cpu().numpy()
            out[batch["index"].cpu().numpy(), : probs.shape[1]] = probs
        missing = np.flatnonzero(np.isnan(out[:, 0]))
        if len(missing):
            raise SurveySimError(f"no prediction for {len(missing)} prompt(s), e.g. item {int(missing[0])}")
        return np.nan_to_num(out, nan=0.0)
