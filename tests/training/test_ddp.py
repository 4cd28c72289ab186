"""Multi-process runs: DDP over 2 CPU processes (gloo) through the real entry point, the scale-out configs,
and the simulator's FSDP hooks (torch FSDP in one CPU process: Lightning runs FSDP on GPUs only).

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

REPO = Path(__file__).resolve().parents[2]
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

    from survey_sim.training.strategy import build_strategy

    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose("config", overrides=[f"trainer={strategy}", "trainer.devices=4", "hydra/launcher=slurm"],
                      return_hydra_config=True)
    assert cfg.trainer.devices == 4 and cfg.speed.share_prefix == (strategy == "ddp")
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

    from survey_sim.modeling.lora import add_lora
    from survey_sim.training.strategy import _fsdp_unit

    model = add_lora(LlamaForCausalLM(LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=64,
                                                  num_hidden_layers=2, num_attention_heads=4,
                                                  num_key_value_heads=2)),
                     {"r": 2, "alpha": 4, "dropout": 0.0, "target_modules": ["q_proj", "v_proj"]})
    units = {name for name, m in model.named_modules() if _fsdp_unit(m, "DecoderLayer")}
    layers = {n for n in units if n.endswith(("layers.0", "layers.1"))}
    assert len(layers) == 2
    assert units - layers and all(".lora_" in n for n in units - layers)
    assert all(isinstance(m, torch.nn.Linear) for n, m in model.named_modules() if n in units - layers)


@pytest.fixture
def fsdp_simulator(tmp_path):
    """A SurveySimulator (tiny Llama + LoRA) inside a root FSDP module wrapped by the project's FSDP policy,
    as Lightning's FSDPStrategy builds it on GPUs; one process, gloo, on the CPU."""
    import torch
    import torch.distributed as dist
    from hydra import compose, initialize_config_dir
    from torch.distributed.fsdp import FullyShardedDataParallel
    from transformers import LlamaConfig, LlamaForCausalLM

    from survey_sim.modeling.lora import add_lora
    from survey_sim.modeling.simulator import SurveySimulator
    from survey_sim.training.strategy import build_strategy

    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        strategy = build_strategy(compose("config", overrides=["trainer=fsdp"]).trainer)
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'pg'}", rank=0, world_size=1)
    try:
        torch.manual_seed(0)
        backbone = add_lora(LlamaForCausalLM(LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=64,
                                                         num_hidden_layers=2, num_attention_heads=4,
                                                         num_key_value_heads=2)),
                            {"r": 2, "alpha": 4, "dropout": 0.0, "target_modules": ["q_proj", "v_proj"]})
        module = SurveySimulator(backbone)
        root = FullyShardedDataParallel(module, auto_wrap_policy=strategy.kwargs["auto_wrap_policy"],
                                        use_orig_params=True, device_id=torch.device("cpu"))
        yield module, root
    finally:
        dist.destroy_process_group()


def test_fsdp_checkpoints_keep_the_adapter(fsdp_simulator):
    """Under FSDP the trainable parameters' names carry wrapper prefixes that the gathered state dict lacks:
    the checkpoint must still hold exactly the adapter weights."""
    from torch.distributed.fsdp import FullStateDictConfig, FullyShardedDataParallel, StateDictType

    module, root = fsdp_simulator
    assert any("_fsdp_wrapped_module" in n for n, _ in module.named_parameters())
    with FullyShardedDataParallel.state_dict_type(root, StateDictType.FULL_STATE_DICT, FullStateDictConfig()):
        state = root.state_dict()
    checkpoint = {"state_dict": state}
    module.on_save_checkpoint(checkpoint)
    kept = set(checkpoint["state_dict"])
    assert len(kept) == 2 * 2 * 2  # 2 layers x q/v x lora_A/lora_B
    assert kept == {k for k in state if ".lora_" in k}


def test_fsdp_clips_gradients_by_norm(fsdp_simulator):
    """Lightning's FSDP precision plugin refuses norm clipping; the simulator clips through the root FSDP
    module instead (trainer.gradient_clip_val applies to trainer=fsdp as to the other strategies)."""
    from types import SimpleNamespace

    import torch

    module, root = fsdp_simulator
    ids = torch.randint(0, 64, (3, 7))
    batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "position_ids": torch.arange(7).expand(3, 7),
             "option_ids": torch.tensor([[5, 6], [7, 8], [9, 10]]), "option_mask": torch.ones(3, 2, dtype=torch.bool),
             "target": torch.tensor([[0.9, 0.1], [0.2, 0.8], [0.5, 0.5]]), "index": torch.arange(3)}
    (root(batch).exp()[:, 0] * 1e3).sum().backward()
    params = [p for p in module.parameters() if p.requires_grad]
    assert float(torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in params]))) > 1e-2
    module._trainer = SimpleNamespace(strategy=SimpleNamespace(model=root))
    module.configure_gradient_clipping(torch.optim.SGD(params, lr=0.1), gradient_clip_val=1e-2,
                                       gradient_clip_algorithm="norm")
    assert float(torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in params]))) == pytest.approx(1e-2, rel=1e-4)
