"""Interrupted runs: a fine-tuning run killed with SIGKILL mid-epoch and resumed with resume=true ends with the
metrics of the uninterrupted run; checkpoints are written atomically and read with weights_only=True; the
report lists the killed run as incomplete."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from reliability_helpers import BATCHES_PER_EPOCH, FT, REPO, run_in_process

from survey_sim.data.batching import LengthGroupedBatchSampler
from survey_sim.report.collect import collect_runs
from survey_sim.training.checkpointing import AtomicCheckpointIO

# Killed once step 10's checkpoint file exists, last.ckpt (written after each step file) is step 8's or 10's:
# epoch 1 (7 batches per epoch), mid-epoch.
KILL_AFTER_STEP = 10
NO_METRICS = "no metrics.json (run unfinished or failed)"


def _start_run(out: Path, log: Path) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "offline", "HF_HUB_OFFLINE": "1",
           "TOKENIZERS_PARALLELISM": "false"}
    with open(log, "wb") as fh:  # a file, not a pipe: a full pipe would block the run
        return subprocess.Popen([sys.executable, "-m", "survey_sim.run", *FT, f"hydra.run.dir={out}"], cwd=REPO,
                                env=env, stdout=fh, stderr=subprocess.STDOUT)


def _kill_after_checkpoint(proc: subprocess.Popen, out: Path, log: Path, timeout: float = 300.0) -> None:
    """SIGKILL the run as soon as it has written the checkpoint file of a step >= KILL_AFTER_STEP."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        steps = [int(m[1]) for p in (out / "checkpoints").glob("step-*.ckpt")
                 if (m := re.fullmatch(r"step-(\d+)\.ckpt", p.name))]
        if steps and max(steps) >= KILL_AFTER_STEP:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            return
        if proc.poll() is not None:
            pytest.fail(f"the run ended (exit {proc.returncode}) before it could be killed:\n"
                        f"{log.read_text(errors='replace')[-3000:]}")
        time.sleep(0.01)
    proc.kill()
    pytest.fail("no checkpoint appeared in time")


def _assert_same_metrics(resumed: dict, reference: dict, tol: float = 1e-6) -> None:
    assert resumed["run"] == reference["run"]
    assert [(h["step"], h["epoch"]) for h in resumed["history"]] == [(h["step"], h["epoch"]) for h in
                                                                      reference["history"]]
    assert [h["train/loss"] for h in resumed["history"]] == pytest.approx(
        [h["train/loss"] for h in reference["history"]], abs=tol)
    assert resumed["splits"].keys() == reference["splits"].keys()
    for split, values in reference["splits"].items():
        assert resumed["splits"][split] == pytest.approx(values, abs=tol), split


def test_killed_run_resumes_to_the_metrics_of_an_uninterrupted_run(tmp_path, reference_run):
    out, log = tmp_path / "killed", tmp_path / "killed.log"
    _kill_after_checkpoint(_start_run(out, log), out, log)

    # a killed run is incomplete: no metrics.json, and the report says so
    assert not (out / "metrics.json").exists() and (out / "config.yaml").exists()
    runs, skipped = collect_runs([tmp_path])
    assert not runs and [(s.path, s.reason) for s in skipped] == [(out.resolve(), NO_METRICS)]

    # the checkpoint: loads with weights_only=True, holds the adapter only, and sits mid-epoch
    ckpt = torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["global_step"] in (KILL_AFTER_STEP - 2, KILL_AFTER_STEP)
    assert ckpt["state_dict"] and all("lora_" in k for k in ckpt["state_dict"])
    position = ckpt["SurveyDataModule"]
    assert position["train_epoch"] == ckpt["global_step"] // BATCHES_PER_EPOCH >= 1
    assert 0 < position["train_batches_done"] == ckpt["global_step"] % BATCHES_PER_EPOCH < BATCHES_PER_EPOCH
    assert ckpt["optimizer_states"] and "cpu" in ckpt["callbacks"]["RandomState"]

    resumed = run_in_process(out, *FT, "resume=true")
    _assert_same_metrics(resumed, json.loads((reference_run / "metrics.json").read_text()))
    runs, skipped = collect_runs([tmp_path])
    assert [r.path for r in runs] == [out.resolve()] and not skipped


def test_each_epoch_has_its_own_batch_order(tmp_path, monkeypatch):
    """Lightning sets the epoch on `batch_sampler.sampler`; the batch sampler must receive it."""
    seen: list[tuple[int, list[list[int]]]] = []
    iterate = LengthGroupedBatchSampler.__iter__

    def recording(self):
        batches = list(iterate(self))
        if self.shuffle:
            seen.append((self.epoch, batches))
        return iter(batches)

    monkeypatch.setattr(LengthGroupedBatchSampler, "__iter__", recording)
    run_in_process(tmp_path / "run", *FT, "trainer.max_steps=15", "trainer.checkpoint_every_n_steps=50")
    assert [epoch for epoch, _ in seen] == [0, 1, 2]
    orders = [batches for _, batches in seen]
    assert orders[0] != orders[1] != orders[2] and all(sorted(i for b in o for i in b) == list(range(28)) for o in orders)


def test_sampler_resume_at():
    s = LengthGroupedBatchSampler(list(range(40)), 4, shuffle=True, seed=1)
    s.set_epoch(3)
    full = list(s)
    s.resume_at(3, 4)
    assert list(s) == full[4:]          # once: the rest of the interrupted epoch
    assert list(s) == full              # later iterations are whole epochs
    s.resume_at(3, len(full))           # interrupted after the epoch's last batch: the next epoch, whole
    s.set_epoch(4)
    nxt = list(s)
    s.set_epoch(4)
    assert nxt == list(s) != full


def test_checkpoint_write_is_atomic(tmp_path, monkeypatch):
    io = AtomicCheckpointIO()
    path = tmp_path / "checkpoints" / "last.ckpt"
    io.save_checkpoint({"step": torch.tensor(1)}, path)
    replaced = []
    real_replace = os.replace
    monkeypatch.setattr(os, "replace", lambda src, dst: (replaced.append(Path(src)), real_replace(src, dst)))
    io.save_checkpoint({"step": torch.tensor(2)}, path)
    assert replaced and replaced[0].parent == path.parent  # staged beside the target, then renamed

    def crash(obj, fh):
        fh.write(b"half a checkpoint")
        raise KeyboardInterrupt  # the process is stopped while writing

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(KeyboardInterrupt):
        io.save_checkpoint({"step": torch.tensor(3)}, path)
    assert io.load_checkpoint(path)["step"] == 2
    assert sorted(p.name for p in path.parent.iterdir()) == ["last.ckpt"]
    assert oct(path.stat().st_mode & 0o777) == oct(0o666 & ~_umask())


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_checkpoints_are_read_with_weights_only(tmp_path):
    path = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {}, "payload": Path("/etc/passwd")}, path)  # an arbitrary pickled object
    with pytest.raises(Exception, match="Weights only load failed"):
        AtomicCheckpointIO().load_checkpoint(path, weights_only=False)


def test_adapter_folder_is_replaced_whole(tmp_path):
    """save_adapter stages the adapter in a hidden folder: a save that dies midway leaves the previous one."""
    from types import SimpleNamespace

    from survey_sim.pipeline.model_run import save_adapter

    def saver(version, fail=False):
        def save_pretrained(path):
            Path(path).mkdir()
            (Path(path) / "adapter_config.json").write_text(json.dumps({"version": version}))
            if fail:
                raise KeyboardInterrupt  # killed before adapter_model.safetensors was written
            (Path(path) / "adapter_model.safetensors").write_bytes(b"weights")
        return SimpleNamespace(backbone=SimpleNamespace(save_pretrained=save_pretrained))

    save_adapter(saver(1), tmp_path)
    save_adapter(saver(2), tmp_path)
    with pytest.raises(KeyboardInterrupt):
        save_adapter(saver(3, fail=True), tmp_path)
    adapter = tmp_path / "adapter"
    assert json.loads((adapter / "adapter_config.json").read_text()) == {"version": 2}
    assert (adapter / "adapter_model.safetensors").exists()
    save_adapter(saver(4), tmp_path)  # the next save clears what the killed one left
    assert sorted(p.name for p in tmp_path.iterdir()) == ["adapter"]
