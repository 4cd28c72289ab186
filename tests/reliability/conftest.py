"""Fixtures of the reliability tests. `reference_run` is an uninterrupted fine-tuning run that the resume
and reproducibility tests compare with."""

from __future__ import annotations

from pathlib import Path

import pytest
from reliability_helpers import FT, run_in_process


@pytest.fixture(scope="session")
def reference_run(tmp_path_factory) -> Path:
    """An uninterrupted fine-tuning run with the FT settings (seed 42)."""
    out = tmp_path_factory.mktemp("reference") / "run"
    run_in_process(out, *FT)
    return out
