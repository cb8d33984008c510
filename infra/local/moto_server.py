"""The embedded emulator's entry point: moto server with the patches of infra/local/patches.py."""

from __future__ import annotations

import os
from typing import Any

from moto import server

from infra.local import patches


def _exit_now(signum: Any, frame: Any) -> None:
    # The emulator's state is memory only: nothing to flush. A normal exit would free every item one
    # by one, which takes longer than `make run` waits once a 100,000-row task has run.
    os._exit(0)


if __name__ == "__main__":
    patches.install()
    server.signal_handler = _exit_now
    server.main()
