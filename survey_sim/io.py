"""File I/O: atomic writes (a reader never sees a half-written output file), text reads whose encoding
errors name the file, and file-name-safe slugs."""

from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

from survey_sim.errors import SurveyDataError


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_writer(path: str | os.PathLike) -> Iterator[IO[bytes]]:
    """A binary file that replaces `path` only when the block ends without an error.

    It is a temporary file beside `path` (same file system, so the final rename is atomic), fsynced and
    given the permissions a new file gets (0666 minus the umask) before it is renamed over `path`. A process
    killed while writing leaves `path` as it was (and a hidden `.name.*.tmp` file).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            yield fh
            fh.flush()
            os.fchmod(fh.fileno(), 0o666 & ~_umask())
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write `data` to a temporary file beside `path`, fsync it, then rename it over `path`."""
    with atomic_writer(path) as fh:
        fh.write(data)
    return Path(path)


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any, **kwargs) -> Path:
    kwargs.setdefault("indent", 2)
    kwargs.setdefault("sort_keys", True)
    return atomic_write_text(path, json.dumps(obj, ensure_ascii=False, **kwargs) + "\n")


def atomic_write_jsonl(path: str | os.PathLike, rows: Iterable[Any]) -> Path:
    text = "".join(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n" for r in rows)
    return atomic_write_text(path, text)


def read_text(path: str | os.PathLike, encoding: str = "utf-8") -> str:
    """The file's text; SurveyDataError naming the file if it is not valid `encoding` (UTF-8)."""
    try:
        return Path(path).read_text(encoding=encoding)
    except UnicodeDecodeError as err:
        raise SurveyDataError(f"not UTF-8 text ({err}); save the file as UTF-8", file=str(path)) from None


def slug(text: str, used: set[str] | None = None) -> str:
    """A file-name-safe form of `text`; with `used`, made unique within it (which it joins)."""
    base = re.sub(r"[^A-Za-z0-9._-]+", "_", str(text)).strip("_") or "x"
    if used is None:
        return base
    name, n = base, 1
    while name in used:
        n += 1
        name = f"{base}_{n}"
    used.add(name)
    return name
