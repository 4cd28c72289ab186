"""The speed benchmark and the GPU check: both paths agree, the measurements are well-formed, FLOPs are counted
as documented. Tiny models on CPU only (the real numbers come from running the scripts)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import time
from pathlib import Path

import bench
import pytest
import torch

from survey_sim.data.batching import EncodedItem

REPO = Path(__file__).resolve().parents[2]


def _script(name: str):
    spec = importlib.util.spec_from_file_location(f"experiments_{name}", REPO / "experiments" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_naive_collate_left_pads_to_the_fixed_length():
    items = [EncodedItem(0, (5, 6, 7), (1, 2), (0.5, 0.5)), EncodedItem(1, (8,), (3, 4, 9), (0.2, 0.3, 0.5))]
    b = bench.naive_collate(items, pad_id=0, length=6)
    assert b["input_ids"].tolist() == [[0, 0, 0, 5, 6, 7], [0, 0, 0, 0, 0, 8]]
    assert b["position_ids"][:, -1].tolist() == [2, 0] and b["attention_mask"].sum().item() == 4
    with pytest.raises(ValueError, match="fixed length 2"):
        bench.naive_collate(items, pad_id=0, length=2)


def test_flop_count_and_card_peaks():
    from transformers import LlamaConfig, LlamaForCausalLM

    from survey_sim.modeling.lora import add_lora

    cfg = LlamaConfig(vocab_size=100, hidden_size=32, intermediate_size=64, num_hidden_layers=3,
                      num_attention_heads=4, num_key_value_heads=2)
    model = add_lora(LlamaForCausalLM(cfg), {"r": 2, "alpha": 4, "dropout": 0.0, "target_modules": ["q_proj"]})
    stats = bench.decoder_stats(model)
    per_layer = 32 * 32 * 2 + 32 * 16 * 2 + 3 * 32 * 64  # q, o; k, v (2 kv heads of 8); gate, up, down
    assert stats["layer_params"] == 3 * per_layer and stats["attn_width"] == 32
    forward = bench.useful_flops(stats, [10, 20], train=False)
    assert forward == 2 * 3 * per_layer * 30 + 2 * 3 * 32 * (100 + 400)
    assert bench.useful_flops(stats, [10, 20], train=True) == 2 * (2 * 3 * per_layer * 30) + 3 * 2 * 3 * 32 * 500
    assert bench.bf16_peak_tflops("NVIDIA H100 80GB HBM3") == 989.0
    assert bench.bf16_peak_tflops("NVIDIA H100 PCIe") == 756.0
    assert bench.bf16_peak_tflops("NVIDIA H200") == 989.0 and bench.bf16_peak_tflops("Quadro") is None


def test_peak_memory_sees_a_large_cpu_allocation():
    with bench.PeakMemory(torch.device("cpu"), interval=0.001) as mem:
        x = torch.ones(64 * 2**20 // 4)  # 64 MiB, touched
        time.sleep(0.05)
        del x
    assert 48 * 2**20 < mem.peak_bytes < 256 * 2**20


def test_lightning_evaluates_under_inference_mode(tmp_path, tiny_cfg):
    from omegaconf import OmegaConf

    from survey_sim.data.batching import collate
    from survey_sim.modeling.loading import load_model
    from survey_sim.modeling.simulator import SurveySimulator
    from survey_sim.training.trainer import build_trainer

    seen = []

    class Probe(SurveySimulator):
        def test_step(self, batch, batch_idx, dataloader_idx=0):
            seen.append(torch.is_inference_mode_enabled())
            return super().test_step(batch, batch_idx, dataloader_idx)

    items = [EncodedItem(i, tuple(range(5, 9 + i)), (10, 11), (0.5, 0.5)) for i in range(3)]
    loader = torch.utils.data.DataLoader(items, batch_size=2, collate_fn=lambda xs: collate(xs, 0))
    cfg = OmegaConf.create({"trainer": OmegaConf.load(REPO / "conf" / "trainer" / "default.yaml")})
    cfg.trainer.update(accelerator="cpu", enable_progress_bar=False)
    module = Probe(load_model(tiny_cfg), eval_split_names=["s"], val_split=None)
    build_trainer(cfg, tmp_path, None).test(module, dataloaders=[loader], verbose=False)
    assert seen == [True, True] and module.predictions["s"].shape == (3, 26)


def test_benchmark_on_a_tiny_model_agrees_and_reports_both_paths(tiny_cfg):
    benchmark = _script("benchmark")
    from survey_sim.modeling.loading import load_backbone
    from survey_sim.modeling.lora import add_lora
    from survey_sim.modeling.simulator import SurveySimulator

    cfg = benchmark.compose_config("tiny_random", "demo")
    items, note = benchmark.load_items(cfg, "val", 12, seed=0)
    assert len(items) == 12 and "demo" in note
    model, tokenizer = load_backbone(cfg.model)
    dm, unshared = (benchmark.build_data(cfg, items, tokenizer, batch_size=4, eval_batch_size=8, bucket=1, seed=0,
                                         share_prefix=share) for share in (True, False))
    assert "prefix_ids" in next(iter(dm.test_dataloader()[0]))  # the chat template's system turn, at least
    sim = SurveySimulator(add_lora(model, cfg.model.lora), loss="kl")
    result = benchmark.run_benchmark(sim, dm, naive_batch=4, naive_length=160, train_steps=1, repeats=1,
                                     unshared=unshared)
    rows = {(r["path"], r["phase"]): r for r in result["rows"]}
    assert set(rows) == {(p, ph) for p in ("ours", "ours-noprefix", "naive") for ph in ("eval", "train")}
    assert rows[("ours", "eval")]["examples"] == rows[("naive", "eval")]["examples"] == 12
    assert rows[("ours", "train")]["examples"] == rows[("naive", "train")]["examples"] == 4
    assert all(r["examples_per_s"] > 0 and r["peak_mb"] is not None for r in rows.values())
    computed = {path: rows[(path, "eval")]["computed_per_prompt_token"] for path in ("ours", "ours-noprefix", "naive")}
    assert computed["ours"] < 0.9 < computed["ours-noprefix"] < 1.2 < computed["naive"]
    assert result["max_abs_prob_diff"] < 1e-5
    assert set(result["ratios"]) == {"eval", "train", "eval_noprefix", "train_noprefix", "peak_memory_eval",
                                     "peak_memory_train", "eval_ours_over_noprefix", "train_ours_over_noprefix"}
    assert "speed-up over naive: eval" in benchmark.format_table(result)


def test_benchmark_of_option_orders_shares_an_items_prefix_with_equal_probabilities(tiny_cfg):
    """--permutations: every item in 3 cyclic shifts, evaluation only; ours (orders shared), ours with the batch
    prefix only and ours without sharing predict the same probabilities, ours computing the fewest positions."""
    benchmark = _script("benchmark")
    from survey_sim.evaluation.orders import expand_permutations
    from survey_sim.modeling.loading import load_backbone
    from survey_sim.modeling.lora import add_lora
    from survey_sim.modeling.simulator import SurveySimulator

    cfg = benchmark.compose_config("tiny_random", "demo")
    items = expand_permutations(benchmark.load_items(cfg, "val", 6, seed=0)[0], 3)[0]
    model, tokenizer = load_backbone(cfg.model)
    dms = [benchmark.build_data(cfg, items, tokenizer, batch_size=4, eval_batch_size=8, bucket=1, seed=0,
                                share_prefix=share) for share in (True, False, True)]
    benchmark.without_order_sharing(dms[2])
    assert "item_prefix_ids" in next(iter(dms[0].test_dataloader()[0]))
    assert "item_prefix_ids" not in next(iter(dms[2].test_dataloader()[0]))
    sim = SurveySimulator(add_lora(model, cfg.model.lora), loss="kl")
    result = benchmark.run_benchmark(sim, dms[0], naive_batch=4, naive_length=160, train_steps=1, repeats=1,
                                     unshared=dms[1], batch_prefix_only=dms[2], phases=("eval",), naive=False,
                                     memory=False)
    rows = {r["path"]: r for r in result["rows"]}
    assert set(rows) == {"ours", "ours-noprefix", "ours-batchprefix"} and result["compared_with"] == "ours-noprefix"
    assert all(r["phase"] == "eval" and r["examples"] == len(items) for r in rows.values())
    computed = {path: r["computed_per_prompt_token"] for path, r in rows.items()}
    assert computed["ours"] < computed["ours-batchprefix"] < computed["ours-noprefix"]
    assert result["max_abs_prob_diff"] < 1e-5
    assert set(result["ratios"]) == {"eval_ours_over_noprefix", "eval_ours_over_batchprefix"}
    assert "ours over ours without prefix sharing: eval" in benchmark.format_table(result)


def test_gpu_check_tiny_runs_on_cpu_without_hydra(tmp_path):
    """The GPU machine has torch, transformers, peft and lightning only: Hydra, OmegaConf, POT and W&B are
    made unimportable in the child process."""
    code = ("import runpy, sys\n"
            "for m in ('hydra', 'omegaconf', 'ot', 'wandb'): sys.modules[m] = None\n"
            f"sys.argv = ['gpu_check.py', '--tiny', '--out', {str(tmp_path)!r}, '--eval-items', '12', "
            "'--train-examples', '8']\n"
            "sys.path.insert(0, 'experiments')\n"
            "runpy.run_path('experiments/gpu_check.py', run_name='__main__')\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300,
                          check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "| llama3_8b | naive eval b4 |" in proc.stdout and "qwen2_7b train: ours" in proc.stdout
    gpu_check = _script("gpu_check")
    saved = json.loads((tmp_path / "gpu_check.json").read_text())
    assert saved["setup"]["tiny"] and set(saved["models"]) == {"llama3_8b", "qwen2_7b"}
    for name, entry in saved["models"].items():
        kind = {"llama3_8b": "llama", "qwen2_7b": "qwen2"}[name]
        assert entry["architecture"]["model_type"] == kind and entry["architecture"]["hidden_size"] == 64
        assert [r["variant"] for r in entry["rows"]] == [v.name for v in gpu_check.TINY_VARIANTS]
        assert all("error" not in r and r["examples_per_s"] > 0 and r["mfu"] is None for r in entry["rows"])
        assert entry["max_abs_prob_diff"] < 1e-5
        assert set(entry["best"]) == {"eval", "train"}
        orders = [r for r in entry["rows"] if r["orders"] == 4]
        assert [r["shared"] for r in orders] == [False, True] and entry["orders_max_abs_prob_diff"] < 1e-5
        assert orders[1]["computed_per_prompt_token"] < 0.8 * orders[0]["computed_per_prompt_token"]
        assert entry["orders_shared_over_unshared"] > 0
    # the full-size architectures are the published ones
    assert gpu_check.ARCHS["llama3_8b"][1]["intermediate_size"] == 14336
    assert gpu_check.ARCHS["qwen2_7b"][1]["vocab_size"] == 152064


@pytest.mark.parametrize("cudnn", [False, True])
def test_cuda_kernel_settings(monkeypatch, cudnn):
    """On CUDA the trainer enables TF32 and turns SDPA's cuDNN backend on only with speed.cudnn_attention
    (the GPU itself is simulated: this machine has none)."""
    from omegaconf import OmegaConf

    from survey_sim.training.trainer import configure_cuda_kernels

    calls = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.backends.cuda, "enable_cudnn_sdp", calls.append)
    trainer_cfg = OmegaConf.load(REPO / "conf" / "speed" / "default.yaml")
    if cudnn:
        trainer_cfg.cudnn_attention = True
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    try:
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
        configure_cuda_kernels(trainer_cfg)
        assert calls == [cudnn]
        assert torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved
