"""Where data and caches live: resolved from config values and environment variables, never hard-coded."""

from __future__ import annotations

import os
from pathlib import Path

from survey_sim.errors import ConfigError

DATA_ENV = "SURVEY_SIM_DATA"
CACHE_ENV = "SURVEY_SIM_CACHE"

DATA_HELP = (
    "Survey data is not shipped with survey-sim (WVS and GlobalOpinionQA licences forbid redistribution). "
    "Point the project at a folder holding wvs/ and pew/ in the paper's item format by\n"
    f"  - setting the environment variable {DATA_ENV}=/path/to/data, or\n"
    "  - passing data.root=/path/to/data on the command line;\n"
    "build the WVS items yourself from the official WVS-7 file with `python -m survey_sim.data build-wvs`, "
    "or use the synthetic demo survey with data=demo, which needs no files."
)


def config_dir() -> Path:
    """survey-sim's config folder: `survey_sim/conf` in an installed wheel, else the repository's top-level
    `conf/` beside the package (a clone, or an editable install of one)."""
    package = Path(__file__).resolve().parent
    for candidate in (package / "conf", package.parent / "conf"):
        if (candidate / "config.yaml").is_file():
            return candidate
    raise ConfigError(f"survey-sim's config folder is missing: neither {package / 'conf'} nor {package.parent / 'conf'} "
                      "holds config.yaml; reinstall survey-sim")


def data_root(configured: str | os.PathLike | None = None) -> Path:
    """The survey data folder: the configured value, else $SURVEY_SIM_DATA; a clear error when neither exists."""
    value = configured if configured not in (None, "") else os.environ.get(DATA_ENV)
    if not value:
        raise ConfigError(f"No survey data folder configured.\n{DATA_HELP}")
    root = Path(value).expanduser()
    if not root.is_dir():
        raise ConfigError(f"Survey data folder {root} does not exist.\n{DATA_HELP}")
    return root.resolve()


def cache_dir() -> Path:
    """survey-sim's cache folder: $SURVEY_SIM_CACHE, else $XDG_CACHE_HOME/survey-sim, else ~/.cache/survey-sim."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "survey-sim"
