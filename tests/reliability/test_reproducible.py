"""Reproducibility: one config and seed give byte-identical outputs on CPU; the seed drives every random
choice; each run records where its numbers came from (run_info.json)."""

from __future__ import annotations

import hashlib
import json
import os
import re

import pytest
from reliability_helpers import FT, paper_data, run_in_process, write_paper_files

import survey_sim

# Fine-tuning with every seeded transform on: country-swap control and option shuffling in training and
# evaluation (LoRA dropout is on in the tiny model's config).
SEEDED = [*FT, "trainer.max_steps=8", "control=true", "shuffle.train=true", "shuffle.eval=true"]


def _strings(node):
    if isinstance(node, dict):
        for value in node.values():
            yield from _strings(value)
    elif isinstance(node, list):
        for value in node:
            yield from _strings(value)
    elif isinstance(node, str):
        yield node


def test_same_config_gives_byte_identical_outputs(tmp_path):
    a, b, other = tmp_path / "a", tmp_path / "b", tmp_path / "other_seed"
    run_in_process(a, *SEEDED)
    run_in_process(b, *SEEDED)
    assert (a / "metrics.json").read_bytes() == (b / "metrics.json").read_bytes()
    assert (a / "predictions.jsonl").read_bytes() == (b / "predictions.jsonl").read_bytes()
    metrics = json.loads((a / "metrics.json").read_text())
    assert metrics["run"]["seed"] == 42 and metrics["run"]["control"] and len(metrics["history"]) == 8
    # nothing that differs between runs of one config: no paths, no clock
    assert not [s for s in _strings(metrics) if str(tmp_path) in s or re.search(r"\d{4}-\d\d-\d\d|\d\d:\d\d", s)]

    run_in_process(other, *SEEDED, "seed=7")
    changed = json.loads((other / "metrics.json").read_text())
    assert [h["train/loss"] for h in changed["history"]] != [h["train/loss"] for h in metrics["history"]]
    rows = {name: [json.loads(line) for line in (d / "predictions.jsonl").read_text().splitlines()]
            for name, d in (("a", a), ("other", other))}
    for key in ("prompt_group", "option_order"):  # the country swaps and option shuffles follow the seed
        assert [r[key] for r in rows["a"]] != [r[key] for r in rows["other"]], key


def test_run_info_records_versions_commit_and_data_hashes(tmp_path, reference_run):
    info = json.loads((reference_run / "run_info.json").read_text())
    assert info["survey_sim"] == survey_sim.__version__
    assert re.fullmatch(r"[0-9a-f]{40}(\+dirty)?", info["git_commit"])
    assert all(info["libraries"][lib] for lib in ("torch", "lightning", "transformers", "peft", "numpy"))
    assert info["data_files"] == {}  # the demo survey is generated, not read

    root = write_paper_files(tmp_path / "data")
    run_in_process(tmp_path / "run", *paper_data(root), "logger=csv", "method=prior")
    info = json.loads((tmp_path / "run" / "run_info.json").read_text())
    files = sorted((root / "wvs").glob("*_en.json"))
    assert info["data_files"] == {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


@pytest.mark.parametrize("name", ["metrics.json", "predictions.jsonl", "config.yaml", "run_info.json"])
def test_outputs_get_the_permissions_of_a_new_file(reference_run, name):
    """Atomic writes (temporary file + rename) give 0666 minus the umask, not the temporary file's 0600."""
    mask = os.umask(0)
    os.umask(mask)
    assert (reference_run / name).stat().st_mode & 0o777 == 0o666 & ~mask
