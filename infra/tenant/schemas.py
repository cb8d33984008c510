"""The JSON Schemas of the configuration files, written from their models: `make schemas` writes
`docs/schemas/<file>.schema.json` (a test checks the committed ones still match the models)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from infra.tenant.models import FILES

DOCS = Path(__file__).resolve().parents[2] / "docs" / "schemas"


def schemas() -> dict[str, dict[str, Any]]:
    """`<file>.schema.json` -> its schema, for each file of a configuration directory."""
    found = {}
    for name, model in FILES.items():
        schema = {"$schema": "https://json-schema.org/draft/2020-12/schema", **model.model_json_schema()}
        found[name.replace(".json", ".schema.json")] = schema
    return found


def rendered(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=2, sort_keys=False) + "\n"


def write(directory: Path = DOCS) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, schema in schemas().items():
        path = directory / name
        path.write_text(rendered(schema))
        written.append(path)
    return written


if __name__ == "__main__":
    for path in write(Path(sys.argv[1]) if len(sys.argv) > 1 else DOCS):
        print(path)
