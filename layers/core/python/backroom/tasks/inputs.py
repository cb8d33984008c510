"""A task's input: CSV bytes or JSON records, checked against its action and cut into chunks.

The checks and their error bodies are Kazoo's: a malformed CSV, fields the action does not know,
mandatory fields missing from the header, and rows missing a mandatory value (listed as CSV).
Chunk boundaries are byte offsets into the stored `in.csv`, so a worker reads only its own slice.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from typing import Any

from backroom.csvfiles import CsvChunker
from backroom.errors import BackroomError, Invalid
from backroom.tasks.registry import TaskAction

CHUNK_ROWS = 1000
MAX_ROWS = 1_000_000
MAX_LISTED = 1000  # offending rows listed in one error
_BAD_FORMAT = "Empty CSV or some row(s) longer than others or header missing"


class InputRejected(BackroomError):
    """Kazoo's `invalid request`: the body says what is wrong with the input."""

    def __init__(self, data: dict[str, Any]) -> None:
        super().__init__("invalid request", data=data)


@dataclass
class TaskInput:
    data: bytes  # stored as in.csv
    columns: list[str]
    total: int
    # (first row, rows, first byte, end byte) of each chunk
    chunks: list[tuple[int, int, int, int]] = field(default_factory=list)
    file_name: str | None = None


def _bad_format() -> InputRejected:
    return InputRejected({"csv": {"format": {"message": _BAD_FORMAT}}})


def _csv_line(values: list[str]) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="").writerow(values)
    return out.getvalue()


def from_csv(action: TaskAction, data: bytes, *, chunk_rows: int = CHUNK_ROWS) -> TaskInput:
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise _bad_format() from None
    chunker = CsvChunker(io.StringIO(text, newline=""), chunk_rows)
    missing: list[str] = []
    try:
        header = chunker.header
        if not header or any(not h.strip() for h in header) or len(set(header)) != len(header):
            raise _bad_format()
        columns = [h.strip() for h in header]
        _check_fields(action, columns)
        mandatory = [i for i, c in enumerate(columns) if c in action.mandatory]
        for values in chunker:
            if len(values) != len(columns):
                raise _bad_format()
            if any(not values[i].strip() for i in mandatory) and len(missing) < MAX_LISTED:
                missing.append(_csv_line(values))
            if chunker.total > MAX_ROWS:
                raise Invalid(f"At most {MAX_ROWS} rows per task")
    except csv.Error:
        raise _bad_format() from None
    if chunker.total == 0:
        raise _bad_format()
    chunks = [(c.first, c.count, c.start, c.end) for c in chunker.chunks]
    if missing:
        raise InputRejected({"attachment": {"type": {"missing_mandatory_values": missing}}})
    return TaskInput(data=data, columns=columns, total=chunker.total, chunks=chunks)


def from_json(action: TaskAction, body: bytes, *, chunk_rows: int = CHUNK_ROWS) -> TaskInput | None:
    """`{"data": {"records": [...], "file_name": ...}}`: the records become the task's in.csv.

    No records is no input (None), as a PUT without a body: right for an action that takes none.
    """
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise Invalid("The body is neither CSV (Content-Type: text/csv) nor JSON") from None
    except RecursionError:
        raise Invalid("The JSON body is nested too deeply") from None
    data = document.get("data") if isinstance(document, dict) else None
    records = data.get("records") if isinstance(data, dict) else None
    file_name = data.get("file_name") if isinstance(data, dict) else None
    if records is None:
        raise Invalid('A JSON body carries {"data": {"records": [...]}}')
    if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
        raise Invalid("records must be a list of objects")
    if file_name is not None and not isinstance(file_name, str):
        raise Invalid("file_name must be a string")
    if not records:
        no_input(action)
        return None
    columns: dict[str, None] = {}
    for record in records:
        for key, value in record.items():
            if isinstance(value, dict | list):
                raise Invalid(f"records hold plain values: {key} does not")
            columns.setdefault(str(key), None)
    if not columns:
        raise _bad_format()
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    for record in records:
        writer.writerow(["" if record.get(c) is None else _plain(record[c]) for c in columns])
    parsed = from_csv(action, out.getvalue().encode(), chunk_rows=chunk_rows)
    parsed.file_name = file_name
    return parsed


def _plain(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def no_input(action: TaskAction) -> None:
    if action.takes_input:
        raise InputRejected({"attachment": {"type": {"expected_content": action.expected_content}}})


def _check_fields(action: TaskAction, columns: list[str]) -> None:
    problems: dict[str, Any] = {}
    if not action.takes_input:
        problems["expected_content"] = action.expected_content
    else:
        known = set(action.mandatory) | set(action.optional)
        unknown = [c for c in columns if c not in known]
        if unknown:
            problems["unknown_fields"] = unknown
        missing = [m for m in action.mandatory if m not in columns]
        if missing:
            problems["missing_mandatory_fields"] = missing
    if problems:
        raise InputRejected({"attachment": {"type": problems}})
