"""The emulator's one install point: it refuses a moto it was not written for, and undoes itself exactly.

infra/local/patches.py replaces moto (and powertools) attributes; on another version they could
answer wrongly without a word, so it must refuse before it replaces anything.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from aws_lambda_powertools.event_handler import api_gateway
from moto.dynamodb import models as models_module
from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models.table import Table
from moto.dynamodb.responses import DynamoHandler, DynamoResult

from infra.local import emulator, patches

# Every owner the table patches, with the attributes it replaces.
OWNERS = (DynamoDBBackend, Table, DynamoHandler, DynamoResult, models_module, api_gateway.BaseRouter)


def snapshot() -> list[Any]:
    """Each owner's own attributes (identity) and each class's metaclass."""
    return [(dict(vars(owner)), type(owner)) for owner in OWNERS]


@pytest.fixture
def shipped() -> Iterator[pytest.MonkeyPatch]:
    """moto and powertools as they ship during the test, and a monkeypatch undone before the process's
    patch state is put back."""
    with patches.uninstalled(), pytest.MonkeyPatch.context() as patch:
        yield patch


def test_another_moto_version_is_refused_before_anything_is_replaced(shipped: pytest.MonkeyPatch) -> None:
    before = snapshot()
    shipped.setattr(patches, "_installed_versions", lambda: {**patches.WRITTEN_FOR, "moto": "5.2.6"})

    with pytest.raises(patches.EmulatorMismatch) as refused:
        patches.install()

    message = str(refused.value)
    assert "moto 5.2.6 is installed" in message and "moto==5.2.5" in message
    assert "infra/local/patches.py" in message
    assert snapshot() == before
    assert not patches.installed_now()


def test_the_local_stack_refuses_it_before_starting_the_emulator(shipped: pytest.MonkeyPatch) -> None:
    # (the emulator's child process has no visible output: its own refusal would read as a bare exit)
    shipped.setattr(patches, "_installed_versions", lambda: {**patches.WRITTEN_FOR, "moto": "6.0.0"})
    started: list[Any] = []
    shipped.setattr(emulator.subprocess, "Popen", lambda *a, **k: started.append(a))

    with pytest.raises(patches.EmulatorMismatch, match=r"moto 6\.0\.0 is installed"):
        emulator.start_moto(port=emulator.free_port())
    assert started == []


def test_an_attribute_of_another_shape_is_refused_before_anything_is_replaced(shipped: pytest.MonkeyPatch) -> None:
    # A moto whose Table.query takes its arguments in another order (the patch reads them by position)
    def query(self: Table, hash_key: Any, index_name: Any, range_comparison: Any) -> Any:
        raise AssertionError("not called")

    shipped.setattr(Table, "query", query)
    shipped.delattr(DynamoHandler, "transact_get_items")
    before = snapshot()

    with pytest.raises(patches.EmulatorMismatch) as refused:
        patches.install()

    message = str(refused.value)
    assert "Table.query is '(self, hash_key, index_name, range_comparison)'" in message
    assert "DynamoHandler.transact_get_items is 'absent', expected '(self)'" in message
    assert snapshot() == before


@pytest.mark.usefixtures("shipped")
def test_uninstall_puts_back_exactly_what_was_there() -> None:
    before = snapshot()
    # powertools itself sets the class attribute when a handler resolves a request unpatched (an earlier
    # test of this process may have): whatever was there is what uninstall leaves, not "nothing".
    event_before = vars(api_gateway.BaseRouter).get("current_event", None)

    patches.install()
    patched = snapshot()
    patches.uninstall()

    assert patched != before
    assert snapshot() == before
    assert type(api_gateway.BaseRouter).__name__ == "ABCMeta"
    assert vars(api_gateway.BaseRouter).get("current_event", None) is event_before
