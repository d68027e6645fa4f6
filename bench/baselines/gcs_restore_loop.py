"""Baseline for a bulk GCS restore: list the prefix's soft-deleted objects with
google-cloud-storage, then ``restore_blob`` each (its generation, ``ifGenerationMatch=0`` as ours
sends it), one after the other, SDK defaults otherwise.

    python bench/baselines/gcs_restore_loop.py BUCKET PREFIX

Endpoint from ``GCS_ENDPOINT`` (anonymous credentials). Prints
``@@bench@@ {"restored": N, "failed": M}``.
"""

from __future__ import annotations

import json
import os
import sys

from google.api_core.exceptions import GoogleAPICallError
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage


def main() -> None:
    bucket_name, prefix = sys.argv[1:3]
    client = storage.Client(project=os.environ.get("GOOGLE_CLOUD_PROJECT", "bench"),
                            credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
                            client_options={"api_endpoint": os.environ["GCS_ENDPOINT"]})
    bucket = client.bucket(bucket_name)
    listed = [(blob.name, blob.generation)
              for blob in client.list_blobs(bucket_name, prefix=prefix, soft_deleted=True)]
    restored = failed = 0
    for name, generation in listed:
        try:
            bucket.restore_blob(name, generation=generation, if_generation_match=0)
            restored += 1
        except GoogleAPICallError:
            failed += 1
    print("@@bench@@ " + json.dumps({"restored": restored, "failed": failed}), flush=True)


if __name__ == "__main__":
    main()
