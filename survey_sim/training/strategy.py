"""The Lightning strategy of a run: the configured one (FSDP with one unit per decoder layer), or, for a model
its `device_map` placed, one device that leaves the model where it is."""

from __future__ import annotations

import contextlib

import lightning as L
import torch
from lightning.pytorch.strategies import SingleDeviceStrategy
from omegaconf import DictConfig


def accelerator_of(device: torch.device) -> str:
    """Lightning's accelerator name for a model on `device`."""
    return "gpu" if device.type == "cuda" else "cpu"


class InPlaceStrategy(SingleDeviceStrategy):
    """One device. The model is moved there unless its `device_map` placed it (`placed`), and it stays where it
    is afterwards: Lightning's teardown, except moving the model to the CPU."""

    def __init__(self, device: torch.device, *, placed: bool):
        if device.type == "cuda" and device.index is None:
            device = torch.device("cuda", torch.cuda.current_device())
        super().__init__(device=device)
        self.placed = placed

    def model_to_device(self) -> None:
        if not self.placed:
            super().model_to_device()

    def teardown(self) -> None:
        self.precision_plugin.teardown()
        self.accelerator.teardown()
        self.checkpoint_io.teardown()


def _fsdp_layer(module: torch.nn.Module, suffix: str) -> bool:
    return type(module).__name__.endswith(suffix)


def _fsdp_unit(module: torch.nn.Module, suffix: str) -> bool:
    """A decoder layer, or a leaf with trainable weights (LoRA: fp32 adapters beside bf16 weights would break
    FSDP's one-dtype-per-unit rule)."""
    weight = getattr(module, "weight", None)
    trainable_leaf = not any(True for _ in module.children()) and getattr(weight, "requires_grad", False)
    return _fsdp_layer(module, suffix) or bool(trainable_leaf)


def build_strategy(t: DictConfig, placed_on: torch.device | None = None):
    """The Lightning strategy: its name, or for `fsdp` with an `fsdp` section an FSDPStrategy with one unit per
    decoder layer (class name ending in fsdp.auto_wrap_suffix) and per trainable leaf. A model placed by its
    `device_map` (`placed_on`: the device of its first weights) runs in place, in one process: a Lightning
    strategy would move it onto one device (or refuse, for a quantized model); the preflight refuses any other
    `trainer.strategy` with a device_map."""
    if placed_on is not None:
        return InPlaceStrategy(placed_on, placed=True)
    if t.strategy != "fsdp" or not t.get("fsdp"):
        return t.strategy
    from functools import partial

    from lightning.pytorch.strategies import FSDPStrategy
    from torch.distributed.fsdp.wrap import lambda_auto_wrap_policy

    f = t.fsdp
    suffix = str(f.auto_wrap_suffix)
    checkpointing = (partial(lambda_auto_wrap_policy, lambda_fn=partial(_fsdp_layer, suffix=suffix))
                     if f.activation_checkpointing else None)
    wrap = partial(lambda_auto_wrap_policy, lambda_fn=partial(_fsdp_unit, suffix=suffix))
    return FSDPStrategy(auto_wrap_policy=wrap, activation_checkpointing_policy=checkpointing, sharding_strategy=str(f.sharding_strategy),
                        use_orig_params=bool(f.use_orig_params), cpu_offload=bool(f.cpu_offload),
                        state_dict_type=str(f.state_dict_type))


def full_parameters(trainer: L.Trainer):
    """A context in which rank 0 sees full (unsharded) parameters: FSDP gathers them (every rank must enter);
    other strategies hold full parameters already."""
    from lightning.pytorch.strategies import FSDPStrategy

    if isinstance(trainer.strategy, FSDPStrategy) and trainer.world_size > 1:
        from torch.distributed.fsdp import FullyShardedDataParallel

        return FullyShardedDataParallel.summon_full_params(trainer.strategy.model, writeback=False,
                                                           rank0_only=True)
    return contextlib.nullcontext()
