"""The one CSV chunker of the core: a file is read once, front to back, to find where each chunk of rows
starts and ends in bytes; a worker then reads only its chunk's byte range (`FileStore.open_text`).

Used by every job that reads a CSV file (gateway imports, runtime imports, tasks' `in.csv`). Memory
stays at one row whatever the size of the file: the csv reader pulls whole records (quoted line breaks
included) from a line iterator that counts the bytes it hands out.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TextIO

BOM = "\ufeff"


@dataclass(frozen=True)
class CsvChunk:
    """`count` rows from row `first` (0-based, header and blank lines not counted), in bytes [start, end)."""

    first: int
    count: int
    start: int
    end: int


class _CountingLines:
    """A text stream's lines, counting the UTF-8 bytes handed out so far."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.position = 0

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        line = self.stream.readline()
        if not line:
            raise StopIteration
        self.position += len(line.encode())
        return line


class CsvChunker:
    """One pass over a CSV stream: its header, then its rows, closing a chunk every `chunk_rows` rows.

    Raises `csv.Error` or `UnicodeDecodeError` for a file that is not CSV in UTF-8: callers turn them
    into their dialect's error.
    """

    def __init__(self, stream: TextIO, chunk_rows: int) -> None:
        self.chunk_rows = chunk_rows
        self._lines = _CountingLines(stream)
        self._reader = csv.reader(self._lines)
        self.header: list[str] = next(self._reader, [])
        if self.header:
            self.header[0] = self.header[0].removeprefix(BOM)
        self.chunks: list[CsvChunk] = []
        self.total = 0

    def __iter__(self) -> Iterator[list[str]]:
        """Every non-blank row's values; `chunks` and `total` are complete once the iteration ends."""
        first, start = 0, self._lines.position
        for values in self._reader:
            if not values:
                continue  # a blank line is no row
            self.total += 1
            yield values
            if self.total - first == self.chunk_rows:
                self.chunks.append(CsvChunk(first, self.chunk_rows, start, self._lines.position))
                first, start = self.total, self._lines.position
        if self.total > first:
            self.chunks.append(CsvChunk(first, self.total - first, start, self._lines.position))

    def scan(self) -> list[CsvChunk]:
        """Read to the end; the chunks."""
        for _ in self:
            pass
        return self.chunks


def chunk_rows(stream: TextIO, skip: int = 0) -> Iterator[tuple[int, list[str]]]:
    """The rows of one chunk's byte range as (position in the chunk, values), leaving out the first `skip`."""
    seen = 0
    for values in csv.reader(stream):
        if not values:
            continue
        if seen >= skip:
            yield seen, values
        seen += 1
