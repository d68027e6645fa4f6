"""Baseline for ``restore_pubsub``: a functions-framework CloudEvent function that decodes the
Pub/Sub message (a request or ``{"requests": [...]}``) and restores each COS object with HEAD
then POST ?restore through cos-python-sdk-v5."""

from __future__ import annotations

import base64
import json
import os
from typing import Any
from urllib.parse import urlsplit

import functions_framework
from qcloud_cos import CosConfig, CosS3Client

_clients: dict[str, Any] = {}


def _cos(region: str) -> Any:
    if region not in _clients:
        endpoint = urlsplit(os.environ["COS_ENDPOINT"])
        _clients[region] = CosS3Client(CosConfig(
            Region=region, SecretId=os.environ["COS_SECRET_ID"],
            SecretKey=os.environ["COS_SECRET_KEY"], Scheme=endpoint.scheme, IP=endpoint.hostname,
            Port=endpoint.port, Timeout=10,
        ), retry=0)
    return _clients[region]


def restore_one(request: dict[str, Any]) -> None:
    client = _cos(request["region"])
    client.head_object(Bucket=request["bucket"], Key=request["key"])
    client.restore_object(
        Bucket=request["bucket"], Key=request["key"],
        RestoreRequest={"Days": request["days"], "CASJobParameters": {"Tier": request["tier"]}},
    )


@functions_framework.cloud_event
def restore(cloud_event: Any) -> None:
    payload = json.loads(base64.b64decode(cloud_event.data["message"]["data"]))
    for request in payload.get("requests", [payload]):
        restore_one(request)
