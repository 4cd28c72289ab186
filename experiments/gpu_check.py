"""GPU check: training and evaluation speed and MFU of the fast path against the paper's naive path.

    bash experiments/gpu_check.sh                   # through the device tool; results in $OUT
    python experiments/gpu_check.py --tiny          # the same on CPU with tiny models (a test runs this)

Builds models with the exact Llama-3-8B and Qwen2-7B architectures from written configs with random bf16
weights directly on the GPU (no download: weights do not change the speed), adds LoRA r=8 on q/v as in the
paper, and runs prompts of random token ids whose lengths are drawn like WVS prompts (mean ~103 tokens).
For each model: the naive path (every prompt padded to 256 tokens, full-vocabulary logits, per-item loss
loop; batch 8 as measured in the issue) and our path in a few variants (batch size; the framework's default
SDPA without cuDNN attention, and cuDNN attention without and with length bucketing to a multiple of 64), and
evaluation of every prompt in 4 option orders (the stem of a prompt shared, the rest differing per order)
without and with the shared prefix across orders.
Reports examples/s, MFU (useful FLOPs, see `bench.useful_flops`, against the card's dense bf16
peak), peak memory, and the ratios.
Needs only torch, transformers, peft and lightning (no Hydra, no data files, no network).
Results are rewritten to <out>/gpu_check.json after every measurement, so a timeout keeps what ran.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import bench

from survey_sim.data.batching import EncodedItem, whole_rows
from survey_sim.io import atomic_write_json
from survey_sim.modeling.lora import add_lora
from survey_sim.modeling.simulator import SurveySimulator

ARCHS = {  # from the models' published config.json files
    "llama3_8b": ("llama", {"hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32,
                            "num_attention_heads": 32, "num_key_value_heads": 8, "vocab_size": 128256,
                            "rope_theta": 500000.0, "max_position_embeddings": 8192, "rms_norm_eps": 1e-5,
                            "tie_word_embeddings": False}),
    "qwen2_7b": ("qwen2", {"hidden_size": 3584, "intermediate_size": 18944, "num_hidden_layers": 28,
                           "num_attention_heads": 28, "num_key_value_heads": 4, "vocab_size": 152064,
                           "rope_theta": 1000000.0, "max_position_embeddings": 32768, "rms_norm_eps": 1e-6,
                           "tie_word_embeddings": False}),
}
TINY = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
        "num_key_value_heads": 2, "vocab_size": 512, "max_position_embeddings": 512, "tie_word_embeddings": False}
LORA = {"r": 8, "alpha": 32, "dropout": 0.05, "target_modules": ["q_proj", "v_proj"]}
MEAN_PROMPT_TOKENS = 103  # WVS prompts with the Llama-3 tokenizer (the issue's measurement)


@dataclass(frozen=True)
class Variant:
    path: str            # naive | ours
    phase: str           # eval | train
    batch_size: int
    bucket: int = 1      # ours: pad lengths up to a multiple of this
    cudnn_sdpa: bool = False  # SDPA may use cuDNN attention (speed.cudnn_attention; off in the framework)
    orders: int = 1      # every prompt in this many option orders (permutation averaging)
    shared: bool = False  # ours with orders > 1: an item's orders share their common prefix

    @property
    def name(self) -> str:
        extra = "" if self.path == "naive" else f" bucket {self.bucket}" + (" cuDNN" if self.cudnn_sdpa else "")
        if self.orders > 1:
            extra += f" {self.orders} orders {'shared' if self.shared else 'unshared'}"
        return f"{self.path} {self.phase} b{self.batch_size}{extra}"

    @property
    def predictions(self) -> str:
        """Variants with the same key predict the same prompts and must agree."""
        return self.path if self.orders == 1 else f"{self.orders} orders"


# Naive: batch 8 with PyTorch's default attention backends, as the issue measured the paper's path. Ours: the
# framework's defaults (per-batch padding, SDPA without cuDNN attention) at the issue's anchor batches (eval
# 64, train 32) and larger ones; then cuDNN attention without and with length bucketing (the issue's warning).
VARIANTS = [
    Variant("naive", "eval", 8, cudnn_sdpa=True), Variant("ours", "eval", 64), Variant("ours", "eval", 128),
    Variant("ours", "eval", 256), Variant("ours", "eval", 64, cudnn_sdpa=True),
    Variant("ours", "eval", 128, 64, cudnn_sdpa=True),
    Variant("ours", "eval", 128, orders=4), Variant("ours", "eval", 128, orders=4, shared=True),
    Variant("naive", "train", 8, cudnn_sdpa=True), Variant("ours", "train", 32), Variant("ours", "train", 64),
    Variant("ours", "train", 32, cudnn_sdpa=True), Variant("ours", "train", 32, 64, cudnn_sdpa=True),
]
TINY_VARIANTS = [Variant("naive", "eval", 4), Variant("ours", "eval", 8), Variant("ours", "eval", 8, 16),
                 Variant("ours", "eval", 8, orders=4), Variant("ours", "eval", 8, orders=4, shared=True),
                 Variant("naive", "train", 4), Variant("ours", "train", 8, 16)]
#: With orders > 1, this share of a prompt (its instruction and question) is common to its orders.
STEM_SHARE = 0.55


def wvs_like_items(n: int, vocab: int, seed: int, mean: float = MEAN_PROMPT_TOKENS) -> list[EncodedItem]:
    """Random prompts with gamma-distributed lengths (mean `mean`, sd ~mean/3, 30..250 tokens), 2-10 options."""
    gen = torch.Generator().manual_seed(seed)
    shape = 9.0
    lengths = torch.distributions.Gamma(torch.tensor(shape), torch.tensor(shape / mean)).sample((n,))
    items = []
    for i, length in enumerate(lengths.round().clamp(30, 250).long().tolist()):
        k = int(torch.randint(2, 11, (1,), generator=gen))
        ids = torch.randint(3, vocab, (length,), generator=gen).tolist()
        options = (torch.randperm(vocab - 3, generator=gen)[:k] + 3).tolist()
        target = torch.rand(k, generator=gen) + 0.05
        items.append(EncodedItem(i, tuple(ids), tuple(options), tuple((target / target.sum()).tolist())))
    return items


def in_orders(items: list[EncodedItem], n: int) -> list[EncodedItem]:
    """Every item in n option orders: its first STEM_SHARE of tokens kept (instruction, question), the rest
    (the options block) rotated by 0..n-1 tokens; the orders of one item share its index as `base`."""
    out = []
    for x in items:
        stem = max(1, int(len(x.input_ids) * STEM_SHARE))
        head, tail = x.input_ids[:stem], x.input_ids[stem:]
        for shift in range(n):
            ids = head + tail[shift % len(tail):] + tail[:shift % len(tail)]
            out.append(EncodedItem(len(out), ids, x.option_ids, x.target, base=x.index))
    return out


def build_model(kind: str, sizes: dict, device: torch.device, dtype: torch.dtype) -> torch.nn.Module:
    """A randomly initialised causal LM built directly on `device` in `dtype`, SDPA attention."""
    from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

    config_cls, model_cls = {"llama": (LlamaConfig, LlamaForCausalLM), "qwen2": (Qwen2Config, Qwen2ForCausalLM)}[kind]
    config = config_cls(**sizes, attn_implementation="sdpa", use_cache=False)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            model = model_cls(config)
    finally:
        torch.set_default_dtype(previous)
    return model.eval()


def _lengths(batches: list[dict]) -> list[int]:
    """Each prompt's tokens, shared prefixes included (useful work is counted per prompt)."""
    return [int(n) for b in batches for n in whole_rows(b)[1].sum(1).tolist()]


def measure(sim, variant: Variant, items: list[EncodedItem], *, n_train: int, device: torch.device,
            peak_tflops: float | None, stats: dict, keep: list | None = None) -> dict:
    """Examples/s, MFU and peak memory of one variant (after a warm-up of two batches)."""
    train = variant.phase == "train"
    items = in_orders(items, variant.orders) if variant.orders > 1 else items
    if variant.path == "naive":
        batches = (bench.naive_batches(items, variant.batch_size, 0, n_examples=n_train) if train
                   else [bench.naive_collate(c, 0) for c in bench.chunks(items, variant.batch_size)])
        eval_fn = lambda b: bench.naive_log_probs(sim.backbone, b)
        loss_fn = lambda b: bench.naive_loss(sim.backbone, b)
    else:
        batches = bench.fast_batches(items, variant.batch_size, 0, train=train, bucket=variant.bucket,
                                     n_examples=n_train if train else None, share_prefix=variant.shared)
        eval_fn = lambda b: bench.fast_log_probs(sim, b)
        loss_fn = lambda b: bench.fast_loss(sim, b)
    autocast = (torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda"
                else contextlib.nullcontext())
    cudnn = (torch.backends.cuda.enable_cudnn_sdp if device.type == "cuda" and hasattr(torch.backends.cuda,
             "enable_cudnn_sdp") else None)
    if cudnn is not None:
        cudnn(variant.cudnn_sdpa)
    optimizer = torch.optim.AdamW([p for p in sim.parameters() if p.requires_grad], lr=1e-5)
    try:
        with autocast:
            sim.train(train)
            run = ((lambda bs, kept=None: bench.time_train(loss_fn, bs, optimizer, device)) if train else
                   (lambda bs, kept=None: bench.time_eval(eval_fn, bs, device, inference=variant.path == "ours",
                                                          keep=kept)))
            run(batches[:2])
            # CUDA: allocator statistics. CPU (--tiny): no memory figure (RSS sampling would slow the timing).
            with bench.PeakMemory(device) if device.type == "cuda" else contextlib.nullcontext() as mem:
                timing = run(batches, keep)
    finally:
        if cudnn is not None:
            cudnn(True)
    flops = bench.useful_flops(stats, _lengths(batches), train=train)
    tflops = flops / timing.seconds / 1e12
    return {"variant": variant.name, **{k: getattr(variant, k) for k in ("path", "phase", "batch_size", "bucket",
                                                                          "cudnn_sdpa", "orders", "shared")},
            "examples_per_s": timing.examples_per_s, "examples": timing.examples, "seconds": timing.seconds,
            "computed_per_prompt_token": timing.padded_tokens / timing.tokens, "useful_tflops_per_s": tflops,
            "mfu": tflops / peak_tflops if peak_tflops else None,
            "peak_gib": mem.peak_bytes / 2**30 if mem is not None else None,
            "distinct_lengths": len({b["input_ids"].shape[1] for b in batches})}


def check_model(name: str, args, device: torch.device, dtype: torch.dtype, peak: float | None,
                results: dict, save) -> None:
    kind, sizes = ARCHS[name]
    sizes = {**sizes, **TINY} if args.tiny else sizes
    torch.manual_seed(args.seed)
    start = time.perf_counter()
    sim = SurveySimulator(add_lora(build_model(kind, sizes, device, dtype), LORA), loss="kl")
    stats = bench.decoder_stats(sim.backbone)
    entry = results["models"].setdefault(name, {"architecture": {"model_type": kind, **sizes}, "rows": []})
    entry.update(build_s=time.perf_counter() - start, decoder_params=stats["layer_params"],
                 total_params=sum(p.numel() for p in sim.backbone.parameters()))
    items = wvs_like_items(args.eval_items, sizes["vocab_size"], args.seed)
    entry["prompt_tokens_mean"] = sum(len(x.input_ids) for x in items) / len(items)
    kept = {}
    for variant in TINY_VARIANTS if args.tiny else VARIANTS:
        if time.perf_counter() - args.started > args.budget_s:
            entry["rows"].append({"variant": variant.name, "error": "skipped: time budget spent"})
            continue
        keep = [] if variant.phase == "eval" else None
        try:
            row = measure(sim, variant, items, n_train=args.train_examples, device=device, peak_tflops=peak,
                          stats=stats, keep=keep)
        except torch.cuda.OutOfMemoryError as err:
            row = {"variant": variant.name, "error": f"out of memory: {str(err).splitlines()[0]}"}
        if keep is not None and "error" not in row:  # the first variant of these prompts is the reference
            probs = bench.per_item_probs(keep)
            if variant.predictions in kept:
                row["max_abs_prob_diff"] = bench.max_prob_diff(probs, kept[variant.predictions])
            else:
                kept[variant.predictions] = probs
        entry["rows"].append(row)
        print(_row_line(name, row), flush=True)
        if device.type == "cuda":
            torch.cuda.empty_cache()
        save()
    if "ours" in kept and "naive" in kept:
        entry["max_abs_prob_diff"] = bench.max_prob_diff(kept["ours"], kept["naive"])
    orders = [r for r in entry["rows"] if r.get("orders", 1) > 1 and "error" not in r]
    if len(orders) == 2:  # the unshared variant kept its predictions; the shared one is compared with them
        entry["orders_shared_over_unshared"] = orders[1]["examples_per_s"] / orders[0]["examples_per_s"]
        entry["orders_max_abs_prob_diff"] = orders[1].get("max_abs_prob_diff")
    entry["best"] = best_ratios(entry["rows"])
    save()
    del sim
    if device.type == "cuda":
        torch.cuda.empty_cache()


def best_ratios(rows: list[dict]) -> dict:
    """Per phase: the naive row, our fastest row and their ratio of examples/s."""
    out = {}
    for phase in ("eval", "train"):
        ok = [r for r in rows if r.get("phase") == phase and "error" not in r and r.get("orders", 1) == 1]
        naive = [r for r in ok if r["path"] == "naive"]
        ours = sorted((r for r in ok if r["path"] == "ours"), key=lambda r: -r["examples_per_s"])
        if naive and ours:
            out[phase] = {"naive": naive[0]["variant"], "ours": ours[0]["variant"],
                          "naive_examples_per_s": naive[0]["examples_per_s"],
                          "ours_examples_per_s": ours[0]["examples_per_s"],
                          "ratio": ours[0]["examples_per_s"] / naive[0]["examples_per_s"]}
    return out


def _fmt(value, spec: str) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else format(value, spec)


def _row_line(model: str, r: dict) -> str:
    if "error" in r:
        return f"| {model} | {r['variant']} | {r['error']} | | | | |"
    return (f"| {model} | {r['variant']} | {r['examples_per_s']:.1f} | {_fmt(r['mfu'], '.1%')} | "
            f"{r['useful_tflops_per_s']:.1f} | {_fmt(r['peak_gib'], '.1f')} | {r['computed_per_prompt_token']:.2f} |")


def format_table(results: dict) -> str:
    lines = ["| model | variant | examples/s | MFU | useful TFLOP/s | peak GiB | computed/prompt tokens |",
             "|---|---|---|---|---|---|---|"]
    for model, entry in results["models"].items():
        lines += [_row_line(model, r) for r in entry["rows"]]
    for model, entry in results["models"].items():
        for phase, b in entry.get("best", {}).items():
            lines.append(f"\n{model} {phase}: ours {b['ours_examples_per_s']:.1f}/s ({b['ours']}) vs naive "
                         f"{b['naive_examples_per_s']:.1f}/s: {b['ratio']:.2f}x")
        if "orders_shared_over_unshared" in entry:
            lines.append(f"{model} eval in several option orders: shared prefix "
                         f"{entry['orders_shared_over_unshared']:.2f}x unshared, max |dp| = "
                         f"{_fmt(entry['orders_max_abs_prob_diff'], '.1e')}")
        if "max_abs_prob_diff" in entry:
            lines.append(f"{model}: max |p_ours - p_naive| = {entry['max_abs_prob_diff']:.1e} "
                         f"({results['setup']['dtype']})")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tiny", action="store_true", help="tiny models on CPU, float32 (for tests)")
    p.add_argument("--models", default="llama3_8b,qwen2_7b")
    p.add_argument("--eval-items", type=int, default=None, help="default 1024 (tiny: 24)")
    p.add_argument("--train-examples", type=int, default=None, help="per variant; default 384 (tiny: 16)")
    p.add_argument("--budget-s", type=float, default=420.0, help="skip remaining variants after this")
    p.add_argument("--peak-tflops", type=float, default=None, help="the card's dense bf16 peak (default: by name)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=os.environ.get("OUT") or str(ROOT / "outputs" / "gpu_check"))
    args = p.parse_args(argv)
    args.started = time.perf_counter()
    args.eval_items = args.eval_items or (24 if args.tiny else 1024)
    args.train_examples = args.train_examples or (16 if args.tiny else 384)
    if args.tiny:
        device, dtype = torch.device("cpu"), torch.float32
    elif torch.cuda.is_available():
        device, dtype = torch.device("cuda"), torch.bfloat16
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    else:
        raise SystemExit("no CUDA device; use --tiny for the CPU check")
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu"
    peak = args.peak_tflops or (bench.bf16_peak_tflops(name) if device.type == "cuda" else None)
    import peft
    import transformers

    results = {"setup": {"device": name, "peak_bf16_tflops": peak, "dtype": str(dtype).replace("torch.", ""),
                         "torch": torch.__version__, "transformers": transformers.__version__,
                         "peft": peft.__version__, "cuda": torch.version.cuda, "lora": LORA,
                         "eval_items": args.eval_items, "train_examples": args.train_examples,
                         "tiny": args.tiny},
               "models": {}}
    out = Path(args.out) / "gpu_check.json"

    def save() -> None:
        atomic_write_json(out, results)

    print(f"device: {name}; peak bf16 {peak} TFLOP/s\n| model | variant | examples/s | MFU | useful TFLOP/s | "
          "peak GiB | computed/prompt tokens |\n|---|---|---|---|---|---|---|", flush=True)
    for model in args.models.split(","):
        if model not in ARCHS:
            raise SystemExit(f"unknown model {model!r}; known: {sorted(ARCHS)}")
        check_model(model, args, device, dtype, peak, results, save)
    results["setup"]["seconds"] = time.perf_counter() - args.started
    save()
    print("\n" + format_table(results))
    print(f"written: {out}")
    return results


if __name__ == "__main__":
    main()
