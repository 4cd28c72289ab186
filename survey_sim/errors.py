"""Exceptions raised by survey-sim; every message names what was wrong and where."""

from __future__ import annotations


class SurveySimError(Exception):
    """Base class of all survey-sim errors."""


class SurveyDataError(SurveySimError, ValueError):
    """A data file or record is malformed: the message names the file, the record index and the field."""

    def __init__(self, message: str, *, file: str | None = None, record: int | str | None = None,
                 field: str | None = None):
        where = []
        if file is not None:
            where.append(f"file {file}")
        if record is not None:
            where.append(f"record {record}")
        if field is not None:
            where.append(f"field '{field}'")
        super().__init__(f"{', '.join(where)}: {message}" if where else message)
        self.file, self.record, self.field = file, record, field


class ConfigError(SurveySimError, ValueError):
    """A configuration value is invalid; raised before any model is loaded."""


class ModelUnavailableError(SurveySimError, RuntimeError):
    """Model weights or a package needed to load them are missing."""


class TokenizerError(SurveySimError, ValueError):
    """The tokenizer cannot represent the prompt or an option letter as required."""
