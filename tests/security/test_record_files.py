"""Files through records: a file id seen anywhere never becomes readable by attaching it to a record.

The side door of finding 3's second half: a user who learns an app file's id (an export of another
user, the file in a company's hidden `contract`) writes it into a file field it may write, then
downloads it through that record. A user attaches only the files it uploaded, or those the record
already holds in fields it reads; a developer attaches any file of the tenant.
"""

from __future__ import annotations

import uuid

from tests.integration.stack import Api
from tests.integration.test_runtime_data import call, company, error, ok
from tests.integration.test_runtime_files import download, uploaded


def test_finding_3_a_user_cannot_attach_a_file_it_did_not_upload(api: Api, dev: str, user: str) -> None:
    # Given a contract only developers may read, in a company's hidden field
    secret = uploaded(api, dev, "contract.pdf", b"the contract nobody else reads")
    holder = company(api, dev, f"holder-{uuid.uuid4().hex[:10]}", contract={"id": secret})
    assert holder["contract"]["id"] == secret
    # When the sales user writes that file's id into a file field it may write
    mine = company(api, user, f"mine-{uuid.uuid4().hex[:10]}")
    status, answer = call(api, "PUT", f"/data/companies/{mine['id']}", user, {"document": {"id": secret}})
    # Then it is refused, and the file cannot be downloaded through the user's record
    error(status, answer, 403, "forbidden")
    status, _, body = download(api, f"/data/companies/{mine['id']}/files/{secret}", user)
    assert status == 404 and b"the contract" not in body
    # Nor on a record it creates
    status, answer = call(
        api, "POST", "/data/companies", user, {"name": f"new-{uuid.uuid4().hex[:8]}", "document": secret}
    )
    error(status, answer, 403, "forbidden")


def test_a_user_attaches_its_own_upload_and_keeps_what_the_record_holds(api: Api, dev: str, user: str) -> None:
    # A user's own upload attaches and downloads through the record
    own = uploaded(api, user, "notes.txt", b"my own notes")
    mine = company(api, user, f"own-{uuid.uuid4().hex[:10]}", document={"id": own})
    status, _, body = download(api, f"/data/companies/{mine['id']}/files/{own}", user)
    assert status == 200 and body == b"my own notes"
    # A file a developer put in a field the user reads stays when the user sends the record back as read
    theirs = uploaded(api, dev, "brochure.pdf", b"a brochure for everyone")
    shared = company(api, dev, f"shared-{uuid.uuid4().hex[:10]}", document={"id": theirs})
    seen = ok(api, "GET", f"/data/companies/{shared['id']}", user)
    changed = ok(api, "PUT", f"/data/companies/{shared['id']}", user, {"document": seen["document"], "color": "red"})
    assert changed["document"]["id"] == theirs and changed["color"] == "red"
    # A developer attaches any file of the tenant
    other = company(api, dev, f"dev-{uuid.uuid4().hex[:10]}", document={"id": own})
    assert other["document"]["id"] == own
