"""Seeds test data into in-process moto without the HTTP round trip: for big fixtures, not for the product.

A 10,000-record fixture written through `BatchWriteItem` spends most of its minute in botocore and
moto turning 25-item requests into JSON and back. This hands the same items to moto's backend as
`PutItem` would store them (same table, keys and attribute values), in a fraction of that time.
It works only where moto runs in this process (`mock_aws`, the unit tests).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from backroom.dynamo import to_item
from moto.core import DEFAULT_ACCOUNT_ID
from moto.dynamodb.models import dynamodb_backends


def put_items(table_name: str, items: Iterable[Mapping[str, Any]], *, region: str = "us-east-1") -> int:
    """Store `items` (plain dicts, as the core writes them) in moto's table; returns how many."""
    backend = dynamodb_backends[DEFAULT_ACCOUNT_ID][region]
    count = 0
    for item in items:
        backend.put_item(table_name, to_item(item))
        count += 1
    return count
