"""`SurveySimulator`: a causal LM (+ LoRA) read out at the option letters of the next token."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence

import lightning as L
import torch
from torch import nn

from survey_sim.data.batching import whole_rows
from survey_sim.errors import SurveySimError
from survey_sim.evaluation.metrics import SELECTION_METRIC, logged_metrics
from survey_sim.modeling.anchoring import AnchorParams, combine
from survey_sim.modeling.losses import RAW_LOGIT_LOSSES, SCALE_LOSSES, get_loss, masked_log_softmax
from survey_sim.modeling.optim import SCHEDULES, adamw
from survey_sim.modeling.prefix_cache import prefixed_last_hidden

log = logging.getLogger(__name__)

MAX_OPTIONS = 26


class NonFiniteLossError(SurveySimError, FloatingPointError):
    """The training loss became NaN or infinite."""


WRAPPER_PREFIXES = ("_fsdp_wrapped_module.", "_checkpoint_wrapped_module.")


def unwrapped_name(name: str) -> str:
    """A parameter name without the prefixes that FSDP and activation-checkpointing wrappers insert."""
    for prefix in WRAPPER_PREFIXES:
        name = name.replace(prefix, "")
    return name


def has_active_dropout(module: nn.Module) -> bool:
    """Whether a forward pass of `module` in its current mode drops anything: a dropout layer in training mode
    with p > 0 (LoRA's dropout among them), or a positive `*dropout` rate in its config (attention dropout is
    applied functionally, without a layer)."""
    if not module.training:
        return False
    if any(isinstance(m, nn.modules.dropout._DropoutNd) and m.training and m.p > 0 for m in module.modules()):
        return True
    config = getattr(module, "config", None)
    rates = config.to_dict().items() if hasattr(config, "to_dict") else ()
    return any(k.endswith("dropout") and isinstance(v, float) and v > 0 for k, v in rates)


def _body_and_head(model: nn.Module) -> tuple[nn.Module, nn.Module]:
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    body = getattr(base, base.base_model_prefix, None)
    head = base.get_output_embeddings()
    if body is None or head is None:
        raise SurveySimError(f"{type(base).__name__} exposes no decoder body ({base.base_model_prefix!r}) "
                             "or output embedding")
    return body, head


class SurveySimulator(L.LightningModule):
    """Predicts a distribution over each item's options from the next-token logits of the option letters.

    Only the last position's hidden state is computed into logits, and only against the K option rows of
    the output embedding, so no [batch, seq, vocab] tensor is ever built. Logits are divided by
    `temperature` (1 unless calibrated), then log-softmaxed over the item's valid options.
    With `anchor_rule`, training goes *through* the anchor: the loss is taken on the model's distribution
    combined with each item's base distribution (`batch["anchor_base"]`, see `survey_sim.modeling.anchoring`) with
    the rule's default parameters, so the adapter learns the deviation from the base. Predictions are
    always the model's own distribution; the runner combines them with the base for metrics.
    Validation runs over `val_split` (one name or several, e.g. val and dev); after each validation the
    mean 1-JSD over them is logged as `selection/jsd`, and the predictions of the best validation so far
    are kept (`best_validation`) for the adapter restored from the best checkpoint.
    Evaluation batches are collected per split; `predictions[split]` holds [N, 26] probabilities in item
    index order after each validation/test epoch, gathered from all ranks without duplicates,
    `letter_mass[split]` [N] each item's letter mass (see `readout`), and
    `predicted_with[split]` the optimizer step and temperature they were made with, so that a pass over
    a split already predicted with the current weights (the validation at the end of training) is not
    repeated (`current_predictions`). `split_sizes` (split -> item count): a split whose gathered
    predictions miss any item, the last ones included, is an error.
    """

    def __init__(self, backbone: nn.Module, *, loss: str = "kl", loss_kwargs: Mapping | None = None,
                 lr: float = 1e-4, weight_decay: float = 0.0, warmup_steps: int = 0, schedule: str = "constant",
                 eval_split_names: Sequence[str] = (), val_split: str | Sequence[str] | None = "val",
                 evaluate_fn: Callable[[str, torch.Tensor, torch.Tensor], dict] | None = None,
                 gradient_checkpointing: bool = False, anchor_rule: str | None = None,
                 split_sizes: Mapping[str, int] | None = None):
        super().__init__()
        if schedule not in SCHEDULES:
            raise SurveySimError(f"unknown learning-rate schedule {schedule!r}; valid: {', '.join(SCHEDULES)}")
        # the module's settings, in checkpoints (plain values: they load with weights_only) and the logger
        self.save_hyperparameters(ignore=["backbone", "evaluate_fn"])
        self.backbone = backbone
        self.loss_name = loss
        self.loss_fn = get_loss(loss, **dict(loss_kwargs or {}))
        self.lr, self.weight_decay, self.warmup_steps, self.schedule = lr, weight_decay, warmup_steps, schedule
        self.eval_split_names = list(eval_split_names)
        self.val_splits = [val_split] if isinstance(val_split, str) else list(val_split or [])
        self.anchor_rule = anchor_rule
        self.best_validation: dict | None = None  # {"score", "step", "predictions", "letter_mass": {split: ...}}
        self.evaluate_fn = evaluate_fn
        self.split_sizes = dict(split_sizes or {})
        self.register_buffer("temperature", torch.ones(()), persistent=False)
        self.predictions: dict[str, torch.Tensor] = {}
        self.letter_mass: dict[str, torch.Tensor] = {}
        self.predicted_with: dict[str, tuple[int, float]] = {}  # split -> weights_state() of its predictions
        self.history: list[dict] = []      # training loss per step
        self.validations: list[dict] = []  # per validation: step, each validation split's 1-JSD, selection
        self._collected: dict[str, list[tuple[torch.Tensor, torch.Tensor]]] = {}
        self.strict_loading = False  # checkpoints hold only the trainable (adapter) weights
        self._checkpointing = bool(gradient_checkpointing)
        if gradient_checkpointing:
            self.backbone.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
            if hasattr(self.backbone, "enable_input_require_grads"):
                self.backbone.enable_input_require_grads()

    # ---- forward -------------------------------------------------------------------------------------
    def option_logits(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """[B, K] float32 logits of the option tokens at the prediction point (the last position)."""
        body, head = _body_and_head(self.backbone)
        hidden = self._last_hidden(body, batch)                    # [B, H]
        return self._option_rows_logits(head, hidden, batch["option_ids"])

    @staticmethod
    def _option_rows_logits(head: nn.Module, hidden: torch.Tensor, option_ids: torch.Tensor) -> torch.Tensor:
        rows = head.weight[option_ids]                             # [B, K, H]
        with torch.autocast(hidden.device.type, enabled=False):   # float32 even under bf16 autocast
            logits = torch.einsum("bh,bkh->bk", hidden.float(), rows.float())
        if getattr(head, "bias", None) is not None:
            logits = logits + head.bias[option_ids].float()
        return logits

    def readout(self, batch: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Option logits [B, K] (as `option_logits`) and the letter mass [B]: the option letters' share of
        the full next-token distribution at the last position, logsumexp over the K option logits minus
        logsumexp over the whole vocabulary (temperature 1). The vocabulary logits are [B, V], of the last
        position only; computed in the head's dtype and summed in float32."""
        body, head = _body_and_head(self.backbone)
        hidden = self._last_hidden(body, batch)
        logits = self._option_rows_logits(head, hidden, batch["option_ids"])
        vocab = torch.nn.functional.linear(hidden.to(head.weight.dtype), head.weight,
                                           getattr(head, "bias", None)).float()   # [B, V]
        letters = vocab.gather(1, batch["option_ids"]).masked_fill(~batch["option_mask"], float("-inf"))
        log_mass = torch.logsumexp(letters, dim=-1) - torch.logsumexp(vocab, dim=-1)
        return logits, log_mass.clamp_max(0.0).exp()

    def _last_hidden(self, body: nn.Module, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """The decoder's last hidden state at the last position. A batch with shared prefixes (see `collate`)
        runs each prefix once (`prefixed_last_hidden`). In training with gradient checkpointing (which drops
        caches) or with any dropout active, the prefixes are put back in front of every row instead
        (`whole_rows`): a batch-size-1 prefix pass would share one dropout mask across all rows of the batch."""
        prefix, items = batch.get("prefix_ids"), batch.get("item_prefix_ids")
        if (prefix is None and items is None) or (self.training and (self._checkpointing
                                                                     or has_active_dropout(body))):
            ids, mask, pos = whole_rows(batch)
            return body(input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=False).last_hidden_state[:, -1]
        return prefixed_last_hidden(body, batch)

    def forward(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Masked log-probabilities [B, K] over each item's options."""
        return masked_log_softmax(self.option_logits(batch) / self.temperature, batch["option_mask"])

    def trained_log_probs(self, log_probs: torch.Tensor, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """What the loss sees: the model's log-probabilities, combined with the base when training through
        the anchor."""
        if self.anchor_rule is None:
            return log_probs
        if "anchor_base" not in batch:
            raise SurveySimError("training through the anchor needs each batch's base distributions "
                                 "('anchor_base')")
        return combine(log_probs, batch["anchor_base"], batch["option_mask"], self.anchor_rule,
                       AnchorParams.default(self.anchor_rule))

    # ---- training ------------------------------------------------------------------------------------
    def on_fit_start(self) -> None:
        """Training mode for every module: Hugging Face loads models in eval mode and Lightning keeps
        submodule modes, so without this LoRA dropout (and any model dropout) would be off in training."""
        self.train()

    def _loss(self, batch, logits: torch.Tensor, log_probs: torch.Tensor) -> torch.Tensor:
        """The training loss of a batch, from the raw option logits for the losses in RAW_LOGIT_LOSSES, with
        the options' scale positions for those in SCALE_LOSSES."""
        scores = logits if self.loss_name in RAW_LOGIT_LOSSES else log_probs
        extra = (batch.get("option_scale"),) if self.loss_name in SCALE_LOSSES else ()
        return self.loss_fn(scores, batch["target"], batch["option_mask"], *extra)

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        logits = self.option_logits(batch)
        log_probs = masked_log_softmax(logits / self.temperature, batch["option_mask"])
        loss = self._loss(batch, logits, self.trained_log_probs(log_probs, batch))
        if not torch.isfinite(loss):
            raise NonFiniteLossError(
                f"training loss is {loss.item()} at epoch {self.current_epoch}, step {self.global_step}, "
                f"batch {batch_idx} (items {batch['index'].tolist()}); stopping instead of training on")
        self.log("train/loss", loss, prog_bar=True, batch_size=len(batch["index"]))
        self.history.append({"step": int(self.global_step), "epoch": int(self.current_epoch),
                             "train/loss": float(loss.detach())})
        return loss

    def configure_optimizers(self):
        params = [p for p in self.parameters() if p.requires_grad]
        if not params:
            raise SurveySimError("nothing to train: the model has no trainable parameters (no LoRA adapter?)")
        total = max(1, int(self.trainer.estimated_stepping_batches)) if self.schedule != "constant" else 1
        return adamw(params, lr=self.lr, weight_decay=self.weight_decay, warmup_steps=self.warmup_steps,
                     schedule=self.schedule, total_steps=total)

    # ---- evaluation ----------------------------------------------------------------------------------
    def weights_state(self) -> tuple[int, float]:
        """What predictions depend on besides the items: the optimizer steps taken and the temperature."""
        return int(self.global_step), float(self.temperature)

    def current_predictions(self) -> list[str]:
        """Splits whose `predictions` were made with the current weights and temperature."""
        return [split for split, state in self.predicted_with.items() if state == self.weights_state()]

    def _collect(self, split: str, batch) -> tuple[torch.Tensor, torch.Tensor]:
        """Option logits and log-probabilities of the batch; keeps [B, 26] probabilities with the letter mass
        as a 27th column."""
        logits, mass = self.readout(batch)
        log_probs = masked_log_softmax(logits / self.temperature, batch["option_mask"])
        probs = torch.zeros(len(batch["index"]), MAX_OPTIONS + 1, device=log_probs.device)
        probs[:, : log_probs.shape[1]] = log_probs.exp().masked_fill(~batch["option_mask"], 0.0)
        probs[:, MAX_OPTIONS] = mass
        self._collected.setdefault(split, []).append((batch["index"], probs))
        return logits, log_probs

    def validation_step(self, batch, batch_idx: int, dataloader_idx: int = 0) -> None:
        split = self.val_splits[dataloader_idx]
        logits, log_probs = self._collect(split, batch)
        loss = self._loss(batch, logits, self.trained_log_probs(log_probs, batch))
        self.log(f"{split}/loss", loss, prog_bar=True, batch_size=len(batch["index"]), sync_dist=True,
                 add_dataloader_idx=False)

    def test_step(self, batch, batch_idx: int, dataloader_idx: int = 0) -> None:
        self._collect(self.eval_split_names[dataloader_idx], batch)

    def predict_step(self, batch, batch_idx: int, dataloader_idx: int = 0) -> dict[str, torch.Tensor]:
        """The batch's item indices and [B, K] option probabilities (0 at padded options)."""
        return {"index": batch["index"], "probs": self(batch).exp().masked_fill(~batch["option_mask"], 0.0)}

    def _finish(self, stage: str) -> None:
        summaries = {}
        for split, parts in self._collected.items():
            index = torch.cat([i for i, _ in parts])
            probs = torch.cat([p for _, p in parts])
            if self._trainer is not None and self.trainer.world_size > 1:
                index, probs = self._gather_ranks(index, probs)
            seen = int(index.max()) + 1 if len(index) else 0
            n = self.split_sizes.get(split, seen)
            if seen > n:
                raise SurveySimError(f"split {split}: a prediction for item {seen - 1}, but the split has {n} items")
            out = torch.full((n, MAX_OPTIONS + 1), float("nan"), device=probs.device)
            out[index] = probs  # duplicates (padding batches of other ranks) carry identical values
            missing = torch.isnan(out[:, 0]).nonzero().flatten().tolist()
            if missing:
                raise SurveySimError(f"split {split}: predictions missing for {len(missing)} of {n} items after "
                                     f"gathering (e.g. items {missing[:5]})")
            out = out.float().cpu()
            self.predictions[split], self.letter_mass[split] = out[:, :MAX_OPTIONS], out[:, MAX_OPTIONS]
            self.predicted_with[split] = self.weights_state()
            if self.evaluate_fn is not None:
                summaries[split] = self.evaluate_fn(split, self.predictions[split], self.letter_mass[split])
                self.log_dict(logged_metrics(split if stage == "val" else f"test/{split}", summaries[split]),
                              rank_zero_only=True)
        self._collected = {}
        if stage == "val" and summaries and set(summaries) == set(self.val_splits):
            self._select(summaries)

    def _select(self, summaries: Mapping[str, Mapping[str, float]]) -> None:
        """Log the selection metric, record it in the history, keep the predictions of the best validation."""
        score = float(sum(s["jsd"] for s in summaries.values()) / len(summaries))
        self.log(SELECTION_METRIC, score, rank_zero_only=True)
        self.validations.append({"step": int(self.global_step), "epoch": int(self.current_epoch),
                                 **{f"{split}/jsd": float(s["jsd"]) for split, s in summaries.items()},
                                 SELECTION_METRIC: score})
        best = self.best_validation is None or score > self.best_validation["score"]
        if self.trainer.is_global_zero:
            log.info("validation at step %d: %s, %s %.4f%s", self.global_step,
                     ", ".join(f"{split} 1-JSD {s['jsd']:.4f}" for split, s in summaries.items()), SELECTION_METRIC,
                     score, " (best so far)" if best else "")
        if best:
            self.best_validation = {"score": score, "step": int(self.global_step),
                                    "predictions": {split: self.predictions[split] for split in summaries},
                                    "letter_mass": {split: self.letter_mass[split] for split in summaries}}

    def _gather_ranks(self, index: torch.Tensor, probs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Every rank's rows; ranks may hold different numbers of rows (all_gather needs equal shapes, so
        each pads to the largest count with index -1, dropped after gathering)."""
        counts = self.all_gather(torch.tensor([len(index)], device=probs.device)).reshape(-1)
        pad = int(counts.max()) - len(index)
        index = torch.cat([index, index.new_full((pad,), -1)])
        probs = torch.cat([probs, probs.new_zeros(pad, probs.shape[1])])
        index = self.all_gather(index).reshape(-1)
        probs = self.all_gather(probs).reshape(-1, probs.shape[1])
        keep = index >= 0
        return index[keep], probs[keep]

    def on_validation_epoch_start(self) -> None:
        self._collected = {}

    def on_validation_epoch_end(self) -> None:
        self._finish("val")

    def on_test_epoch_start(self) -> None:
        self._collected = {}

    def on_test_epoch_end(self) -> None:
        self._finish("test")

    # ---- checkpoints hold the adapter only ----------------------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        """Keep the trainable (adapter) weights of the state dict only. Under FSDP the parameter names carry
        the wrappers' prefixes and the state dict's do not; ranks other than 0 get an empty state dict."""
        trainable = {unwrapped_name(n) for n, p in self.named_parameters() if p.requires_grad}
        state = checkpoint["state_dict"]
        kept = {k: v for k, v in state.items() if unwrapped_name(k) in trainable}
        if state and trainable and not kept:
            raise SurveySimError(f"the checkpoint's state dict holds none of the {len(trainable)} trainable "
                                 f"parameters (e.g. {min(trainable)!r}; its keys e.g. {next(iter(state))!r})")
        checkpoint["state_dict"] = kept
        checkpoint["survey_sim_history"] = list(self.history)
        checkpoint["survey_sim_validations"] = list(self.validations)

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self.history = list(checkpoint.get("survey_sim_history", []))
        self.validations = list(checkpoint.get("survey_sim_validations", []))

    # ---- gradient clipping -----------------------------------------------------------------------------
    def configure_gradient_clipping(self, optimizer, gradient_clip_val=None, gradient_clip_algorithm=None) -> None:
        """Lightning's clipping, except by norm under FSDP, which Lightning's FSDP precision plugin refuses:
        the root FSDP module clips by the norm over all shards."""
        from torch.distributed.fsdp import FullyShardedDataParallel

        root = self.trainer.strategy.model
        if (isinstance(root, FullyShardedDataParallel) and gradient_clip_val
                and (gradient_clip_algorithm or "norm") == "norm"):
            root.clip_grad_norm_(float(gradient_clip_val))
            return
        self.clip_gradients(optimizer, gradient_clip_val=gradient_clip_val,
                            gradient_clip_algorithm=gradient_clip_algorithm)
