"""Helpers of the reliability tests: composing run configs, in-process runs, paper-format data files.

Runs use the tiny random model on the synthetic demo survey with one torch thread (on a shared 2-core
machine, torch's default threads spin against each other and make steps ~15x slower).
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[2]
# 28 training items in batches of 4: 7 batches per epoch, so checkpoints every 2 steps fall mid-epoch (2, 4,
# 6, 8, ...) except at step 14, 28; 30 steps span 5 epochs.
FT = ["data=demo", "model=tiny_random", "logger=csv", "method=ft", "max_items=28", "model.batch_size=4",
      "trainer.max_epochs=-1", "trainer.max_steps=30", "trainer.checkpoint_every_n_steps=2",
      "trainer.enable_progress_bar=false", "trainer.accelerator=cpu", "trainer.log_every_n_steps=1"]
BATCHES_PER_EPOCH = 7
PAPER_INSTRUCTION = "How would someone from {} answer the following question:\n\n"
PAPER_TRAILER = "\nHere are the options: \n"


def compose_run(*overrides: str):
    """The run config as `python -m survey_sim.run <overrides>` builds it."""
    from hydra import compose, initialize_config_dir

    import survey_sim.run  # noqa: F401  (registers the run-name resolver)

    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        return compose("config", overrides=list(overrides))


@contextlib.contextmanager
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def run_in_process(out: Path, *overrides: str) -> dict:
    """`survey_sim.pipeline.job.run` on the composed config, writing into `out`; returns its metrics."""
    from survey_sim.pipeline.job import run

    with one_thread():
        return run(compose_run(*overrides, f"output_dir={out}"))


def paper_record(country: str, qid: str, data_type: str, dist=(20.0, 50.0, 30.0), **changes) -> dict:
    """One item in the paper's processed JSON format (percentages over options A, B, C)."""
    record = {"id": qid, "instruction": PAPER_INSTRUCTION.format(country),
              "input": f"Question {qid}: do you agree?" + PAPER_TRAILER,
              "options": ["(A)Agree", "(B)Neither", "(C)Disagree"],
              "options_dist": dict(zip("ABC", dist)), "data_type": data_type}
    record.update(changes)
    return record


def write_paper_files(root: Path, *, train_extra=(), raw_train: str | None = None) -> Path:
    """wvs/{train,valid,test}_en.json under `root`: C1 countries (Japan, Andorra) with training questions 1-3,
    validation question 164 and C1-Q3 question 199, and Kenya (C2) with question 2 (C2-Q1); no C2-Q2 item.
    `train_extra` records are appended to the training file; `raw_train` replaces its text."""
    files = {
        "train": [paper_record(c, str(q), "train") for c in ("Japan", "Andorra") for q in (1, 2, 3)],
        "valid": [paper_record(c, "164", "valid") for c in ("Japan", "Andorra")],
        "test": [paper_record(c, "199", "test_1") for c in ("Japan", "Andorra")] + [
            paper_record("Kenya", "2", "test_2")],
    }
    files["train"] += list(train_extra)
    (root / "wvs").mkdir(parents=True, exist_ok=True)
    for stem, records in files.items():
        text = json.dumps(records, ensure_ascii=False)
        (root / "wvs" / f"{stem}_en.json").write_text(raw_train if stem == "train" and raw_train is not None
                                                      else text, encoding="utf-8")
    return root


def paper_data(root: Path) -> list[str]:
    """Overrides that read the paper-format files under `root` (no Pew), evaluating C1-Q3 and C2-Q1."""
    return ["data=wvs_en", f"data.root={root}", "data.test_splits=[C1-Q3,C2-Q1]"]
