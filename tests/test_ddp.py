"""Multi-process runs: DDP over 2 CPU processes (gloo) through the real entry point, and the scale-out configs.

DDP fine-tuning on 2 ranks sees different batches than one process (the global batch doubles), so the
trained adapters differ by design. The check is therefore: the adapter that the DDP run saved (once, from
rank 0) evaluated by a single process gives the same predictions as the DDP run gathered from its ranks.
Evaluation batches of 5 items make the ranks hold different numbers of rows, and the rank-aware sampler
repeats a batch on one rank: the gathered predictions must have neither duplicates nor gaps.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
COMMON = ["model=tiny_random", "data=demo", "logger=csv", "max_items=24", "model.batch_size=4",
          "model.eval_batch_size=5", "trainer.accelerator=cpu", "trainer.enable_progress_bar=false",
          "trainer.max_steps=2"]


def _run(out: Path, *overrides: str) -> list[dict]:
    env = {**os.environ, "WANDB_MODE": "offline", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
           "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "survey_sim.run", *COMMON, f"hydra.run.dir={out}", *overrides],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert (out / "metrics.json").exists()
    assert proc.stdout.count("outputs: ") == 1, "the results table must be printed once, by rank 0"
    return [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]


def _by_key(rows: list[dict]) -> dict[tuple, list[float]]:
    keyed = {(r["split"], r["group"], r["question_id"]): r["pred"] for r in rows}
    assert len(keyed) == len(rows), "duplicate prediction rows"
    return keyed


def test_ddp_predictions_equal_the_single_process_evaluation_of_its_adapter(tmp_path):
    ddp = _by_key(_run(tmp_path / "ddp", "trainer=ddp", "trainer.devices=2", "method=ft"))
    adapter = tmp_path / "ddp" / "adapter" / "adapter_config.json"
    assert adapter.exists() and not list((tmp_path / "ddp").glob(".adapter.tmp*"))
    single = _by_key(_run(tmp_path / "single", "trainer.devices=1", "method=zs", f"adapter_path={tmp_path / 'ddp'}"))
    assert ddp.keys() == single.keys()
    assert {split for split, _, _ in ddp} == {"val", "test-unseen-country", "test-unseen-question", "test-unseen-both"}
    for key, pred in single.items():
        assert ddp[key] == pytest.approx(pred, abs=1e-5), key


@pytest.mark.parametrize("strategy", ["ddp", "fsdp"])
def test_scale_out_configs_compose(strategy):
    from hydra import compose, initialize_config_dir

    from survey_sim.training import build_strategy

    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose("config", overrides=[f"trainer={strategy}", "trainer.devices=4", "hydra/launcher=slurm"],
                      return_hydra_config=True)
    assert cfg.trainer.devices == 4 and cfg.trainer.share_prefix == (strategy == "ddp")
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("SlurmLauncher") and launcher.tasks_per_node == 4 == launcher.gpus_per_node
    built = build_strategy(cfg.trainer)
    if strategy == "ddp":
        assert built == "ddp"
    else:
        from lightning.pytorch.strategies import FSDPStrategy

        assert isinstance(built, FSDPStrategy) and built.kwargs["use_orig_params"] is True


def test_fsdp_units_are_decoder_layers_and_trainable_leaves():
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from survey_sim.model.simulator import add_lora
    from survey_sim.training import _fsdp_unit

    model = add_lora(LlamaForCausalLM(LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=64,
                                                  num_hidden_layers=2, num_attention_heads=4,
                                                  num_key_value_heads=2)),
                     {"r": 2, "alpha": 4, "dropout": 0.0, "target_modules": ["q_proj", "v_proj"]})
    units = {name for name, m in model.named_modules() if _fsdp_unit(m, "DecoderLayer")}
    layers = {n for n in units if n.endswith(("layers.0", "layers.1"))}
    assert len(layers) == 2
    assert units - layers and all(".lora_" in n for n in units - layers)
    assert all(isinstance(m, torch.nn.Linear) for n, m in model.named_modules() if n in units - layers)
