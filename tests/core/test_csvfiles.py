"""The one CSV chunker: byte ranges that read back exactly the file's rows, whatever the rows hold.
And the safe writer: no cell a spreadsheet would run, every cell read back as it was."""

from __future__ import annotations

import csv
import io

from backroom.csvfiles import CsvChunker, SafeCsvWriter, chunk_rows, plain_cell, safe_cell
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


def test_finding_9_a_cell_a_spreadsheet_would_run_gets_a_leading_quote() -> None:
    for text in ("=1+1", "+cmd", "-2+3", "@SUM(A1)", "\tx", "\rx", "-", "+", "=", "- 5", "+1 415 555"):
        assert safe_cell(text) == "'" + text, text
    # Numbers a spreadsheet reads as numbers stay numbers; other text stays as it is
    for text in ("-5", "+5", "-1.5e3", "-.5", "1e-3", "+14157215234", "5-3", "a=b", "", " =x", "'quoted"):
        assert safe_cell(text) == text, text
    assert (safe_cell(-5), safe_cell(None), safe_cell(True)) == (-5, None, True)
    out = io.StringIO()
    SafeCsvWriter(out).writerows([["=1", "-5"], ["ok", "@x"]])
    SafeCsvWriter(out, formula_safe=False).writerow(["=1", "@x"])
    assert out.getvalue() == "'=1,-5\nok,'@x\n=1,@x\n"


@settings(max_examples=200, deadline=None)
@given(
    text=st.text(alphabet=st.sampled_from(["=", "+", "-", "@", "'", "\t", "\r", "1", ".", "e", "a", " "]), max_size=8)
)
def test_an_escaped_cell_reads_back_as_its_text(text: str) -> None:
    escaped = safe_cell(text)
    assert plain_cell(escaped) == text
    if escaped[:1] in ("=", "+", "-", "@", "\t", "\r"):
        float(escaped)  # only a number may still start like a formula
