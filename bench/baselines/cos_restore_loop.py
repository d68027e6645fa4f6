"""Baseline for a bulk COS restore: the loop anyone would write first. List the prefix with
cos-python-sdk-v5, then ``restore_object`` each key, one after the other, SDK defaults
otherwise (its own retry included).

    python bench/baselines/cos_restore_loop.py BUCKET REGION PREFIX DAYS TIER

Endpoint and credentials from ``COS_ENDPOINT``, ``COS_SECRET_ID``, ``COS_SECRET_KEY``. Prints
``@@bench@@ {"restored": N, "failed": M}``.
"""

from __future__ import annotations

import json
import os
import sys
from urllib.parse import urlsplit

from qcloud_cos import CosConfig, CosS3Client
from qcloud_cos.cos_exception import CosServiceError


def main() -> None:
    bucket, region, prefix, days, tier = sys.argv[1:6]
    endpoint = urlsplit(os.environ["COS_ENDPOINT"])
    client = CosS3Client(CosConfig(
        Region=region, SecretId=os.environ["COS_SECRET_ID"],
        SecretKey=os.environ["COS_SECRET_KEY"], Scheme=endpoint.scheme, IP=endpoint.hostname,
        Port=endpoint.port))
    keys: list[str] = []
    marker = ""
    while True:
        page = client.list_objects(Bucket=bucket, Prefix=prefix, Marker=marker, MaxKeys=1000)
        keys.extend(item["Key"] for item in page.get("Contents", []))
        if page.get("IsTruncated") != "true":
            break
        marker = page.get("NextMarker") or keys[-1]
    restored = failed = 0
    for key in keys:
        try:
            client.restore_object(Bucket=bucket, Key=key, RestoreRequest={
                "Days": int(days), "CASJobParameters": {"Tier": tier}})
            restored += 1
        except CosServiceError:
            failed += 1
    print("@@bench@@ " + json.dumps({"restored": restored, "failed": failed}), flush=True)


if __name__ == "__main__":
    main()
