"""A hidden field answers 403 whatever the caller sends for it: its type is never revealed by a 400."""

from __future__ import annotations

import pytest

from tests.integration.stack import Api
from tests.integration.test_runtime_data import call, error


@pytest.mark.parametrize(
    "query",
    [
        "taxId=between(1)",  # a malformed range on a hidden text field
        "contract=notAFile",  # a hidden file field
        "_sortField=taxId",
        "_query=filter(%27taxId%27%2C%27x%27)",  # a hidden field inside `_query`
        "contract.id=x",
    ],
)
def test_finding_10c_a_malformed_value_for_a_hidden_field_is_403(api: Api, user: str, query: str) -> None:
    status, answer = call(api, "GET", f"/data/companies?{query}", user)
    error(status, answer, 403, "forbidden")
    assert "text" not in answer["message"] and "file" not in answer["message"].lower()


def test_finding_10c_a_reader_filtering_by_a_hidden_email_is_403(api: Api, sub: str) -> None:
    for query in ("email=notAnEmail", "email=like(/x(/)", "email=empty()"):
        status, answer = call(api, "GET", f"/data/contacts?{query}", sub)
        error(status, answer, 403, "forbidden")
