"""The webhook's OpenAPI document: committed as generated, a valid OpenAPI 3.1 document, and
true to the code (every status the webhook can answer is documented; the examples are requests
the code accepts)."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema_rs
import pytest
import schemathesis

from shared import webhook
from shared.bulk.service import parse_job
from shared.schema_export import OPENAPI_FILE, openapi, render
from shared.validation import parse_request, split_batch

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def document():
    return openapi()


def test_the_committed_document_is_the_generated_one(document):
    committed = (ROOT / "schemas" / OPENAPI_FILE).read_text(encoding="utf-8")
    assert committed == render(document), "schemas/openapi.json is stale: run make schema"


def test_it_loads_as_openapi_3_1_with_every_operation(document):
    schema = schemathesis.openapi.from_dict(document)
    operations = {(op.ok().method.upper(), op.ok().path) for op in schema.get_all_operations()}
    assert operations == {("POST", "/"), ("GET", "/"), ("GET", "/status"), ("POST", "/status")}
    assert document["openapi"] == "3.1.0"


def test_every_status_the_webhook_gives_a_restore_is_documented(document):
    documented = {int(code) for code in document["paths"]["/"]["post"]["responses"]}
    webhook_gives = {*webhook._STATUS_FOR_OUTCOME.values(), *webhook._STATUS_FOR_ERROR.values(),
                     400, 401, 413, 415, 503, 207}
    assert webhook_gives <= documented, webhook_gives - documented


def test_every_schema_reference_resolves(document):
    text = json.dumps(document)
    names = set(document["components"]["schemas"])
    prefix = '"#/components/schemas/'
    referenced = {part.split('"', 1)[0] for part in text.split(prefix)[1:]}
    assert referenced <= names, referenced - names


def test_the_examples_are_requests_the_code_accepts_and_the_schema_describes(document):
    operation = document["paths"]["/"]["post"]["requestBody"]["content"]["application/json"]
    # The document as a JSON Schema resource, so the body schema's references resolve in it.
    validator = jsonschema_rs.validator_for({**operation["schema"], **{
        "components": document["components"]}})
    for name, example in operation["examples"].items():
        value = example["value"]
        assert validator.is_valid(value), name
        if value.get("kind") == "restorefn.bulk.v1":
            parse_job(value)
        elif (items := split_batch(value)) is not None:
            for item in items:
                parse_request(item)
        else:
            parse_request(value)
