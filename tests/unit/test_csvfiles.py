"""The one CSV chunker: byte ranges that read back exactly the file's rows, whatever the rows hold."""

from __future__ import annotations

import csv
import io

from backroom.csvfiles import CsvChunker, chunk_rows
from hypothesis import given, settings
from hypothesis import strategies as st

cells = st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=12)


def encoded(header: list[str], rows: list[list[str]], bom: bool) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow(row)
    return ("\ufeff" if bom else "").encode() + out.getvalue().encode()


@settings(max_examples=60, deadline=None)
@given(
    rows=st.lists(st.lists(cells, min_size=3, max_size=3), max_size=40),
    size=st.integers(1, 7),
    bom=st.booleans(),
)
def test_every_chunk_reads_back_its_own_rows_by_its_byte_range(rows: list[list[str]], size: int, bom: bool) -> None:
    data = encoded(["a", "b", "c"], rows, bom)
    chunker = CsvChunker(io.TextIOWrapper(io.BytesIO(data), encoding="utf-8", newline=""), size)
    assert chunker.header == ["a", "b", "c"]
    seen = list(chunker)
    wanted = rows  # a row of three empty cells is still a row (",,")
    assert seen == wanted and chunker.total == len(wanted)
    back: list[list[str]] = []
    for chunk in chunker.chunks:
        assert chunk.count <= size
        piece = io.TextIOWrapper(io.BytesIO(data[chunk.start : chunk.end]), encoding="utf-8", newline="")
        part = [values for _, values in chunk_rows(piece)]
        assert len(part) == chunk.count
        back.extend(part)
    assert back == wanted
    assert [c.first for c in chunker.chunks] == list(range(0, len(wanted), size))


def test_blank_lines_are_no_rows_and_a_skip_resumes_inside_a_chunk() -> None:
    data = b'x,y\n1,2\n\n3,4\n5,"six\nlines"\n'
    chunker = CsvChunker(io.TextIOWrapper(io.BytesIO(data), encoding="utf-8", newline=""), 2)
    assert list(chunker) == [["1", "2"], ["3", "4"], ["5", "six\nlines"]]
    first, second = chunker.chunks
    assert (first.first, first.count, second.first, second.count) == (0, 2, 2, 1)
    piece = io.TextIOWrapper(io.BytesIO(data[first.start : first.end]), encoding="utf-8", newline="")
    assert list(chunk_rows(piece, skip=1)) == [(1, ["3", "4"])]
