"""Print (or write) the JSON Schemas of the public contract: requests in, events out, and
the status query and its answer.

``python -m shared.schema_export`` prints one JSON document; ``--out DIR`` writes one file per
schema, which is how ``schemas/`` in the repository is produced and kept in sync (a test checks).
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
        "restore-event": CloudEvent.model_json_schema(mode="serialization"),
        "outcome": Outcome.model_json_schema(mode="serialization"),
        "validation-problem": FieldProblem.model_json_schema(mode="serialization"),
        "status-query": TypeAdapter(StatusQuery).json_schema(mode="validation"),
        "object-status": ObjectStatus.model_json_schema(mode="serialization"),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, help="directory to write <name>.schema.json files to")
    args = parser.parse_args(argv)
    documents = schemas()
    if args.out is None:
        print(json.dumps(documents, indent=2, sort_keys=True))
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    for name, document in documents.items():
        path = args.out / f"{name}.schema.json"
        path.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
