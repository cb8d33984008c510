"""Every test gets its tier's marker from the directory it lives in, so that none is left unmarked.

- `core`: the whole core on in-process moto (tests/core; tests/unit before it was renamed): no process, no port.
- `integration`: the real handlers over HTTP through the local gateway, against the emulator server.
- `security`: adversarial requests over HTTP against the same local stack.
- `browser`: the console's page in headless Chromium against the same local stack (tests/browser).

`slow` is set by hand on the few tests whose size is what they prove; `pytest -m "not slow"` leaves them out.

The local stack's fixtures (tests/integration/stack.py) are declared here, once for the integration and
security tests: declared in each tier's conftest, they made two stacks in a process that ran both.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import botocore.loaders
import botocore.session
import pytest

from tests.integration.stack import api, dev, dev_token, local, sub, user  # noqa: F401 - fixtures

HERE = Path(__file__).resolve().parent
TIERS = {"core": "core", "integration": "integration", "security": "security", "browser": "browser"}


class _Paths(list[str]):
    """A loader's search paths, where boto3's Session adds its own folder once, not once per session."""

    def append(self, path: str) -> None:
        if path not in self:
            super().append(path)


def _one_loader() -> None:
    """Every botocore session of the test process shares one loader of the services' model files.

    The product makes a client per service and process, each from a new session (backroom.aws); the
    tests start moto and forget the clients for each test, so each test made its clients again, and each
    new session read the services' JSON models again: about 0.1 s a client, most of a test's set-up.
    The loader only reads botocore's files (and caches what it read); credentials, endpoints and
    configuration stay each session's own, as in the product.
    """
    loader = botocore.loaders.create_loader()
    loader._search_paths = _Paths(loader.search_paths)

    def create_loader(search_path_string: Any = None) -> botocore.loaders.Loader:
        return loader if search_path_string is None else botocore.loaders.create_loader(search_path_string)

    botocore.session.create_loader = create_loader


_one_loader()


def tier(path: Path) -> str:
    """The marker of the tier a test file belongs to: its first directory under tests/."""
    parts = path.resolve().relative_to(HERE).parts
    if len(parts) < 2 or parts[0] not in TIERS:
        raise pytest.UsageError(f"{path}: tests live in a tier's directory, one of tests/{{{','.join(TIERS)}}}/")
    return TIERS[parts[0]]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.resolve().is_relative_to(HERE):
            item.add_marker(tier(item.path))
        _name_uniquely(item)
    # The files holding a `slow` case start first: `make test`'s two processes take whole files in
    # collection order, and the longest file taken last would leave one process idle to the end.
    slow = {item.path for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.path not in slow)  # stable: each file's own order is kept
    seen: set[str] = set()
    twice = [item.nodeid for item in items if item.nodeid in seen or seen.add(item.nodeid)]  # type: ignore[func-returns-value]
    if twice:  # `make test`'s scheduler (xdist, whole files) runs one of each id: the others would not run
        raise pytest.UsageError(f"test ids collected twice, so only one of each would run: {twice[:3]}")


def _name_uniquely(item: pytest.Item) -> None:
    """Schemathesis gives every operation's item the test function's id, without the operation in it;
    xdist schedules by id, so under `make test` one operation of the fuzz session ran and 86 did not.
    The item's name carries the operation (`test_x[GET /path]`): the id takes it too."""
    if item.parent is not None and item.name != item.nodeid.rpartition("::")[2]:
        item._id = item.parent.id.child(item.name)  # pytest's own way to make a child's id
