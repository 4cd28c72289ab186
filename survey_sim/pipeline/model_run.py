"""Zero-shot and fine-tuned simulator runs: tokenize, load the model, train, evaluate every split."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from survey_sim.data.datamodule import SurveyDataModule
from survey_sim.data.item import SurveyItem
from survey_sim.data.transforms import role_flag, shuffle_options
from survey_sim.errors import ConfigError, SurveySimError
from survey_sim.evaluation.metrics import VALIDATION_SPLITS, logged_metrics
from survey_sim.evaluation.orders import expand_permutations
from survey_sim.evaluation.rows import prediction_rows, split_metrics
from survey_sim.modeling.anchoring import FIT_SPLITS, Anchor, fitted_groups
from survey_sim.modeling.loading import context_length, load_model, load_tokenizer
from survey_sim.modeling.lora import add_lora, load_adapter
from survey_sim.modeling.prompts import PromptBuilder
from survey_sim.modeling.simulator import SurveySimulator
from survey_sim.training.strategy import full_parameters
from survey_sim.training.trainer import build_trainer, configure_cuda_kernels

log = logging.getLogger(__name__)


def resolve_adapter(path: str) -> str:
    """A run folder (holding adapter/) or an adapter folder or a Hugging Face adapter id."""
    p = Path(path).expanduser()
    if (p / "adapter" / "adapter_config.json").exists():
        return str(p / "adapter")
    return str(p) if p.exists() else path


def save_adapter(module: SurveySimulator, out_dir: Path) -> Path:
    """Write the PEFT adapter to out_dir/adapter via a temporary folder and renames: a kill at any point leaves
    a complete adapter folder (the previous one, or the new one) or none, never a partly written one."""
    final, tmp, old = out_dir / "adapter", out_dir / ".adapter.tmp", out_dir / ".adapter.old"
    for stale in (tmp, old):
        shutil.rmtree(stale, ignore_errors=True)
    module.backbone.save_pretrained(str(tmp))
    if final.exists():
        final.rename(old)
    tmp.rename(final)
    shutil.rmtree(old, ignore_errors=True)
    return final


def last_checkpoint(out_dir: Path) -> str | None:
    ckpt = out_dir / "checkpoints" / "last.ckpt"
    return str(ckpt) if ckpt.exists() else None


MAX_TRAIN_ORDERS = 10  # versions of the training split kept (tokenized) for per-epoch option shuffling


def reshuffled_epochs(cfg: DictConfig, train_items: list[SurveyItem]) -> list[list[SurveyItem]]:
    """With shuffle.train, the training split with its options shuffled anew for epochs 1, 2, ... (epoch 0
    uses the order drawn by the data transforms): one version per epoch, at most MAX_TRAIN_ORDERS, cycled."""
    if not role_flag(cfg.shuffle, "train"):
        return []
    max_epochs = int(cfg.trainer.max_epochs)
    epochs = min(max_epochs, MAX_TRAIN_ORDERS) if max_epochs > 0 else MAX_TRAIN_ORDERS
    return [shuffle_options(train_items, int(cfg.seed), epoch) for epoch in range(1, epochs)]


def build_anchor(cfg: DictConfig, splits: dict[str, list[SurveyItem]]) -> Anchor | None:
    """The anchored simulator's base and rule (`anchor` config group), fitted on the training split; None
    when the run is not anchored. Fitting its weights needs the splits they are fitted on (dev, val)."""
    a = cfg.get("anchor")
    if a is None or not a.get("base"):
        return None
    if a.get("fit"):
        missing = sorted({FIT_SPLITS[group] for group in fitted_groups(a) if not splits.get(FIT_SPLITS[group])})
        if missing:
            raise ConfigError(f"anchor.fit=true fits the anchor's weights on {' and '.join(missing)}, which the "
                              f"run does not load: set data.dev_split (e.g. dev) and data.val_split, leave its "
                              f"group out of anchor.fit_groups, or set anchor.fit=false")
    return Anchor(str(a.base), str(a.rule), splits.get("train") or [], base_options=a.get("base_options") or {},
                  fit_model_scale=bool(a.get("fit_model_scale", True)))
def steering_config(cfg: DictConfig) -> dict | None:
    """The run's steering format for subgroup items (conf/steering/), as a plain mapping."""
    steering = cfg.get("steering")
    return None if steering is None else OmegaConf.to_container(steering, resolve=True)


def build_datamodule(cfg: DictConfig, splits: dict[str, list[SurveyItem]], eval_names: list[str], tokenizer,
                     *, train: bool, anchor: Anchor | None = None) -> tuple[SurveyDataModule, dict, dict]:
    """DataModule over the training split and the (permutation-expanded) evaluation splits, encoded; batches
    carry the anchor's base distributions when training goes through it."""
    expanded, bases = {}, {}
    for name in eval_names:
        expanded[name], bases[name] = expand_permutations(splits[name], int(cfg.permutations))
    data = dict(expanded)
    if train:
        data["train"] = splits["train"]
    builder = PromptBuilder(cfg.prompt, tokenizer=tokenizer, chat_template=bool(cfg.model.chat_template),
                            steering=steering_config(cfg), family=cfg.model.get("paper_chat_format"))
    share_prefix = bool(cfg.speed.share_prefix)
    if share_prefix and cfg.model.get("trust_remote_code"):
        log.info("model %r runs its own (remote) code: prefix sharing is off, since that code may not take a "
                 "key/value cache object", cfg.model.name)
        share_prefix = False
    dm = SurveyDataModule(
        data, tokenizer, builder, batch_size=int(cfg.model.batch_size),
        eval_batch_size=int(cfg.model.eval_batch_size), seed=int(cfg.seed),
        max_length=context_length(cfg.model, tokenizer), train_split="train" if train else None,
        val_split=[s for s in VALIDATION_SPLITS if s in eval_names], eval_splits=eval_names,
        bucket_multiple=int(cfg.speed.bucket_multiple or 1),
        share_prefix=share_prefix,
        train_epoch_items=reshuffled_epochs(cfg, splits["train"]) if train else (),
        base_fn=anchor.bases if train and anchor is not None and trains_through(cfg) else None)
    dm.encode()
    return dm, expanded, bases


def run_simulator(cfg: DictConfig, splits: dict[str, list[SurveyItem]], eval_names: list[str],
                  out_dir: Path, logger) -> tuple[dict[str, list[dict]], list[dict], dict]:
    """Returns prediction rows per split, the training history and extra metrics (zero-shot comparison);
    `logger` is the job's Lightning logger (or None)."""
    train = bool(cfg.method.train)
    anchor = build_anchor(cfg, splits)
    tokenizer = load_tokenizer(cfg.model)
    dm, expanded, bases = build_datamodule(cfg, splits, eval_names, tokenizer, train=train, anchor=anchor)

    rows: dict[str, list[dict]] = {}
    anchor_bases: dict[str, list] = {}

    def evaluate(split: str, probs, letter_mass) -> dict:
        items, probs, mass = expanded[split], probs.numpy(), letter_mass.numpy()
        if anchor is None:
            rows[split] = prediction_rows(items, probs, bases[split], mass)
            return split_metrics(rows[split])
        if split not in anchor_bases:
            anchor_bases[split] = anchor.bases(items)
        rows[split] = prediction_rows(items, anchor.apply(items, probs, anchor_bases[split]), bases[split], mass)
        # what the model alone and the base alone predicted, for analysis (original option order)
        for key, parts in (("pred_model", probs), ("anchor_base", anchor_bases[split])):
            for row, part in zip(rows[split], prediction_rows(items, parts, bases[split])):
                row[key] = part["pred"]
        return split_metrics(rows[split])

    backbone = load_model(cfg.model)
    if cfg.adapter_path:
        backbone = load_adapter(backbone, resolve_adapter(str(cfg.adapter_path)), trainable=train)
    elif train:
        backbone = add_lora(backbone, cfg.model.lora)
    loss_kwargs = {k: v for k, v in OmegaConf.to_container(cfg.loss, resolve=True).items() if k != "name"}
    module = SurveySimulator(
        backbone, loss=cfg.loss.name, loss_kwargs=loss_kwargs, lr=float(cfg.optim.lr),
        weight_decay=float(cfg.optim.weight_decay), warmup_steps=int(cfg.optim.warmup_steps),
        schedule=str(cfg.optim.schedule),
        eval_split_names=eval_names, val_split=dm.val_splits, evaluate_fn=evaluate,
        gradient_checkpointing=bool(cfg.speed.gradient_checkpointing),
        anchor_rule=str(cfg.anchor.rule) if anchor is not None and trains_through(cfg) else None,
        split_sizes={name: len(items) for name, items in expanded.items()})
    configure_cuda_kernels(cfg.speed)
    placed_on = next(backbone.parameters()).device if cfg.model.get("device_map") else None
    trainer = build_trainer(cfg, out_dir, logger, validates=train and bool(dm.val_splits), placed_on=placed_on)
    extra: dict = {}
    if train and cfg.method.get("eval_before_training", False):
        trainer.test(module, datamodule=dm, verbose=False)
        extra["before_training"] = {s: split_metrics(r) for s, r in rows.items()}
    if train:
        trainer.fit(module, datamodule=dm, ckpt_path=last_checkpoint(out_dir) if cfg.resume else None,
                    weights_only=True)  # checkpoints hold tensors and plain values: nothing to unpickle
        selection = cfg.trainer.get("selection")
        if selection is not None and selection.get("restore_best", False):
            extra["selection"] = restore_best(trainer, module, evaluate)
        with full_parameters(trainer):  # FSDP: gathered from the shards; every rank enters
            if trainer.is_global_zero:
                save_adapter(module, out_dir)
    if cfg.get("calibrate"):  # fit T on val at T = 1; the test pass below uses it (calibration.json)
        from survey_sim.evaluation.calibration import calibrate_module
        extra["calibration"] = calibrate_module(trainer, module, dm, expanded.get("val", []), bases.get("val", []),
                                                 out_dir)
    final_evaluation(trainer, module, dm, eval_names, rows)
    if anchor is not None:
        if cfg.anchor.get("fit"):
            extra["before_anchor_fit"] = {s: split_metrics(r) for s, r in rows.items()}
            for group in fitted_groups(cfg.anchor):
                split = FIT_SPLITS[group]
                anchor.fit(group, expanded[split], module.predictions[split].numpy(), anchor_bases[split])
            for split in eval_names:  # every split again, with the fitted weights
                evaluate(split, module.predictions[split], module.letter_mass[split])
        extra["anchor"] = {**anchor.summary(), "train_through": trains_through(cfg)}
    if module.validations:
        extra["validations"] = list(module.validations)
    return rows, module.history, extra


def trains_through(cfg: DictConfig) -> bool:
    """Whether a fine-tuning run trains through its anchor (the loss sees the combined distribution)."""
    return bool(cfg.method.train) and bool(cfg.anchor.get("base")) and bool(cfg.anchor.get("train_through"))


def restore_best(trainer, module: SurveySimulator, evaluate) -> dict:
    """Load the adapter of the best validation (the selection ModelCheckpoint's file) into the module, so
    that the saved adapter and the final evaluation use it. Its validation predictions are kept when the
    module made them in this process (not before a resume); other splits are predicted again."""
    best = next((cb for cb in trainer.checkpoint_callbacks if cb.monitor), None)
    if best is None or not best.best_model_path or not Path(best.best_model_path).exists():
        log.warning("no best checkpoint was written (no validation ran?): evaluating the last weights")
        return {"restored": False}
    ckpt = torch.load(best.best_model_path, map_location="cpu", weights_only=True)
    missing, unexpected = module.load_state_dict(ckpt["state_dict"], strict=False)
    trainable = {n for n, p in module.named_parameters() if p.requires_grad}
    if unexpected or trainable & set(missing):
        raise SurveySimError(f"best checkpoint {best.best_model_path}: does not match the adapter (missing "
                             f"{sorted(trainable & set(missing))[:3]}, unexpected {sorted(unexpected)[:3]})")
    step, score = int(ckpt["global_step"]), float(best.best_model_score)
    module.predicted_with = {}
    kept = module.best_validation if (module.best_validation or {}).get("step") == step else None
    for split, probs in (kept or {}).get("predictions", {}).items():
        module.predictions[split], module.letter_mass[split] = probs, kept["letter_mass"][split]
        module.predicted_with[split] = module.weights_state()
        evaluate(split, probs, module.letter_mass[split])
    log.info("restored the adapter of step %d (best %s = %.4f of %d validations)", step, best.monitor, score,
             len(module.validations))
    return {"restored": True, "step": step, "monitor": best.monitor, "score": score,
            "checkpoint": str(Path(best.best_model_path).name)}


def final_evaluation(trainer, module: SurveySimulator, dm: SurveyDataModule, eval_names: list[str],
                     rows: dict[str, list[dict]]) -> None:
    """The final test pass over the evaluation splits, except those the module has predicted with its
    current weights and temperature already (the validation split, validated at the end of training): their
    predictions are kept, and their metrics logged under test/<split>/ as a test pass would."""
    current = [name for name in eval_names if name in module.current_predictions()]
    remaining = [name for name in eval_names if name not in current]
    if current:
        log.info("split(s) %s: keeping the predictions of the validation made with these weights (the restored "
                 "best, or the last step's), not evaluating them again", current)
        if trainer.is_global_zero and trainer.logger is not None:
            trainer.logger.log_metrics({k: v for name in current
                                        for k, v in logged_metrics(f"test/{name}", split_metrics(rows[name])).items()},
                                       step=trainer.global_step)
    if not remaining:
        return
    saved = dm.eval_split_names, module.eval_split_names
    dm.eval_split_names = module.eval_split_names = remaining  # the test dataloaders and their split names
    try:
        trainer.test(module, datamodule=dm, verbose=False)
    finally:
        dm.eval_split_names, module.eval_split_names = saved
