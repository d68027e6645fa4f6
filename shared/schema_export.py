"""Print (or write) the JSON Schemas of the public contract: requests in, events out, and
the status query and its answer; and the webhook's OpenAPI 3.1 document (``shared.openapi``).

``python -m shared.schema_export`` prints the schemas as one JSON document (``--openapi``: the
OpenAPI document); ``--out DIR`` writes one file per schema plus ``openapi.json``, which is how
``schemas/`` in the repository is produced and kept in sync (tests check both).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter

from shared.events import CloudEvent
from shared.outcome import Outcome
from shared.schemas import RestoreBatch, RestoreRequest
from shared.status import ObjectStatus, StatusQuery
from shared.validation import FieldProblem


def schemas() -> dict[str, dict[str, Any]]:
    return {
        "restore-request": TypeAdapter(RestoreRequest).json_schema(mode="validation"),
        "restore-batch": RestoreBatch.model_json_schema(mode="validation"),
        "restore-event": TypeAdapter(CloudEvent).json_schema(mode="serialization"),
        "outcome": TypeAdapter(Outcome).json_schema(mode="serialization"),
        "validation-problem": TypeAdapter(FieldProblem).json_schema(mode="serialization"),
        "status-query": TypeAdapter(StatusQuery).json_schema(mode="validation"),
        "object-status": ObjectStatus.model_json_schema(mode="serialization"),
    }


OPENAPI_FILE = "openapi.json"


def openapi() -> dict[str, Any]:
    """The webhook's OpenAPI document (imported here: it loads the bulk models too)."""
    from shared.openapi import document

    return document()


def render(document: dict[str, Any]) -> str:
    """How every file in ``schemas/`` is written: stable key order, one trailing newline."""
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path,
                        help=f"directory to write <name>.schema.json and {OPENAPI_FILE} to")
    parser.add_argument("--openapi", action="store_true",
                        help="print the OpenAPI document instead of the schemas")
    args = parser.parse_args(argv)
    if args.out is None:
        print(render(openapi() if args.openapi else schemas()), end="")
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    files = {f"{name}.schema.json": document for name, document in schemas().items()}
    files[OPENAPI_FILE] = openapi()
    for filename, document in files.items():
        path = args.out / filename
        path.write_text(render(document), encoding="utf-8")
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
