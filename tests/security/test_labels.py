"""Labels: a record's label is shown wherever the record is (its own `label`, a relationship's `{id,
label}`, history's `recordName`, an aggregate's group), so a label computed from a field its reader may
not read would carry that field out. The rule: an app whose label names a field one of the entity's
readers may not read is refused when it is installed. And a relationship's `{id, label}` is the value
of the field that holds it: who may read that field sees the label (hide the field to hide it).
"""

from __future__ import annotations

import pytest
from backroom.errors import Invalid

from infra.demo.load import demo_app
from tests.integration.stack import LocalStack
from tests.security.actors import (
    World,
    leaks,
    runtime,
    world_fixture,  # noqa: F401 - the fixture `world`
)


def test_an_app_whose_label_names_a_field_hidden_from_a_reader_is_refused(local: LocalStack) -> None:
    # Given the demo app with companies labelled by their tax id, which the Sales group may not read
    app = demo_app(listing_members=True)  # installed in a tenant without the demo's users
    companies = next(e for e in app.entities if e.name == "companies")
    companies.schema_.label = "{name} [{taxId}]"
    # When it is installed, then it is refused, naming the field and the reader
    with pytest.raises(Invalid, match=r"taxId.*user@demo\.local"):
        local.core.app.repo.install("a-tenant-that-never-exists", app)
    # A label of fields every reader reads installs (the demo's own app, as `make run` loads it)
    companies.schema_.label = "{name}"
    app.labels_hiding_nothing()


def test_a_relationship_label_follows_the_field_that_holds_it(world: World) -> None:
    # sub reads contacts and their `company` field: the company's label (its name) is that field's value
    secret = world.secret
    status, contact = runtime(world.api, "GET", f"/data/contacts/{secret.contact_id}", world.sub)
    assert status == 200 and contact["company"]["label"] == secret.name, contact
    # ... but nothing else of the company: fetching it inline, its fields, or its hidden tax id
    status, fetched = runtime(
        world.api, "GET", f"/data/contacts/{secret.contact_id}?_relationshipsToFetch=company", world.sub
    )
    assert status == 200 and set(fetched["company"]) == {"id", "label"}, fetched
    assert not leaks([contact, fetched], secret.tax_id)
    status, answer = runtime(world.api, "GET", f"/data/companies/{secret.company_id}", world.sub)
    assert status == 403, answer
