"""The Tencent half of ``make demo``: ``index.main_handler`` driven with real-shaped SCF events.

The handler runs in this process, configured through environment variables exactly as a
deployment is (``serverless.yml``), against the same emulators and event collector as the Google
functions. The COS emulator delivers its ``cos:ObjectRestore:Completed`` notification to the
handler when the emulated restore finishes, which is how the COS trigger reports completion.
"""

from __future__ import annotations

import json
import os
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from scripts.local import ROOT, LocalStack, function_environment
from shared import auth

HANDLER_DIR = Path(ROOT) / "functions" / "tencent"


def load_handler(stack: LocalStack) -> Any:
    """Import index.py as SCF does, with the environment a deployment would set."""
    env = function_environment(stack.cos.url, stack.gcs.url, events_url=stack.events_url,
                               secret=stack.secret)
    os.environ.update(env)
    if str(HANDLER_DIR) not in sys.path:
        sys.path.insert(0, str(HANDLER_DIR))
    import index

    index.reset_service()
    return index


def api_gateway_event(stack: LocalStack, payload: dict[str, Any]) -> dict[str, Any]:
    body = json.dumps(payload)
    headers = {"content-type": "application/json",
               **{k.lower(): v for k, v in auth.sign(stack.secret, body.encode()).items()}}
    request_id = str(uuid.uuid4())
    return {
        "requestContext": {"serviceId": "service-demo", "path": "/restore", "httpMethod": "POST",
                           "requestId": request_id, "identity": {}, "sourceIp": "127.0.0.1",
                           "stage": "release"},
        "headers": headers, "body": body, "httpMethod": "POST", "path": "/restore",
        "pathParameters": {}, "queryString": {}, "queryStringParameters": {},
        "headerParameters": {}, "stageVariables": {"stage": "release"},
    }


def cmq_event(payload: dict[str, Any], msg_id: str) -> dict[str, Any]:
    return {"Records": [{"CMQ": {
        "type": "topic", "topicOwner": 1250000000, "topicName": "restore-requests",
        "subscriptionName": "restorefn", "publishTime": "2026-11-20T10:00:00.000Z",
        "msgId": msg_id, "requestId": msg_id, "msgBody": json.dumps(payload), "msgTag": [],
    }}]}


def attach_cos_trigger(stack: LocalStack, handler: Any) -> list[dict[str, Any]]:
    """Route the COS emulator's restore notifications to the handler (the COS trigger).

    Attach before the restore is requested: the emulator queues notifications for the restores
    it accepts while a target is configured.
    """
    delivered: list[dict[str, Any]] = []

    def to_handler(event: dict[str, Any]) -> None:
        handler.main_handler(event, {"request_id": "cos-trigger"})
        delivered.append(event)

    stack.cos_emulator.restore_notify = to_handler
    return delivered


def wait_for_cos_trigger(stack: LocalStack, delivered: list[dict[str, Any]],
                         timeout: float) -> list[str]:
    """Deliver due notifications until a Completed went to the handler; the event names."""
    deadline = time.monotonic() + timeout
    names: list[str] = []
    while time.monotonic() < deadline:
        stack.cos_emulator.deliver_due_notifications()
        names = [r["event"]["eventName"] for e in delivered for r in e["Records"]]
        if "cos:ObjectRestore:Completed" in names:
            break
        time.sleep(0.2)
    return names
