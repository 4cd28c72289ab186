"""Bad data through the real command line: `python -m survey_sim.run` prints one `error: ...` line naming the
file, record and field, and exits 2; HYDRA_FULL_ERROR=1 shows the traceback; `eval_splits` loads and checks
only the evaluated splits."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
FILES = ("train_en.json", "valid_en.json", "test_en.json")
GOOD = {"id": "1", "instruction": "How would someone from Andorra answer the following question:\n\n",
        "input": "How important is family? \nHere are the options: \n",
        "options": ["(A)Very important", "(B)Rather important"], "options_dist": {"A": 80.0, "B": 20.0},
        "data_type": "train"}


def arguments(root: Path, *overrides: str) -> list[str]:
    return ["data=wvs_en", f"data.root={root}", "method=uniform", "logger=csv", f"hydra.run.dir={root / 'out'}",
            *overrides]


def run_cli(root: Path, *overrides: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """`python -m survey_sim.run ...` in a new interpreter."""
    env = {**{k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}, "WANDB_MODE": "disabled",
           "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", **(env or {})}
    return subprocess.run([sys.executable, "-m", "survey_sim.run", *arguments(root, *overrides)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False)


def run_main(root: Path, capsys, monkeypatch) -> tuple[int, str]:
    """The same entry point (survey_sim.run.main, command-line arguments in sys.argv) in this process, which
    saves a new interpreter's imports; returns its exit status and stderr."""
    from hydra.core.global_hydra import GlobalHydra

    from survey_sim.run import main

    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    monkeypatch.setattr(sys, "argv", ["survey_sim.run", *arguments(root)])
    GlobalHydra.instance().clear()
    with pytest.raises(SystemExit) as exit_info:
        main()
    return exit_info.value.code, capsys.readouterr().err


def data_folder(tmp_path: Path, bad_text: str) -> Path:
    """A data folder whose train file holds a good record and then `bad_text` (record 1)."""
    (tmp_path / "wvs").mkdir()
    for name in FILES:
        (tmp_path / "wvs" / name).write_text(json.dumps([GOOD]))
    (tmp_path / "wvs" / "train_en.json").write_text(f"[{json.dumps(GOOD)}, {bad_text}]")
    return tmp_path


def record(**changes) -> str:
    return json.dumps({**GOOD, "id": "2", **changes})


@pytest.mark.parametrize(("bad", "field", "says"), [
    (record(options_dist={"A": 80.0, "B": "NaN-placeholder"}).replace('"NaN-placeholder"', "NaN"), "options_dist",
     "NaN or Infinity"),
    (record(n_respondents="INF").replace('"INF"', "Infinity"), "n_respondents", "NaN or Infinity"),
    (record(options=["Very important", "(B)Rather important"]), "options", "letter prefix"),
    (json.dumps({k: v for k, v in GOOD.items() if k != "input"}), "input", "missing"),
    (record(options_dist={"A": -5, "B": 20}), "options_dist", "negative"),
])
def test_malformed_item_file_prints_one_error_line(tmp_path, capsys, monkeypatch, bad, field, says):
    root = data_folder(tmp_path, bad)
    if field == "options_dist" and "NaN" in bad:  # one case in a new interpreter: the command as typed
        proc = run_cli(root)
        status, stderr = proc.returncode, proc.stderr
    else:
        status, stderr = run_main(root, capsys, monkeypatch)
    assert status == 2, stderr[-3000:]
    assert "Traceback" not in stderr
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, stderr[-3000:]
    assert str(root / "wvs" / "train_en.json") in errors[0]
    assert "record 1" in errors[0] and f"field '{field}'" in errors[0] and says in errors[0]


def test_hydra_full_error_shows_one_traceback(tmp_path):
    root = data_folder(tmp_path, record(options_dist={"A": 1, "B": "x"}).replace('"x"', "-Infinity"))
    proc = run_cli(root, env={"HYDRA_FULL_ERROR": "1"})
    assert proc.returncode != 0
    assert proc.stderr.count("Traceback") == 1  # raised without a chained "during handling" traceback
    assert "During handling of the above exception" not in proc.stderr
    assert "SurveyDataError" in proc.stderr and "field 'options_dist'" in proc.stderr


@pytest.mark.real_data
def test_eval_splits_loads_only_the_evaluated_splits(tmp_path, data_root):
    """A data folder whose test file holds only C1-Q3's items: evaluating C1-Q3 works, while evaluating the
    default test splits fails on the first empty one."""
    from omegaconf import OmegaConf

    from survey_sim.data.registry import Registry
    from survey_sim.data.sources import load_processed, write_processed
    from survey_sim.paths import config_dir

    registry = Registry.from_config(OmegaConf.to_container(OmegaConf.load(config_dir() / "data/registry/paper.yaml")))
    spec = registry.splits["C1-Q3"]
    (tmp_path / "wvs").mkdir()
    for name in FILES[:2]:
        (tmp_path / "wvs" / name).symlink_to(data_root / "wvs" / name)
    write_processed([it for it in load_processed(data_root / "wvs" / "test_en.json").items if spec.contains(it)],
                    tmp_path / "wvs" / "test_en.json")
    full = run_cli(tmp_path, "max_items=5")
    assert full.returncode == 2 and "split 'C2-Q1' is empty after filtering" in full.stderr, full.stderr[-2000:]
    ok = run_cli(tmp_path, "max_items=5", "eval_splits=[C1-Q3]", "hydra.run.dir=" + str(tmp_path / "ok"))
    assert ok.returncode == 0, ok.stderr[-3000:]
    metrics = json.loads((tmp_path / "ok" / "metrics.json").read_text())
    assert set(metrics["splits"]) == {"val", "C1-Q3"}
