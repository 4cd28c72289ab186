"""Speed of the simulator's fast path against the paper's naive path: the two paths, timing, memory, FLOPs.

The naive path is what the paper's code did: every prompt left-padded to a fixed 256 tokens, the model's
full-vocabulary logits at every position, the last position gathered, and the loss computed item by item
in a Python loop. The fast path is `SurveySimulator`: per-batch padding of length-grouped batches, the last
hidden state projected on the K option rows only, a vectorised masked loss over [B, K], evaluation under
`torch.inference_mode`. Both paths get the same position ids (counted from each prompt's first token), so
their probabilities agree to float precision.

Shared by experiments/benchmark.py (CPU, real models) and experiments/gpu_check.py (GPU, random weights);
imports neither Hydra nor the data loaders, so the GPU check needs only torch, transformers, peft and
lightning.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

if TYPE_CHECKING:
    from typing_extensions import Self

from survey_sim.data.batching import EncodedItem, LengthGroupedBatchSampler, chunks, collate

#: The paper's code padded every prompt to this many tokens.
NAIVE_LENGTH = 256
#: Dense bf16 tensor-core peaks (TFLOP/s, no sparsity) by a substring of torch.cuda.get_device_name().
BF16_PEAK_TFLOPS = {"H200": 989.0, "H100 PCIe": 756.0, "H100 NVL": 835.0, "H100": 989.0, "A100": 312.0,
                    "L40S": 362.0, "A10G": 70.0, "L4": 121.0}

Batch = dict[str, torch.Tensor]


# ------------------------------------------------------------------------------------------------ batches

def naive_collate(items: Sequence[EncodedItem], pad_id: int, length: int = NAIVE_LENGTH) -> Batch:
    """Left-pad every prompt to the fixed `length` (the paper's padding), with the same position ids."""
    batch = collate(items, pad_id)
    extra = length - batch["input_ids"].shape[1]
    if extra < 0:
        raise ValueError(f"a prompt has {batch['input_ids'].shape[1]} tokens, more than the fixed length {length}")
    for key, value in (("input_ids", pad_id), ("attention_mask", 0), ("position_ids", 0)):
        batch[key] = F.pad(batch[key], (extra, 0), value=value)
    return batch


def naive_batches(items: Sequence[EncodedItem], batch_size: int, pad_id: int, *, n_examples: int, seed: int = 0,
                  length: int = NAIVE_LENGTH) -> list[Batch]:
    """Training batches of the naive path: shuffled epoch after epoch (no length grouping), fixed length."""
    gen = torch.Generator().manual_seed(seed)
    order: list[EncodedItem] = []
    while len(order) < n_examples:
        order += [items[i] for i in torch.randperm(len(items), generator=gen).tolist()]
    return [naive_collate(c, pad_id, length) for c in chunks(order[:n_examples], batch_size)]


def fast_batches(items: Sequence[EncodedItem], batch_size: int, pad_id: int, *, train: bool,
                 n_examples: int | None = None, bucket: int = 1, seed: int = 0,
                 share_prefix: bool = False) -> list[Batch]:
    """Batches of the fast path as `SurveyDataModule` serves them: length-grouped (training: shuffled
    mega-batches, epoch after epoch, until `n_examples`; evaluation: longest first, with `share_prefix` an
    item's option orders (same `base`) together), per-batch padding, shared prefixes when `share_prefix`."""
    bases = [x.base for x in items] if share_prefix and not train else None
    sampler = LengthGroupedBatchSampler([len(x.input_ids) for x in items], batch_size, shuffle=train, seed=seed,
                                        bases=bases)
    out: list[Batch] = []
    target = n_examples if n_examples is not None else len(items)
    epoch = 0
    while sum(len(b["index"]) for b in out) < target:
        sampler.set_epoch(epoch)
        out += [collate([items[i] for i in b], pad_id, bucket, share_prefix=share_prefix) for b in sampler]
        epoch += 1
    while len(out) > 1 and sum(len(b["index"]) for b in out[:-1]) >= target:
        out.pop()
    return out


def to_device(batch: Batch, device: torch.device | str) -> Batch:
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}


def useful_tokens(batch: Batch) -> int:
    """Prompt tokens of the batch (shared prefixes count once per prompt)."""
    prefix = batch.get("prefix_ids")
    n = int(batch["attention_mask"].sum()) + (0 if prefix is None else len(prefix) * len(batch["index"]))
    if "item_prefix_mask" in batch:
        n += int(batch["item_prefix_mask"].sum(1)[batch["item_of_row"]].sum())
    return n


def computed_tokens(batch: Batch) -> int:
    """Token positions the model computes, padding included (shared prefixes once)."""
    prefix = batch.get("prefix_ids")
    n = batch["input_ids"].numel() + (0 if prefix is None else len(prefix))
    return n + (batch["item_prefix_ids"].numel() if "item_prefix_ids" in batch else 0)


# ------------------------------------------------------------------------------------------------- paths

def naive_log_probs(model: torch.nn.Module, batch: Batch) -> list[torch.Tensor]:
    """Full [B, T, V] logits, the last position gathered, a log-softmax over each item's options in a loop."""
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                   position_ids=batch["position_ids"], use_cache=False).logits
    last = logits[:, -1].float()
    out = []
    for row in range(last.shape[0]):
        k = int(batch["option_mask"][row].sum())
        out.append(torch.log_softmax(last[row, batch["option_ids"][row, :k]], dim=-1))
    return out


def naive_loss(model: torch.nn.Module, batch: Batch) -> torch.Tensor:
    """The paper's per-item loop: KL(human || model) item by item, then the mean."""
    losses = []
    for row, log_q in enumerate(naive_log_probs(model, batch)):
        losses.append(F.kl_div(log_q, batch["target"][row, :len(log_q)], reduction="sum"))
    return torch.stack(losses).mean()


def fast_log_probs(sim: torch.nn.Module, batch: Batch) -> torch.Tensor:
    """`SurveySimulator`'s masked log-probabilities [B, K] (-inf at padded options)."""
    return sim(batch)


def fast_loss(sim: torch.nn.Module, batch: Batch) -> torch.Tensor:
    return sim.loss_fn(sim(batch), batch["target"], batch["option_mask"])


def per_item_probs(kept: Iterable[tuple[torch.Tensor, torch.Tensor, object]]) -> dict[int, torch.Tensor]:
    """{item index: probabilities over its options} from the (index, option_mask, log-probs) that
    `time_eval` kept; log-probs are a [B, K] tensor (fast path) or a list of per-item tensors (naive)."""
    out = {}
    for index, mask, result in kept:
        for row, i in enumerate(index.tolist()):
            k = int(mask[row].sum())
            out[i] = result[row][:k].float().exp().cpu()
    return out


def max_prob_diff(a: dict[int, torch.Tensor], b: dict[int, torch.Tensor]) -> float:
    """Largest absolute difference between two {item index: probabilities} of the same items."""
    if a.keys() != b.keys():
        raise ValueError(f"different items: {len(a)} vs {len(b)}")
    return max(float((a[i] - b[i]).abs().max()) for i in a)


# ------------------------------------------------------------------------------------------------ timing

def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@dataclass
class Timing:
    """Examples and useful (prompt) tokens processed in `seconds`; token positions the model computed."""

    examples: int = 0
    tokens: int = 0
    padded_tokens: int = 0
    seconds: float = 0.0
    extra: dict = field(default_factory=dict)

    def add(self, other: Timing) -> None:
        self.examples += other.examples
        self.tokens += other.tokens
        self.padded_tokens += other.padded_tokens
        self.seconds += other.seconds

    @property
    def examples_per_s(self) -> float:
        return self.examples / self.seconds if self.seconds else float("nan")

    def as_dict(self) -> dict:
        return {**asdict(self), "examples_per_s": self.examples_per_s}


def time_eval(log_probs_fn: Callable[[Batch], object], batches: Iterable[Batch], device: torch.device, *,
              inference: bool, keep: list | None = None) -> Timing:
    """Run `log_probs_fn` over the batches under inference_mode (or no_grad); `keep` collects
    (index, option_mask, log-probs) per batch for `per_item_probs`."""
    mode = torch.inference_mode if inference else torch.no_grad
    out = Timing()
    synchronize(device)
    start = time.perf_counter()
    with mode():
        for batch in batches:
            out.examples += len(batch["index"])
            out.tokens += useful_tokens(batch)  # before the copy: no device sync
            out.padded_tokens += computed_tokens(batch)
            batch = to_device(batch, device)
            result = log_probs_fn(batch)
            if keep is not None:
                keep.append((batch["index"], batch["option_mask"], result))
    synchronize(device)
    out.seconds = time.perf_counter() - start
    return out


def time_train(loss_fn: Callable[[Batch], torch.Tensor], batches: Iterable[Batch], optimizer: torch.optim.Optimizer,
               device: torch.device) -> Timing:
    """Optimizer steps (forward, backward, AdamW) over the batches."""
    out, loss = Timing(), None
    synchronize(device)
    start = time.perf_counter()
    for batch in batches:
        out.examples += len(batch["index"])
        out.tokens += useful_tokens(batch)
        out.padded_tokens += computed_tokens(batch)
        batch = to_device(batch, device)
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(batch)
        loss.backward()
        optimizer.step()
    synchronize(device)
    out.seconds = time.perf_counter() - start
    if loss is not None and not torch.isfinite(loss.detach()):
        raise FloatingPointError(f"training loss is {float(loss)}")
    return out


# ------------------------------------------------------------------------------------------------ memory

def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _trim_heap() -> None:
    """Return freed heap pages to the OS (glibc), so RSS starts from what is live."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


class PeakMemory:
    """Peak memory above the starting level inside a `with` block.

    CUDA: torch's allocator statistics (max_memory_allocated). CPU: the process's resident set sampled
    every `interval` seconds by a thread (heap trimmed first), since torch keeps no CPU allocator stats.
    """

    def __init__(self, device: torch.device, interval: float = 0.002):
        self.device, self.interval = device, interval
        self.peak_bytes = 0
        self._stop = threading.Event()

    def __enter__(self) -> Self:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(self.device)
            self._start = torch.cuda.memory_allocated(self.device)
        else:
            _trim_heap()
            self._start = self._peak = _rss_bytes()
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            self._peak = max(self._peak, _rss_bytes())

    def __exit__(self, *exc) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self.peak_bytes = torch.cuda.max_memory_allocated(self.device) - self._start
        else:
            self._peak = max(self._peak, _rss_bytes())
            self._stop.set()
            self._thread.join()
            self.peak_bytes = self._peak - self._start


# ------------------------------------------------------------------------------------------------- FLOPs

def decoder_stats(model: torch.nn.Module) -> dict:
    """Matmul parameters of the decoder layers (N), layers and attention width, from the model itself."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    cfg = base.config
    body = getattr(base, base.base_model_prefix)
    n_layer_params = sum(p.numel() for n, p in body.layers.named_parameters()
                         if p.dim() == 2 and "lora_" not in n)
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
    return {"layer_params": n_layer_params, "layers": cfg.num_hidden_layers,
            "attn_width": cfg.num_attention_heads * head_dim, "vocab": cfg.vocab_size,
            "hidden": cfg.hidden_size}


def useful_flops(stats: dict, lengths: Sequence[int], *, train: bool) -> float:
    """Model FLOPs of the useful work on prompts of these lengths (padding and full-vocabulary logits excluded).

    Forward: 2*N per token for the decoder's matmuls plus causal attention 2*L*d*T^2 per prompt of T tokens
    (QK^T and AV, each ~T^2/2 * d multiply-adds per layer); the read-out of K option logits is negligible.
    Training with LoRA: the backward pass computes activation gradients through the frozen weights (another
    2*N per token) and attention gradients (2x the forward attention), not weight gradients: 2*forward
    matmuls + 3*forward attention. Recomputation (gradient checkpointing) is not counted.
    """
    n, layers, width = stats["layer_params"], stats["layers"], stats["attn_width"]
    tokens = float(sum(lengths))
    attn = 2.0 * layers * width * float(sum(t * t for t in lengths))
    linear = 2.0 * n * tokens
    return 2.0 * linear + 3.0 * attn if train else linear + attn


def bf16_peak_tflops(device_name: str) -> float | None:
    """The card's dense bf16 peak from its name, or None if unknown."""
    for key, peak in BF16_PEAK_TFLOPS.items():
        if key in device_name:
            return peak
    return None
