"""Baseline for ``restore_http``: a functions-framework HTTP function that restores one
soft-deleted GCS object (``objects.restore`` with the generation given, ``ifGenerationMatch=0``
as ours sends it) and answers JSON."""

from __future__ import annotations

import json
import os
from typing import Any

import functions_framework
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage

_client: Any = None


def _storage() -> Any:
    global _client
    if _client is None:
        _client = storage.Client(
            project=os.environ["GOOGLE_CLOUD_PROJECT"],
            credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
            client_options={"api_endpoint": os.environ["GCS_ENDPOINT"]},
        )
    return _client


@functions_framework.http
def restore(request: Any) -> tuple[str, int, dict[str, str]]:
    body = json.loads(request.get_data())
    blob = _storage().bucket(body["bucket"]).restore_blob(
        body["object"], generation=int(body["generation"]), if_generation_match=0,
        timeout=10, retry=None,
    )
    answer = {"status": "completed", "generation": blob.generation}
    return json.dumps(answer), 200, {"Content-Type": "application/json"}
