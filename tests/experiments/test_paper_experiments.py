"""Every paper experiment runs end to end as a Hydra sweep with `smoke=on`, and the report has its table.

Each test runs `python -m survey_sim.run -m experiment=paper_tableN smoke=on` (tiny_random, 4 items per
split, 2 training steps) on the real data, then `python -m survey_sim.report` over the multirun folder, and
checks every expected row (model x method) and column (splits + Avg) of the markdown tables. Without the
real data the WVS experiments run on the demo survey instead (table 5 and 6 need WVS/Pew and are skipped).
"""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from survey_sim.paths import DATA_ENV
from survey_sim.report.__main__ import main as report_main

REPO = Path(__file__).resolve().parents[2]
WVS_SPLITS = ["C1-Q3", "C2-Q1", "C2-Q3", "C3-Q1", "C3-Q3"]
DEMO_SPLITS = ["test-unseen-country", "test-unseen-question", "test-unseen-both"]
PAPER_MODELS = ["vicuna_7b", "vicuna_13b", "llama3_8b_base", "llama3_8b_instruct", "distil_qwen_7b",
                "distil_qwen_14b", "distil_qwen_32b", "qwen_7b"]
TINY = "tiny_random"


def has_real_data() -> bool:
    value = os.environ.get(DATA_ENV)
    return bool(value) and Path(value).is_dir()


def sweep(tmp_path: Path, experiment: str, *overrides: str, cli: bool = False) -> tuple[Path, str]:
    """Run the experiment's sweep with smoke=on; returns the sweep folder and the log.

    cli=True runs `python -m survey_sim.run -m ...` in a subprocess (the real command line); otherwise the
    same entry point runs in this process (sys.argv set, Hydra's global state cleared), which saves the
    imports of a new interpreter.
    """
    out = tmp_path / experiment
    args = ["-m", f"experiment={experiment}", "smoke=on", f"hydra.sweep.dir={out}", *overrides]
    if cli:
        env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1",
               "TOKENIZERS_PARALLELISM": "false", "WANDB_MODE": "disabled"}
        cmd = [sys.executable, "-m", "survey_sim.run", *args]
        proc = subprocess.run(cmd, check=False, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
        log = proc.stdout + proc.stderr
        assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{log[-4000:]}"
        assert not re.search(r"^INFO: ", log, re.MULTILINE), "Lightning's lines are printed twice (own handler + Hydra's)"
        return out, log
    import torch
    from hydra.core.global_hydra import GlobalHydra

    from survey_sim.run import main

    threads, argv, cwd = torch.get_num_threads(), sys.argv, os.getcwd()
    log_file = tmp_path / f"{experiment}.log"
    handler = logging.FileHandler(log_file)
    logging.getLogger("hydra").addHandler(handler)
    try:
        torch.set_num_threads(1)  # 2 busy cores: one thread per run is several times faster here
        os.chdir(tmp_path)
        sys.argv = ["survey_sim.run", *args]
        GlobalHydra.instance().clear()
        try:
            main()
        except SystemExit as exc:  # Hydra exits on errors, after printing them
            raise AssertionError(f"sweep {args} exited with {exc.code}") from exc
    finally:
        GlobalHydra.instance().clear()
        logging.getLogger("hydra").removeHandler(handler)
        handler.close()
        sys.argv = argv
        os.chdir(cwd)
        torch.set_num_threads(threads)
    return out, log_file.read_text()


def report_tables(sweep_dir: Path, tmp_path: Path) -> dict[str, dict]:
    """Run the report CLI; returns {table title: {"columns": [...], "rows": {label: [cells]}}}."""
    out = tmp_path / f"{sweep_dir.name}-report"
    assert report_main([str(sweep_dir), "--out", str(out), "--bootstrap", "0", "--no-plots"]) == 0
    md = (out / "report.md").read_text(encoding="utf-8")
    assert "skipped (incomplete): 0" in md, md[:2000]
    tables: dict[str, dict] = {}
    for title, body in re.findall(r"^## (.+?)\n\n((?:\|.*\n)+)", md, flags=re.MULTILINE):
        lines = [[c.strip() for c in line.strip().strip("|").split("|")] for line in body.strip().splitlines()]
        header, rows = lines[0], lines[2:]
        if header[:2] != ["", "runs"]:
            continue  # the list of runs, not a metric table
        tables[title] = {"columns": header[2:], "rows": {r[0]: r[2:] for r in rows if r[0] != "*n items*"},
                         "ceiling": next((r[2:] for r in rows if r[0] == "*noise ceiling*"), None)}
        tables[title]["rows"].pop("*noise ceiling*", None)
    return tables


def check_table(tables: dict, title_start: str, rows: list[str], splits: list[str]) -> dict:
    matches = [t for t in tables if t.startswith(title_start)]
    assert matches, f"no table {title_start!r} in {list(tables)}"
    table = tables[matches[0]]
    own = [i for i, c in enumerate(table["columns"]) if not c.endswith(" (paper)")]  # beside them: published
    assert [table["columns"][i] for i in own] == [*splits, "Avg"]
    assert sorted(table["rows"]) == sorted(rows), table["rows"].keys()
    for label, cells in table["rows"].items():
        assert len(cells) == len(table["columns"])
        assert all(re.fullmatch(r"(\*\*)?-?\d\.\d{3}(\*\*)?", cells[i]) for i in own), (label, cells)  # all filled
    if title_start in ("1-JSD", "EMD"):  # every split read against its noise ceiling
        assert all(re.fullmatch(r"\d\.\d{3}", table["ceiling"][i]) for i in own[:-1]), table["ceiling"]
    return table


def run_metrics(sweep_dir: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(sweep_dir.glob("*/metrics.json"))]


def test_experiment_configs_keep_the_papers_models_and_smoke_replaces_them():
    """Without smoke the sweeps name the paper's models; smoke=on swaps in tiny_random; a model given on
    the command line wins over both (Hydra: command-line overrides after the sweeper's params)."""
    from hydra import compose, initialize_config_dir

    from survey_sim.run import CONFIG_DIR

    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        for name in ("paper_table4", "paper_table5", "paper_table6"):
            params = compose("config", [f"experiment={name}"], return_hydra_config=True).hydra.sweeper.params
            assert params.model.split(",") == PAPER_MODELS
        for name in ("paper_table4", "paper_table5", "paper_table6", "paper_table7", "paper_table11"):
            cfg = compose("config", [f"experiment={name}", "smoke=on"], return_hydra_config=True)
            assert cfg.hydra.sweeper.params.model == TINY and cfg.model.name == TINY
            assert cfg.max_items == 4 and cfg.trainer.max_steps == 2 and cfg.logger.name == "csv"
            # two experiments' sweeps started in the same second do not share a folder
            assert re.fullmatch(rf"multirun/\d{{4}}-\d\d-\d\d/\d\d-\d\d-\d\d-{name}",
                                cfg.hydra.sweep.dir)
        cfg = compose("config", ["experiment=paper_table4", "smoke=on", "model=smollm2_135m"])
        assert cfg.model.name == "smollm2_135m"
        full = compose("config", ["experiment=paper_table4"])
        assert full.max_items is None and full.trainer.max_steps == -1


def test_command_line_model_wins_over_the_sweep_params(tmp_path):
    """`-m experiment=paper_table11 smoke=on model=smollm2_135m method=uniform`: the run records the command
    line's values, and the sweep has one job."""
    data = [] if has_real_data() else ["data=demo", "eval_splits=null"]
    out, log = sweep(tmp_path, "paper_table11", "model=smollm2_135m", "method=uniform,prior", *data)
    assert "Launching 2 jobs" in log and "model=smollm2_135m" in log
    assert sorted(m["run"]["method"] for m in run_metrics(out)) == ["prior", "uniform"]


def test_paper_table4_models_x_zs_ft_ctrl(tmp_path):
    data = [] if has_real_data() else ["data=demo", "eval_splits=null"]
    out, _ = sweep(tmp_path, "paper_table4", *data, cli=True)
    metrics = run_metrics(out)
    assert sorted((m["run"]["method"], m["run"]["control"]) for m in metrics) == [
        ("ft", False), ("ft", True), ("zs", False), ("zs", True)]
    tables = report_tables(out, tmp_path)
    rows = [f"{TINY} / zs", f"{TINY} / zs [ctrl]", f"{TINY} / ft", f"{TINY} / ft [ctrl]"]
    splits = WVS_SPLITS if has_real_data() else DEMO_SPLITS
    for title in ("1-JSD", "EMD", "EMD (paper code)", "A-bias"):
        check_table(tables, title, rows, splits)
    ctrl = [m for m in metrics if m["run"]["control"]]
    assert all(m["splits"]["val"]["n_items"] == 4 for m in metrics) and len(ctrl) == 2


def test_paper_table5_chinese(tmp_path, real_data_root):
    out, _ = sweep(tmp_path, "paper_table5")
    assert {m["run"]["language"] for m in run_metrics(out)} == {"zh"}
    tables = report_tables(out, tmp_path)
    check_table(tables, "1-JSD", [f"{TINY} / zs", f"{TINY} / ft"], WVS_SPLITS)


def test_paper_table6_pew_transfer(tmp_path, real_data_root):
    out, _ = sweep(tmp_path, "paper_table6")
    tables = report_tables(out, tmp_path)
    for title in ("1-JSD", "Accuracy"):
        check_table(tables, title, [f"{TINY} / zs", f"{TINY} / ft"], ["Pew-C'1", "Pew-C3"])


TABLE7_LOSSES = ("kl", "js", "wasserstein", "ce", "kl_paper", "js_paper", "wasserstein_paper")


def test_paper_table7_losses_x_shuffled_options(tmp_path):
    """Both families of losses (definitions and the paper code's variants) x option order, under smoke=on."""
    data = [] if has_real_data() else ["data=demo", "eval_splits=null"]
    out, _ = sweep(tmp_path, "paper_table7", *data)
    metrics = run_metrics(out)
    assert sorted((m["run"]["loss"], m["run"]["shuffle"]) for m in metrics) == sorted(
        (loss, shuffled) for loss in TABLE7_LOSSES for shuffled in (False, True))
    tables = report_tables(out, tmp_path)
    rows = [f"{TINY} / ft (loss={loss}, shuffle={shuffled})"
            for loss in TABLE7_LOSSES for shuffled in (False, True)]
    splits = WVS_SPLITS if has_real_data() else DEMO_SPLITS
    check_table(tables, "1-JSD", rows, splits)
    check_table(tables, "A-bias", rows, splits)
    for path in out.glob("*shuffle.eval=true*/predictions.jsonl"):
        rows_ = [json.loads(line) for line in path.read_text().splitlines()]
        assert any(r["option_order"] != sorted(r["option_order"]) for r in rows_)


def test_paper_table11_baselines_and_model(tmp_path):
    data = [] if has_real_data() else ["data=demo", "eval_splits=null"]
    out, _ = sweep(tmp_path, "paper_table11", *data)
    metrics = {m["run"]["method"]: m for m in run_metrics(out)}
    assert sorted(metrics) == sorted(["uniform", "prior", "prior_loo", "knn", "json_zs", "zs", "ft"])
    stats = metrics["json_zs"]["baseline_stats"]  # a random model writes no JSON: every item counted
    assert stats["fallback"] == stats["items"] > 0 and stats["parsed"] == 0
    tables = report_tables(out, tmp_path)
    rows = ["uniform", "prior", "prior_loo", "knn", f"{TINY} / json_zs", f"{TINY} / zs", f"{TINY} / ft"]
    splits = WVS_SPLITS if has_real_data() else DEMO_SPLITS
    jsd = check_table(tables, "1-JSD", rows, splits)
    check_table(tables, "Accuracy", rows, splits)
    if has_real_data():  # the paper's Table 11 beside the matching rows (knn with k=1, prior = Avg_Culture)
        column = jsd["columns"].index("C1-Q3 (paper)")
        assert jsd["rows"]["knn"][column] == "0.381" and jsd["rows"]["prior"][column] == "0.360"
        assert jsd["rows"]["uniform"][column] in ("", "-", "–")


def test_every_shipped_experiment_is_tested():
    shipped = {p.stem for p in (REPO / "conf" / "experiment").glob("paper_table*.yaml")}
    tested = {n.removeprefix("test_").split("_")[0] + "_" + n.removeprefix("test_").split("_")[1]
              for n in globals() if re.match(r"test_paper_table\d+_", n)}
    assert shipped == tested
    for name in shipped:
        text = (REPO / "conf" / "experiment" / f"{name}.yaml").read_text()
        assert text.startswith("# @package _global_")
        assert yaml.safe_load(text)["hydra"]["sweeper"]["params"]


@pytest.mark.slow
def test_paper_table11_json_zs_and_zs_on_smollm2(tmp_path, real_data_root):
    """The model rows of table 11 with SmolLM2-135M-Instruct on 2 items per split (slow: generation on CPU)."""
    out, _ = sweep(tmp_path, "paper_table11", "model=smollm2_135m", "method=json_zs,zs", "max_items=2",
                   "++method.max_new_tokens=48")
    metrics = {m["run"]["method"]: m for m in run_metrics(out)}
    assert {m["run"]["model"] for m in metrics.values()} == {"smollm2_135m"}
    stats = metrics["json_zs"]["baseline_stats"]
    assert stats["items"] == 12 and stats["parsed"] + stats["fallback"] == 12
    tables = report_tables(out, tmp_path)
    check_table(tables, "1-JSD", ["smollm2_135m / json_zs", "smollm2_135m / zs"], WVS_SPLITS)
