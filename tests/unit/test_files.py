"""Files: metadata in DynamoDB, bytes in S3, big files composed by streaming."""

from __future__ import annotations

import urllib.parse

from backroom.services import Services


def test_a_file_composed_from_parts_bigger_than_one_upload_part_is_exact(core: Services) -> None:
    files = core.files
    parts = [bytes([65 + i]) * (4 * 1024 * 1024 + i) for i in range(3)]  # 12 MiB in all: a multipart upload
    for i, part in enumerate(parts):
        files.put_scratch("job/x", f"parts/{i:010d}.csv", part)

    stored = files.compose("job/x", "out.csv", b"header\n", "parts/")
    files.delete_scratch("job/x", "parts/")

    expected = b"header\n" + b"".join(parts)
    assert stored.size == len(expected)
    assert files.read(stored) == expected
    assert [f.name for f in files.of_owner("job/x")] == ["out.csv"]
    url = urllib.parse.urlparse(files.download_url(stored, "a_b_out.csv"))
    assert url.path.endswith("/files/job/x/out.csv") and "Signature=" in url.query


def test_deleting_an_owners_files_removes_bytes_and_metadata(core: Services) -> None:
    core.files.put("job/y", "in.csv", b"a\n1\n")
    core.files.put_scratch("job/y", "parts/0000000000.csv", b"1\n")
    core.files.delete_all("job/y")
    assert core.files.of_owner("job/y") == []
    assert core.files.get("job/y", "in.csv") is None
