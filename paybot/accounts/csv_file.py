"""An accounts CSV file as records: strict UTF-8 (a byte-order mark is fine), CSV quoting, and
the physical line each record starts on, for error messages."""

from __future__ import annotations

import csv
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, Any, Union

Source = Union[str, os.PathLike, IO[str], IO[bytes]]
_BOM = "\ufeff"


class FileError(Exception):
    """A problem with the whole file; reading stops."""

    def __init__(self, line: int, reason: str) -> None:
        super().__init__(reason)
        self.line = line
        self.reason = reason


class _Lines:
    """Physical lines of a text or binary file as str, counting them; strict UTF-8."""

    def __init__(self, fh: IO[Any]) -> None:
        self._fh = fh
        self.count = 0

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        try:
            raw = next(self._fh)
        except UnicodeDecodeError:  # a text stream opened with the wrong encoding
            raise FileError(self.count + 1, "file is not UTF-8 text") from None
        self.count += 1
        if isinstance(raw, bytes):
            try:
                raw = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise FileError(self.count, "file is not UTF-8 text (save it as UTF-8)") from None
        if self.count == 1:
            raw = raw.removeprefix(_BOM)
        return raw


def csv_records(fh: IO[Any]) -> Iterator[tuple[int, list[str]]]:
    """The CSV records of ``fh`` (binary, or text already decoded) with the physical line each
    starts on; blank records skipped. Raises :class:`FileError` when the file is not UTF-8 or
    its quoting is broken."""
    lines = _Lines(fh)
    reader = csv.reader(lines, strict=True)
    while True:
        start = lines.count + 1
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise FileError(start, f"malformed CSV ({exc})") from None
        if any(c.strip() for c in cells):
            yield start, cells


@contextmanager
def opened(source: Source) -> Iterator[IO[Any]]:
    """``source`` as an open file: a path is opened (binary) and closed afterwards."""
    if isinstance(source, (str, os.PathLike)):
        with open(source, "rb") as fh:
            yield fh
    else:
        yield source
