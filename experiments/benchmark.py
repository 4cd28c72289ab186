"""Benchmark: the simulator's fast path against the paper's naive path, same items, same model, one process.

    python experiments/benchmark.py --model smollm2_135m --items 300 --split val

Evaluation and LoRA training steps (r and targets from the model config, AdamW) for (a) ours: batches from
`SurveyDataModule` (length-grouped, per-batch padding, the prompt prefix common to a batch computed once)
through `SurveySimulator` (option rows only, evaluation under torch.inference_mode) and (b) the paper's naive path (every prompt padded to 256 tokens,
full-vocabulary logits at all positions, per-item loss loop), interleaved in `--repeats` rounds so that
load from other processes hits both alike. Reports examples/s, peak memory above the loaded model, the
largest probability difference between the paths, and the ratios; prints a table and writes JSON.

Items: `--split` of the data config (default wvs_en when $SURVEY_SIM_DATA is set, else the synthetic demo
survey, noted in the output), a seeded sample of `--items`.
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import random
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch
from omegaconf import OmegaConf

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import bench

from survey_sim.io import atomic_write_json

log = logging.getLogger("benchmark")


def compose_config(model: str, data: str):
    """The project's Hydra config with model= and data= overrides (no run folder is created)."""
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return compose(config_name="config", overrides=[f"model={model}", f"data={data}", "logger=csv"])


def load_items(cfg, split: str, n: int, seed: int) -> tuple[list, str]:
    """A seeded sample of n items of `split` (a note says where they came from)."""
    from survey_sim.data.splits import load_splits

    splits = load_splits(cfg.data)
    if split not in splits:
        raise SystemExit(f"split {split!r} not in data {cfg.data.name!r}; available: {sorted(splits)}")
    items, note = list(splits[split]), f"{cfg.data.name}/{split}"
    if len(items) < n and cfg.data.name == "demo":
        items = [it for name in splits for it in splits[name]]
        note = f"demo survey (synthetic), all splits pooled: {split} has fewer than {n} items"
    if len(items) > n:
        items = random.Random(seed).sample(items, n)
    return items, note


def build_data(cfg, items: list, tokenizer, *, batch_size: int, eval_batch_size: int, bucket: int, seed: int,
               share_prefix: bool = True):
    """A `SurveyDataModule` serving the items as both its training and its evaluation split, encoded."""
    from survey_sim.data.datamodule import SurveyDataModule
    from survey_sim.modeling.loading import context_length
    from survey_sim.modeling.prompts import PromptBuilder

    builder = PromptBuilder(cfg.prompt, tokenizer=tokenizer, chat_template=bool(cfg.model.chat_template),
                            family=cfg.model.get("paper_chat_format"))
    dm = SurveyDataModule({"bench": items}, tokenizer, builder, batch_size=batch_size,
                          eval_batch_size=eval_batch_size, seed=seed,
                          max_length=context_length(cfg.model, tokenizer), train_split="bench", val_split=None,
                          eval_splits=["bench"], bucket_multiple=bucket, share_prefix=share_prefix)
    dm.encode()
    return dm


def _cycle_train_batches(dm, steps: int) -> list[dict]:
    """`steps` training batches from the DataModule's loader, epoch after epoch."""
    out, epoch = [], 0
    while len(out) < steps:
        loader = dm.train_dataloader()
        loader.batch_sampler.set_epoch(epoch)
        out += list(loader)
        epoch += 1
    return out[:steps]


def _parts(batches: list, n: int) -> list[list]:
    """`batches` cut into n consecutive parts (some empty when there are fewer batches than parts)."""
    return [batches[i * len(batches) // n:(i + 1) * len(batches) // n] for i in range(n)]


def without_order_sharing(dm):
    """The DataModule's evaluation items as separate items (no base): batches share their common prefix only,
    not an item's prefix across its option orders (the path "ours-batchprefix")."""
    for name, encoded in dm.encoded.items():
        dm.encoded[name] = [replace(x, base=None) for x in encoded]
    return dm


def run_benchmark(sim, dm, *, naive_batch: int, naive_length: int, train_steps: int, repeats: int,
                  memory: bool = True, seed: int = 0, unshared=None, chunks: int = 10,
                  batch_prefix_only=None, phases: tuple[str, ...] = ("eval", "train"), naive: bool = True) -> dict:
    """Measure both paths on the DataModule's items with `sim` (a SurveySimulator over a LoRA backbone);
    `unshared`: the same DataModule without prefix sharing, measured as a third path "ours-noprefix";
    `batch_prefix_only`: the same sharing only the prefix common to a batch, not an item's prefix across
    its option orders ("ours-batchprefix"); `phases`: evaluation and/or training; `naive`: False leaves the
    naive path out (probabilities are then compared with ours-noprefix).

    Each round runs every path's batches cut into `chunks` parts, taking turns part by part (evaluation
    first, then training), so that load from other processes, which changes over minutes on a shared
    machine, falls on all paths alike."""
    device = torch.device("cpu")
    encoded = dm.encoded["bench"]
    pad_id = dm.tokenizer.pad_token_id
    longest = max(len(x.input_ids) for x in encoded)
    naive_length = max(naive_length, longest)
    n_train = train_steps * dm.batch_size
    batches = {
        ("ours", "eval"): list(dm.test_dataloader()[0]),
        ("naive", "eval"): [bench.naive_collate(c, pad_id, naive_length) for c in bench.chunks(encoded, naive_batch)],
        ("ours", "train"): _cycle_train_batches(dm, train_steps),
        ("naive", "train"): bench.naive_batches(encoded, naive_batch, pad_id, n_examples=n_train, seed=seed,
                                                length=naive_length),
    }
    if unshared is not None:
        batches[("ours-noprefix", "eval")] = list(unshared.test_dataloader()[0])
        batches[("ours-noprefix", "train")] = _cycle_train_batches(unshared, train_steps)
    if batch_prefix_only is not None:
        batches[("ours-batchprefix", "eval")] = list(batch_prefix_only.test_dataloader()[0])
        batches[("ours-batchprefix", "train")] = _cycle_train_batches(batch_prefix_only, train_steps)
    batches = {key: b for key, b in batches.items() if key[1] in phases and (naive or key[0] != "naive")}
    model = sim.backbone
    fast = (lambda b: bench.fast_log_probs(sim, b), lambda b: bench.fast_loss(sim, b))
    fns = {"ours": fast, "ours-noprefix": fast, "ours-batchprefix": fast,
           "naive": (lambda b: bench.naive_log_probs(model, b), lambda b: bench.naive_loss(model, b))}
    fns = {path: fn for path, fn in fns.items() if any(key[0] == path for key in batches)}
    params = [p for p in sim.parameters() if p.requires_grad]
    optimizers = {path: torch.optim.AdamW(params, lr=1e-5) for path in fns}

    def run(path: str, phase: str, chosen: list[dict], keep: list | None = None) -> bench.Timing:
        if phase == "eval":
            sim.eval()
            return bench.time_eval(fns[path][0], chosen, device, inference=path != "naive", keep=keep)
        sim.train()
        return bench.time_train(fns[path][1], chosen, optimizers[path], device)

    # every round evaluates all paths before any training step changes the adapter, so that the kept
    # round-0 probabilities of the paths come from the same weights
    keys = sorted(batches, key=lambda key: key[1] == "train")
    for path, phase in keys:  # warm-up: thread pools, AdamW state, first-call overheads
        run(path, phase, batches[(path, phase)][:1])
    peaks = {}
    if memory:
        for path, phase in keys:
            largest = sorted(batches[(path, phase)], key=lambda b: -b["input_ids"].numel())[:2]
            with bench.PeakMemory(device) as mem:
                run(path, phase, largest)
            peaks[(path, phase)] = mem.peak_bytes
    timings = {key: bench.Timing() for key in keys}
    per_round = {key: [] for key in keys}
    kept: dict[str, list] = {path: [] for path in fns}
    loads = [os.getloadavg()[0]]
    parts = {key: _parts(batches[key], chunks) for key in keys}
    for r in range(repeats):
        this_round = {key: bench.Timing() for key in keys}
        for phase in ("eval", "train"):
            for i in range(chunks):
                for path, ph in keys:
                    if ph != phase or not parts[(path, ph)][i]:
                        continue
                    keep = kept[path] if phase == "eval" and r == 0 else None
                    this_round[(path, ph)].add(run(path, ph, parts[(path, ph)][i], keep=keep))
                loads.append(os.getloadavg()[0])
        for key, t in this_round.items():
            timings[key].add(t)
            per_round[key].append(round(t.examples_per_s, 3))
            log.info("round %d %s %s: %.2f examples/s", r, *key, t.examples_per_s)
    rows = []
    for (path, phase), t in timings.items():
        rows.append({"path": path, "phase": phase,
                     "batch_size": (dm.eval_batch_size if phase == "eval" else dm.batch_size)
                     if path != "naive" else naive_batch,
                     "examples_per_s": t.examples_per_s, "rounds": per_round[(path, phase)],
                     "examples": t.examples, "seconds": t.seconds,
                     "computed_per_prompt_token": t.padded_tokens / t.tokens,
                     "peak_mb": peaks[(path, phase)] / 2**20 if memory else None})
    rate = {(r["path"], r["phase"]): r["examples_per_s"] for r in rows}
    ratios = {phase: rate[("ours", phase)] / rate[("naive", phase)] for phase in phases if naive}
    for path, suffix in (("ours-noprefix", "noprefix"), ("ours-batchprefix", "batchprefix")):
        if (path, phases[0]) in rate:
            ratios.update({f"{phase}_{suffix}": rate[(path, phase)] / rate[("naive", phase)]
                           for phase in phases if naive})
            ratios.update({f"{phase}_ours_over_{suffix}": rate[("ours", phase)] / rate[(path, phase)]
                           for phase in phases})
    if memory and naive:
        ratios.update({f"peak_memory_{phase}": peaks[("ours", phase)] / max(peaks[("naive", phase)], 1)
                       for phase in phases})
    probs = {path: bench.per_item_probs(k) for path, k in kept.items() if k}
    reference = "naive" if naive else "ours-noprefix"
    diff = max(bench.max_prob_diff(probs[path], probs[reference]) for path in probs if path != reference)
    lengths = [len(x.input_ids) for x in encoded]
    return {"rows": rows, "ratios": ratios, "max_abs_prob_diff": diff, "compared_with": reference,
            "prompt_tokens": {"mean": sum(lengths) / len(lengths), "min": min(lengths), "max": longest},
            "naive_length": naive_length, "train_steps": train_steps, "repeats": repeats, "chunks": chunks,
            "loadavg_1min": {"min": min(loads), "max": max(loads)}}


def format_table(result: dict) -> str:
    """A Markdown table of both paths with the ratios."""
    rate = {(r["path"], r["phase"]): r for r in result["rows"]}
    lines = ["| phase | path | batch | examples/s | positions computed / prompt token | peak MB above model |",
             "|---|---|---|---|---|---|"]
    for phase in ("eval", "train"):
        for path in ("naive", "ours-noprefix", "ours-batchprefix", "ours"):
            if (path, phase) not in rate:
                continue
            r = rate[(path, phase)]
            peak = "-" if r["peak_mb"] is None else f"{r['peak_mb']:.0f}"
            lines.append(f"| {phase} | {path} | {r['batch_size']} | {r['examples_per_s']:.2f} | "
                         f"{r['computed_per_prompt_token']:.2f} | {peak} |")
    ratios = result["ratios"]
    phases = [phase for phase in ("eval", "train") if f"{phase}_ours_over_noprefix" in ratios or phase in ratios]
    parts = ["speed-up over naive: " + ", ".join(f"{ph} {ratios[ph]:.2f}x" for ph in phases)] if "eval" in ratios else []
    for suffix, what in (("noprefix", "without prefix sharing"), ("batchprefix", "with the batch prefix only")):
        if f"{phases[0]}_ours_over_{suffix}" in ratios:
            over_naive = ", ".join(f"{ratios[f'{ph}_{suffix}']:.2f}x" for ph in phases if f"{ph}_{suffix}" in ratios)
            parts.append(f"ours over ours {what}: " + ", ".join(f"{ph} {ratios[f'{ph}_ours_over_{suffix}']:.2f}x"
                                                               for ph in phases)
                         + (f" (it over naive: {over_naive})" if over_naive else ""))
    if "peak_memory_eval" in ratios:
        parts.append("peak memory ours/naive: " + ", ".join(f"{ph} {ratios[f'peak_memory_{ph}']:.2f}" for ph in phases))
    parts.append(f"max |p_ours - p_{result['compared_with']}| = {result['max_abs_prob_diff']:.1e}")
    return "\n".join(lines) + "\n\n" + "; ".join(parts)


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="smollm2_135m", help="a conf/model config name")
    p.add_argument("--data", default=None, help="a conf/data config name (default: wvs_en if SURVEY_SIM_DATA "
                                                  "is set, else demo)")
    p.add_argument("--split", default="val")
    p.add_argument("--items", type=int, default=300)
    p.add_argument("--eval-batch", type=int, default=None, help="ours (default: the model config's)")
    p.add_argument("--train-batch", type=int, default=None, help="ours (default: the model config's)")
    p.add_argument("--naive-batch", type=int, default=8)
    p.add_argument("--naive-length", type=int, default=bench.NAIVE_LENGTH)
    p.add_argument("--bucket", type=int, default=1, help="ours: pad lengths to a multiple of this")
    p.add_argument("--permutations", type=int, default=1,
                   help="evaluate every item in N cyclic shifts of its options (permutation averaging): evaluation "
                        "only, with the path ours-batchprefix (no sharing across an item's orders) added")
    p.add_argument("--no-naive", action="store_true", help="leave the naive path out")
    p.add_argument("--no-prefix-ablation", action="store_true",
                   help="skip measuring ours without prefix sharing (path ours-noprefix)")
    p.add_argument("--train-steps", type=int, default=16, help="training steps per path per round")
    p.add_argument("--repeats", type=int, default=2, help="rounds")
    p.add_argument("--chunks", type=int, default=10, help="parts per round, the paths taking turns part by part")
    p.add_argument("--no-memory", action="store_true")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="JSON path (default outputs/benchmark/<model>-<data>-<split>.json)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    if args.threads:
        torch.set_num_threads(args.threads)
    data = args.data or ("wvs_en" if os.environ.get("SURVEY_SIM_DATA") else "demo")
    if args.data is None and data == "demo":
        print("note: SURVEY_SIM_DATA is unset; benchmarking on the synthetic demo survey", file=sys.stderr)

    from survey_sim.modeling.loading import load_backbone
    from survey_sim.modeling.lora import add_lora
    from survey_sim.modeling.simulator import SurveySimulator

    cfg = compose_config(args.model, data)
    torch.manual_seed(args.seed)
    items, note = load_items(cfg, args.split, args.items, args.seed)
    n_items = len(items)
    if args.permutations > 1:
        from survey_sim.evaluation.orders import expand_permutations

        items = expand_permutations(items, args.permutations)[0]
        note += f", {args.permutations} cyclic shifts of the options per item ({len(items)} prompts)"
    backbone, tokenizer = load_backbone(cfg.model)
    dm = build_data(cfg, items, tokenizer, batch_size=args.train_batch or int(cfg.model.batch_size),
                    eval_batch_size=args.eval_batch or int(cfg.model.eval_batch_size), bucket=args.bucket,
                    seed=args.seed)
    unshared = None if args.no_prefix_ablation else build_data(
        cfg, items, tokenizer, batch_size=dm.batch_size, eval_batch_size=dm.eval_batch_size, bucket=args.bucket,
        seed=args.seed, share_prefix=False)
    batch_prefix_only = None if args.permutations == 1 else without_order_sharing(build_data(
        cfg, items, tokenizer, batch_size=dm.batch_size, eval_batch_size=dm.eval_batch_size, bucket=args.bucket,
        seed=args.seed))
    sim = SurveySimulator(add_lora(backbone, cfg.model.lora), loss="kl")
    started = time.time()
    result = run_benchmark(sim, dm, naive_batch=args.naive_batch, naive_length=args.naive_length,
                           train_steps=args.train_steps, repeats=args.repeats, memory=not args.no_memory,
                           seed=args.seed, unshared=unshared, chunks=args.chunks, batch_prefix_only=batch_prefix_only,
                           phases=("eval",) if args.permutations > 1 else ("eval", "train"), naive=not args.no_naive)
    result["setup"] = {"model": args.model, "items": n_items, "prompts": len(items), "permutations": args.permutations,
                       "data": note, "lora": OmegaConf.to_container(cfg.model.lora),
                       "device": "cpu", "cpu": platform.processor() or platform.machine(),
                       "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                       "torch": torch.__version__, "dtype": str(next(backbone.parameters()).dtype),
                       "bucket": args.bucket, "seconds": round(time.time() - started, 1)}
    table = format_table(result)
    print(f"\n{args.model} on {note}: {len(items)} items, prompts {result['prompt_tokens']['mean']:.0f} tokens "
          f"on average; {torch.get_num_threads()} threads, load {result['loadavg_1min']}\n{table}")
    perms = f"-perm{args.permutations}" if args.permutations > 1 else ""
    out = Path(args.out or ROOT / "outputs" / "benchmark" / f"{args.model}-{data}-{args.split}{perms}.json")
    atomic_write_json(out, result)
    print(f"written: {out}")
    return result


if __name__ == "__main__":
    main()
