"""Baseline for the SCF ``main_handler``: restores COS objects named by an API Gateway POST body
or by CMQ records (a request or ``{"requests": [...]}`` each) with HEAD then POST ?restore
through cos-python-sdk-v5, and answers like an integration response."""

from __future__ import annotations

import base64
import json
import os
from typing import Any
from urllib.parse import urlsplit

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


def main_handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    if "Records" in event:
        count = 0
        for record in event["Records"]:
            payload = json.loads(record["CMQ"]["msgBody"])
            for request in payload.get("requests", [payload]):
                restore_one(request)
                count += 1
        return {"restored": count}
    body = event["body"]
    if event.get("isBase64Encoded"):
        body = base64.b64decode(body).decode()
    restore_one(json.loads(body))
    return {"isBase64Encoded": False, "statusCode": 202,
            "headers": {"Content-Type": "application/json"},
            "body": json.dumps({"status": "initiated"})}
