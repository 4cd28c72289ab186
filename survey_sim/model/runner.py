"""Zero-shot and fine-tuned simulator runs: tokenize, load the model, train, evaluate every split."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from omegaconf import DictConfig

from survey_sim.data.datamodule import SurveyDataModule
from survey_sim.data.item import SurveyItem
from survey_sim.data.transforms import role_flag, shuffle_options
from survey_sim.evaluation import expand_permutations, prediction_rows, split_metrics
from survey_sim.model.loading import context_length, load_model, load_tokenizer
from survey_sim.model.simulator import SurveySimulator, add_lora, load_adapter, logged_metrics
from survey_sim.prompts import PromptBuilder
from survey_sim.training import build_logger, build_trainer, full_parameters

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
    if not role_flag(cfg.data.get("shuffle") or False, "train"):
        return []
    max_epochs = int(cfg.trainer.max_epochs)
    epochs = min(max_epochs, MAX_TRAIN_ORDERS) if max_epochs > 0 else MAX_TRAIN_ORDERS
    seed = int(cfg.data.get("seed") or 0)
    return [shuffle_options(train_items, seed, epoch) for epoch in range(1, epochs)]


def build_datamodule(cfg: DictConfig, splits: dict[str, list[SurveyItem]], eval_names: list[str], tokenizer,
                     *, train: bool) -> tuple[SurveyDataModule, dict, dict]:
    """DataModule over the training split and the (permutation-expanded) evaluation splits, encoded."""
    expanded, bases = {}, {}
    for name in eval_names:
        expanded[name], bases[name] = expand_permutations(splits[name], int(cfg.permutations))
    data = dict(expanded)
    if train:
        data["train"] = splits["train"]
    builder = PromptBuilder(cfg.prompt, tokenizer=tokenizer, chat_template=bool(cfg.model.chat_template),
                            family=cfg.model.get("paper_chat_format"))
    share_prefix = bool(cfg.trainer.get("share_prefix", False))
    if share_prefix and cfg.model.get("trust_remote_code"):
        log.info("model %r runs its own (remote) code: prefix sharing is off, since that code may not take a "
                 "key/value cache object", cfg.model.name)
        share_prefix = False
    dm = SurveyDataModule(
        data, tokenizer, builder, batch_size=int(cfg.model.batch_size),
        eval_batch_size=int(cfg.model.eval_batch_size), seed=int(cfg.seed),
        max_length=context_length(cfg.model, tokenizer), train_split="train" if train else None,
        val_split="val" if "val" in eval_names else None, eval_splits=eval_names,
        bucket_multiple=int(cfg.trainer.get("bucket_multiple") or 1),
        share_prefix=share_prefix,
        train_epoch_items=reshuffled_epochs(cfg, splits["train"]) if train else ())
    dm.encode()
    return dm, expanded, bases


def run_simulator(cfg: DictConfig, splits: dict[str, list[SurveyItem]], eval_names: list[str],
                  out_dir: Path) -> tuple[dict[str, list[dict]], list[dict], dict]:
    """Returns prediction rows per split, the training history and extra metrics (zero-shot comparison)."""
    train = bool(cfg.method.train)
    tokenizer = load_tokenizer(cfg.model)
    dm, expanded, bases = build_datamodule(cfg, splits, eval_names, tokenizer, train=train)

    rows: dict[str, list[dict]] = {}

    def evaluate(split: str, probs, letter_mass) -> dict:
        rows[split] = prediction_rows(expanded[split], probs.numpy(), bases[split], letter_mass.numpy())
        return split_metrics(rows[split])

    backbone = load_model(cfg.model)
    if cfg.adapter_path:
        backbone = load_adapter(backbone, resolve_adapter(str(cfg.adapter_path)), trainable=train)
    elif train:
        backbone = add_lora(backbone, cfg.model.lora)
    loss_kwargs = {k: v for k, v in cfg.loss.items() if k != "name"}
    module = SurveySimulator(
        backbone, loss=cfg.loss.name, loss_kwargs=loss_kwargs, lr=float(cfg.trainer.optim.lr),
        weight_decay=float(cfg.trainer.optim.weight_decay), warmup_steps=int(cfg.trainer.optim.warmup_steps),
        eval_split_names=eval_names, val_split=dm.val_split, evaluate_fn=evaluate,
        gradient_checkpointing=bool(cfg.trainer.gradient_checkpointing),
        split_sizes={name: len(items) for name, items in expanded.items()})
    logger = build_logger(cfg, out_dir)
    trainer = build_trainer(cfg, out_dir, logger)
    extra: dict = {}
    if train and cfg.method.get("eval_before_training", False):
        trainer.test(module, datamodule=dm, verbose=False)
        extra["before_training"] = {s: split_metrics(r) for s, r in rows.items()}
    if train:
        trainer.fit(module, datamodule=dm, ckpt_path=last_checkpoint(out_dir) if cfg.resume else None,
                    weights_only=True)  # checkpoints hold tensors and plain values: nothing to unpickle
        with full_parameters(trainer):  # FSDP: gathered from the shards; every rank enters
            if trainer.is_global_zero:
                save_adapter(module, out_dir)
    if cfg.get("calibrate"):  # fit T on val at T = 1; the test pass below uses it (calibration.json)
        from survey_sim.calibration import calibrate_module
        extra["calibration"] = calibrate_module(trainer, module, dm, expanded.get("val", []), bases.get("val", []),
                                                 out_dir)
    final_evaluation(trainer, module, dm, eval_names, rows)
    log_to_wandb(logger, rows)
    return rows, module.history, extra


def final_evaluation(trainer, module: SurveySimulator, dm: SurveyDataModule, eval_names: list[str],
                     rows: dict[str, list[dict]]) -> None:
    """The final test pass over the evaluation splits, except those the module has predicted with its
    current weights and temperature already (the validation split, validated at the end of training): their
    predictions are kept, and their metrics logged under test/<split>/ as a test pass would."""
    current = [name for name in eval_names if name in module.current_predictions()]
    remaining = [name for name in eval_names if name not in current]
    if current:
        log.info("split(s) %s: keeping the predictions of the validation at step %d (same weights), not "
                 "evaluating them again", current, trainer.global_step)
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


def log_to_wandb(logger, rows: dict[str, list[dict]]) -> None:
    """A predictions table and a per-country 1-JSD bar chart per split, when logging to W&B."""
    from lightning.pytorch.loggers import WandbLogger

    if not isinstance(logger, WandbLogger):
        return
    import wandb

    columns = ["split", "group", "prompt_group", "question_id", "human", "pred", "jsd", "emd", "accuracy"]
    data = [[r[c] if not isinstance(r[c], list) else str([round(x, 4) for x in r[c]]) for c in columns]
            for split_rows in rows.values() for r in split_rows]
    logger.log_table(key="predictions", columns=columns, data=data)
    for split, split_rows in rows.items():
        by_country: dict[str, list[float]] = {}
        for r in split_rows:
            by_country.setdefault(r["group"], []).append(r["jsd"])
        table = wandb.Table(columns=["country", "jsd"],
                            data=[[c, sum(v) / len(v)] for c, v in sorted(by_country.items())])
        logger.experiment.log({f"charts/{split}/jsd_by_country":
                               wandb.plot.bar(table, "country", "jsd", title=f"1-JSD by country ({split})")})
