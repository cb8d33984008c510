"""The one CSV chunker of the core: a file is read once, front to back, to find where each chunk of rows
starts and ends in bytes; a worker then reads only its chunk's byte range (`FileStore.open_text`).

Used by every job that reads a CSV file (gateway imports, runtime imports, tasks' `in.csv`). Memory
stays at one row whatever the size of the file: the csv reader pulls whole records (quoted line breaks
included) from a line iterator that counts the bytes it hands out.

And the one safe writer (`SafeCsvWriter`, `safe_cell`): every CSV the product writes for people to open
(runtime exports, task outputs) escapes a text cell a spreadsheet would run as a formula (it starts with
`=`, `+`, `-`, `@`, a tab or a carriage return) with a leading `'`, which spreadsheets show as text.
A number (`-5`, `+1.5e3`) stays a plain number. The escape is reversible (`plain_cell`, used by the
runtime import): a cell whose text after its leading quotes would start a formula gets one more quote,
so an exported file imports back unchanged.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, TextIO

BOM = "\ufeff"
FORMULA_STARTS = frozenset("=+-@\t\r")
# What a spreadsheet reads as a number, not a formula: an optional sign, digits, a point, an exponent.
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")


def safe_cell(value: Any) -> Any:
    """`value` as a spreadsheet shows it and never runs it: text starting like a formula gets a leading `'`.

    Numbers (and text that reads as one) stay as they are. So does text already quoted unless what follows
    its quotes starts a formula: then one more quote, so that `plain_cell` gives the very text back.
    """
    if value is None or isinstance(value, bool | int | float | Decimal):
        return value
    text = str(value)
    if text.lstrip("'")[:1] in FORMULA_STARTS and not _NUMBER.fullmatch(text):
        return "'" + text
    return text


def plain_cell(text: str) -> str:
    """The text `safe_cell` escaped, back (a cell read from a file the product may have written)."""
    if text[:1] == "'" and text.lstrip("'")[:1] in FORMULA_STARTS:
        return text[1:]
    return text


class SafeCsvWriter:
    """`csv.writer` whose cells pass through `safe_cell` (unless `formula_safe` is False)."""

    def __init__(self, out: TextIO, *, formula_safe: bool = True, lineterminator: str = "\n") -> None:
        self._writer = csv.writer(out, lineterminator=lineterminator)
        self.formula_safe = formula_safe

    def writerow(self, row: Iterable[Any]) -> None:
        self._writer.writerow([safe_cell(c) for c in row] if self.formula_safe else row)

    def writerows(self, rows: Iterable[Iterable[Any]]) -> None:
        for row in rows:
            self.writerow(row)


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
