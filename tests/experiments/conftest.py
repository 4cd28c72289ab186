"""Fixtures of the experiment tests: the real data folder (skip with the reason when it is missing)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from survey_sim.paths import DATA_ENV


@pytest.fixture
def real_data_root() -> Path:
    """$SURVEY_SIM_DATA; the test is skipped when it is not set (the real WVS/Pew data are not shipped)."""
    value = os.environ.get(DATA_ENV)
    if not value or not Path(value).is_dir():
        pytest.skip(f"{DATA_ENV} not set: real WVS/Pew data unavailable")
    return Path(value)
