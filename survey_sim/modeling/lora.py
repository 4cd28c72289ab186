"""LoRA adapters on a backbone: a new one (PEFT) or a saved one loaded."""

from __future__ import annotations

from collections.abc import Mapping

from torch import nn


def add_lora(backbone: nn.Module, lora: Mapping) -> nn.Module:
    """Wrap `backbone` in a PEFT LoRA adapter (r, alpha, dropout, target_modules from `lora`)."""
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(r=int(lora["r"]), lora_alpha=int(lora["alpha"]), lora_dropout=float(lora["dropout"]),
                        target_modules=list(lora["target_modules"]), bias="none", task_type="CAUSAL_LM")
    return get_peft_model(backbone, config)


def load_adapter(backbone: nn.Module, path: str, *, trainable: bool) -> nn.Module:
    """Load a saved PEFT adapter (a folder written by `save_adapter`, or a Hugging Face adapter id)."""
    from peft import PeftModel

    return PeftModel.from_pretrained(backbone, path, is_trainable=trainable)
