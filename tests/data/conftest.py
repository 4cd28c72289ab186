"""Fixtures shared by the data tests."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from survey_sim.paths import DATA_ENV

MISSING_DATA = f"{DATA_ENV} not set: real WVS/Pew data unavailable"


@pytest.fixture
def data_root() -> Path:
    """The real data folder ($SURVEY_SIM_DATA); the test is skipped when it is not set."""
    value = os.environ.get(DATA_ENV)
    if not value or not Path(value).is_dir():
        pytest.skip(MISSING_DATA)
    return Path(value)
