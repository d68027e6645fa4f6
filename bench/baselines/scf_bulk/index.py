"""Baseline for one bulk chunk on SCF: ``main_handler`` takes the same CMQ record our function
takes (its body a chunk message, ``restorefn.bulk.chunk.v1``) and restores each of its objects
with ``restore_object`` through cos-python-sdk-v5, one after the other: no pacing, no report,
no events."""

from __future__ import annotations

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


def main_handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    count = 0
    for record in event["Records"]:
        chunk = json.loads(record["CMQ"]["msgBody"])
        job = chunk["job"]
        client = _cos(job["region"])
        restore = {"Days": job["days"], "CASJobParameters": {"Tier": job["tier"]}}
        for item in chunk["items"]:
            client.restore_object(Bucket=job["bucket"], Key=item["key"], RestoreRequest=restore)
            count += 1
    return {"restored": count}
