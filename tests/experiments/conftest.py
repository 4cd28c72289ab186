"""Fixtures of the experiment tests: the real data folder (skip with the reason when it is missing); the
experiment scripts' folder on sys.path, as when a script runs (`import bench`)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from survey_sim.paths import DATA_ENV

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "experiments"))


@pytest.fixture
def real_data_root() -> Path:
    """$SURVEY_SIM_DATA; the test is skipped when it is not set (the real WVS/Pew data are not shipped)."""
    value = os.environ.get(DATA_ENV)
    if not value or not Path(value).is_dir():
        pytest.skip(f"{DATA_ENV} not set: real WVS/Pew data unavailable")
    return Path(value)
