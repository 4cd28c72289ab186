"""Validation-driven training: the adapter of the best validation (mean 1-JSD over val and dev) is kept, saved
and evaluated, also when the last steps are bad and when a killed run is resumed."""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from reliability_helpers import REPO, run_in_process
from safetensors.torch import load_file

from survey_sim.evaluation.metrics import SELECTION_METRIC
from survey_sim.modeling.simulator import SurveySimulator

SELECTED = ["data=demo", "model=tiny_random", "logger=csv", "method=ft", "max_items=28", "model.batch_size=4",
            "trainer.max_epochs=-1", "trainer.max_steps=16", "trainer.val_check_interval=2",
            "trainer.check_val_every_n_epoch=null", "trainer.checkpoint_every_n_steps=2", "data.dev_split=dev",
            "trainer.enable_progress_bar=false", "trainer.accelerator=cpu", "optim.lr=3e-3",
            "optim.schedule=cosine", "optim.warmup_steps=2"]
LAST_STEP = 16


def _adapter_matches_checkpoint(adapter_dir: Path, ckpt_path: Path) -> bool:
    """The saved PEFT adapter holds the weights of the checkpoint (names differ by the module's prefixes)."""
    saved = load_file(str(adapter_dir / "adapter_model.safetensors"))
    state = torch.load(ckpt_path, map_location="cpu", weights_only=True)["state_dict"]
    state = {k.removeprefix("backbone.").replace(".default", ""): v for k, v in state.items()}
    return saved.keys() == state.keys() and all(torch.equal(saved[k], state[k]) for k in saved)


def test_a_bad_last_step_does_not_reach_the_saved_adapter(tmp_path, monkeypatch, caplog):
    """The adapter is scrambled after the last optimizer step (before its validation): the run keeps, saves and
    evaluates the best earlier adapter."""

    def scramble_at_the_end(self, outputs, batch, batch_idx):
        if self.global_step == LAST_STEP:
            with torch.no_grad():
                for name, p in self.named_parameters():
                    if "lora_B" in name:
                        p.add_(torch.randn_like(p) * 50.0)

    monkeypatch.setattr(SurveySimulator, "on_train_batch_end", scramble_at_the_end, raising=False)
    caplog.set_level(logging.INFO, logger="survey_sim.modeling.simulator")
    out = tmp_path / "run"
    metrics = run_in_process(out, *SELECTED)

    validations = metrics["validations"]
    assert all(SELECTION_METRIC in v for v in validations)
    assert [h["step"] for h in validations] == list(range(2, LAST_STEP + 1, 2))
    best = max(validations, key=lambda h: h[SELECTION_METRIC])
    assert validations[-1][SELECTION_METRIC] < best[SELECTION_METRIC], "the scrambled step must be worse"
    assert metrics["selection"] == {"restored": True, "step": best["step"], "monitor": SELECTION_METRIC,
                                    "score": pytest.approx(best[SELECTION_METRIC], abs=1e-6),
                                    "checkpoint": "best.ckpt"}
    for split in ("val", "dev"):  # the final metrics are those of the best validation
        assert metrics["splits"][split]["jsd"] == pytest.approx(best[f"{split}/jsd"], abs=1e-6)
    assert _adapter_matches_checkpoint(out / "adapter", out / "checkpoints" / "best.ckpt")
    logged = [r.getMessage() for r in caplog.records if r.getMessage().startswith("validation at step")]
    assert len(logged) == len(validations) and "(best so far)" not in logged[-1]
    assert f"val 1-JSD {best['val/jsd']:.4f}, dev 1-JSD {best['dev/jsd']:.4f}" in logged[validations.index(best)]
    from survey_sim.report import build_report

    report = build_report([out], tmp_path / "report", n_boot=0)
    assert (tmp_path / "report" / "plots" / "validation_curves.png") in report.files


def test_early_stopping_ends_training_after_patience_validations_without_improvement(tmp_path, monkeypatch):
    """From step 5 on the adapter is scrambled after every step, so validations stop improving: with a patience
    of 2 training stops two validations after the best one, before max_steps, and the best adapter is kept."""

    def scramble_after_step_4(self, outputs, batch, batch_idx):
        if self.global_step > 4:
            with torch.no_grad():
                for name, p in self.named_parameters():
                    if "lora_B" in name:
                        p.add_(torch.randn_like(p) * 50.0)

    monkeypatch.setattr(SurveySimulator, "on_train_batch_end", scramble_after_step_4, raising=False)
    metrics = run_in_process(tmp_path / "run", *SELECTED, "trainer.selection.early_stopping_patience=2")
    steps = [v["step"] for v in metrics["validations"]]
    best = max(metrics["validations"], key=lambda v: v[SELECTION_METRIC])
    assert steps == list(range(2, best["step"] + 2 * 2 + 1, 2)) and steps[-1] < LAST_STEP
    assert metrics["selection"]["step"] == best["step"]


def _start(out: Path, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "offline", "HF_HUB_OFFLINE": "1"}
    log = open(out.with_suffix(".log"), "wb")  # noqa: SIM115 (closed with the process)
    return subprocess.Popen([sys.executable, "-m", "survey_sim.run", *SELECTED, f"hydra.run.dir={out}", *extra],
                            cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)


def test_a_resumed_run_keeps_the_best_adapter_so_far(tmp_path):
    reference = run_in_process(tmp_path / "reference", *SELECTED)
    out = tmp_path / "killed"
    proc = _start(out)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        steps = [int(m[1]) for p in (out / "checkpoints").glob("step-*.ckpt")
                 if (m := re.fullmatch(r"step-(\d+)\.ckpt", p.name))]
        if steps and max(steps) >= 10:
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.01)
    proc.wait()
    assert not (out / "metrics.json").exists(), "the run must be killed before it ends"
    before = torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)["global_step"]
    assert before < LAST_STEP

    resumed = _start(out, "resume=true")
    assert resumed.wait(timeout=300) == 0, out.with_suffix(".log").read_text(errors="replace")[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["selection"]["step"] == reference["selection"]["step"]
    assert metrics["selection"]["score"] == pytest.approx(reference["selection"]["score"], abs=1e-6)
    assert metrics["splits"]["val"]["jsd"] == pytest.approx(reference["splits"]["val"]["jsd"], abs=1e-6)
    assert _adapter_matches_checkpoint(out / "adapter", out / "checkpoints" / "best.ckpt")
