"""`python -m survey_sim.data describe`: counts per split, the paper's counts, clear errors."""

import os
import re
import subprocess
import sys

import pytest

from survey_sim.data.__main__ import main
from survey_sim.data.demo import make_demo_survey


def row(out: str, split: str) -> list[str]:
    line = next(x for x in out.splitlines() if x.split() and x.split()[0] == split)
    return line.split()


def test_describe_demo_is_labelled_synthetic(capsys, monkeypatch):
    monkeypatch.delenv("SURVEY_SIM_DATA", raising=False)
    assert main(["describe", "data=demo"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("SYNTHETIC demo survey")
    for name, items in make_demo_survey().items():
        cells = row(out, name)
        assert cells[1:4] == [str(len(items)), str(len({i.group for i in items})),
                              str(len({i.question_id for i in items}))]
    assert "(source synthetic-demo)" in out


def test_describe_without_data_explains(capsys, monkeypatch):
    monkeypatch.delenv("SURVEY_SIM_DATA", raising=False)
    assert main(["describe", "data=wvs_en"]) == 1
    assert "SURVEY_SIM_DATA" in capsys.readouterr().err
    with pytest.raises(SystemExit, match="give the data config, e.g. data=wvs_en"):
        main(["describe"])


def test_describe_real_wvs_en(data_root, capsys):
    assert main(["describe", "data=wvs_en", f"data.root={data_root}"]) == 0
    out = capsys.readouterr().out
    assert row(out, "train")[1:6] == ["6841", "46/46", "150", "6841", "100.0%"]
    assert row(out, "C1-Q3")[1:6] == ["942", "16/46", "60", "2719", "34.6%"]
    assert row(out, "C2-Q2")[1:6] == ["166", "5/8", "35", "-", "-"]
    assert row(out, "C3-Q3")[1:6] == ["300", "5/11", "60", "660", "45.5%"]
    assert re.search(r"^9 splits, 11781 items$", out, re.MULTILINE)


def test_module_entry_point_runs():
    env = {k: v for k, v in os.environ.items() if k != "SURVEY_SIM_DATA"}
    proc = subprocess.run([sys.executable, "-m", "survey_sim.data", "describe", "data=demo",
                           "data.demo.n_countries=5"], check=False, capture_output=True, text=True, env=env,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert row(proc.stdout, "test-unseen-country")[2] == "1"  # 5 countries: 1 unseen
