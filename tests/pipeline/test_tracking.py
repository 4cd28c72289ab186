"""W&B through the real command line: a 2-job multirun with the W&B logger offline leaves one run per job,
each with its own config and summary, under one group; the dashboard's specification for that sweep names
metrics and config keys the runs log."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from survey_sim.pipeline.tracking import finish_run
from survey_sim.report.dashboard import SECTIONS, offline_runs, read_offline_run

REPO = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "WANDB_MODE": "offline", "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1",
       "TOKENIZERS_PARALLELISM": "false", "WANDB_SILENT": "true"}


def cli(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=REPO, env=ENV, capture_output=True, text=True,
                          timeout=timeout, check=False)


@pytest.fixture(scope="module")
def wandb_sweep(tmp_path_factory) -> Path:
    """A fine-tuning job and a baseline job in one multirun, smoke-sized, logging to W&B offline (the
    adapter artifact forced on, since it is on by default only online)."""
    out = tmp_path_factory.mktemp("wandb") / "sweep"
    proc = cli("-m", "survey_sim.run", "-m", "data=demo", "smoke=on", "logger=wandb", "logger.log_adapter=true",
               "method=ft,prior", f"hydra.sweep.dir={out}")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (out / "console.log").write_text(proc.stdout + proc.stderr)
    return out


def job_runs(sweep: Path) -> dict[str, tuple[dict, list[Path]]]:
    """Per job folder: its metrics.json and its W&B run folders."""
    return {job.name: (json.loads((job / "metrics.json").read_text()), sorted(job.glob("wandb/offline-run-*")))
            for job in sorted(sweep.iterdir()) if (job / "metrics.json").is_file()}


def test_multirun_logs_one_wandb_run_per_job_under_one_group(wandb_sweep):
    jobs = job_runs(wandb_sweep)
    assert len(jobs) == 2
    runs = []
    for job, (metrics, run_dirs) in jobs.items():
        assert len(run_dirs) == 1, f"job {job} has {len(run_dirs)} W&B runs"
        run = read_offline_run(run_dirs[0])
        settings = metrics["run"]
        assert run["name"] == settings["name"]
        assert run["job_type"] == settings["method"]
        # the flat config: this job's settings and config leaves
        assert {k: run["config"][f"run.{k}"] for k in settings} == settings
        assert run["config"]["method.name"] == settings["method"]
        assert ("loss.name" in run["config"]) == (settings["method"] == "ft")  # no loss for a baseline
        assert f"permutations={settings['permutations']}" in run["tags"]
        assert ("model=tiny_random" in run["tags"]) == (settings["method"] == "ft")
        # per-split metrics in the summary, equal to metrics.json's
        for split, values in metrics["splits"].items():
            for key in ("jsd", "emd", "accuracy"):
                assert run["summary"][f"{split}/{key}"] == pytest.approx(values[key], abs=1e-9)
        # simulator and baseline both log the test metrics under the same names
        assert f"test/{next(iter(metrics['splits']))}/jsd" in run["summary"]
        runs.append(run)
    assert {r["job_type"] for r in runs} == {"ft", "prior"}
    groups = {r["group"] for r in runs}
    assert len(groups) == 1 and None not in groups and "" not in groups
    artifacts = [line for d in sorted(wandb_sweep.glob("*/wandb/offline-run-*"))
                 for line in subprocess.run([sys.executable, "-m", "wandb", "leet", "inspect", "--json", str(d)],
                                            capture_output=True, text=True, check=True).stdout.splitlines()
                 if '"type":"artifact"' in line and '"type":"model"' in line]
    assert len(artifacts) == 1 and "adapter-tiny_random-ft-kl" in artifacts[0]  # the ft job's; a baseline has none


def test_dashboard_spec_names_what_the_sweep_logs(wandb_sweep):
    proc = cli("-m", "survey_sim.report.dashboard", "--project", "survey-sim", "--sweep", str(wandb_sweep), timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    spec = json.loads((wandb_sweep / "dashboard.json").read_text())
    runs = offline_runs(wandb_sweep)
    assert spec["group"] == runs[0]["group"]
    grids = [b for b in spec["report"]["blocks"] if "runsets" in b]
    assert len(grids) == len(SECTIONS)
    for grid in grids:
        (runset,) = grid["runsets"]
        assert spec["group"] in runset["filters"]
        for key in runset["groupby"]:  # config.<flat key>.value
            assert key.startswith("config.") and key.endswith(".value")
            assert all(key[len("config."):-len(".value")] in r["config"] for r in runs), key
        metrics = [m for panel in grid["panels"] for m in panel["metrics"]]
        assert metrics and all(m in r["summary"] for m in metrics for r in runs)
    split_panels = {m.split("/")[0] for grid in grids for panel in grid["panels"] for m in panel["metrics"]}
    assert split_panels == set(json.loads(next(wandb_sweep.glob("0-*/metrics.json")).read_text())["splits"])


def test_a_failed_job_finishes_its_run_as_failed(tmp_path):
    import wandb

    run = wandb.init(project="survey-sim", dir=str(tmp_path), mode="offline", settings=wandb.Settings(silent=True))
    run.summary["val/jsd"] = 0.5
    finish_run(failed=True)
    assert wandb.run is None  # the next job starts its own run
    (run_dir,) = tmp_path.glob("wandb/offline-run-*")
    state = json.loads(subprocess.run([sys.executable, "-m", "wandb", "leet", "inspect", "--summary", "--json",
                                       str(run_dir)], capture_output=True, text=True, check=True).stdout)
    assert state["exit_code"] == 1


def test_lightning_extras_and_a_quiet_console(wandb_sweep):
    """save_hyperparameters (in the checkpoint, loadable with weights_only), the learning-rate monitor, and no
    litlogger tip or dependency deprecation lines on the console."""
    import torch

    (ft_job,) = [job for job in wandb_sweep.iterdir() if "method=ft" in job.name]
    ckpt = torch.load(ft_job / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["hyper_parameters"]["loss"] == "kl" and ckpt["hyper_parameters"]["lr"] > 0
    (run_dir,) = ft_job.glob("wandb/offline-run-*")
    assert "lr-AdamW" in read_offline_run(run_dir)["summary"]
    console = (wandb_sweep / "console.log").read_text()
    for noise in ("litlogger", "LeafSpec", "is_gradient_checkpointing"):
        assert noise not in console


def test_a_resumed_job_continues_its_wandb_run(tmp_path):
    """resume=true logs into the W&B run the job started (same id), not a new one."""
    out = tmp_path / "job"
    args = ["-m", "survey_sim.run", "data=demo", "smoke=on", "logger=wandb", "method=prior", f"hydra.run.dir={out}"]
    for extra in ([], ["resume=true"]):
        proc = cli(*args, *extra)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    ids = [d.name.rsplit("-", 1)[1] for d in sorted(out.glob("wandb/offline-run-*"))]
    assert len(ids) == 2 and ids[0] == ids[1]
    assert f"continuing W&B run {ids[0]}" in proc.stdout + proc.stderr
