"""Cold start: the SCF entry module, imported as SCF imports it, loads no heavy dependency."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys

from tests.conftest import COS_BUCKET, GCS_BUCKET
from tests.tencent.conftest import (
    FUNCTION_DIR,
    ROOT,
    golden,
    scf_env_vars,
    signed,
    soft_delete,
)

HEAVY = ("google.cloud.storage", "functions_framework", "flask", "qcloud_cos", "grpc",
         "google.cloud.pubsub_v1", "tencentcloud")

# After importing, also answer an API Gateway GET and an unrecognised event: neither needs a
# provider, so neither may load one.
CODE = f"""
import json, sys
sys.path.insert(0, {str(FUNCTION_DIR)!r})
import index
assert callable(index.main_handler)
after_import = [n for n in {HEAVY!r} if n in sys.modules]
answer = index.main_handler({{"httpMethod": "GET", "requestContext": {{}}, "headers": {{}}}}, {{}})
index.main_handler({{"clslogs": {{"data": "x"}}}}, {{}})
after_calls = [n for n in {HEAVY!r} if n in sys.modules]
print(json.dumps({{"import": after_import, "calls": after_calls, "status": answer["statusCode"]}}))
"""


def test_importing_and_invoking_index_loads_no_heavy_module():
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("RESTORE_", "COS_", "GCS_", "TDMQ_", "TENCENTCLOUD_"))}
    out = subprocess.run(
        [sys.executable, "-c", CODE], cwd=ROOT, env=env, capture_output=True, text=True,
        timeout=60, check=True,
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result == {"import": [], "calls": [], "status": 405}


# A whole restore, as the cold-start bench makes it: the golden API Gateway POST restores an
# archived COS object and the golden base64 POST a soft-deleted GCS object, in a fresh process.
# Neither may load pydantic (tens of milliseconds of import and model building): a valid request
# is validated by the fast path and settings, outcomes and events are records (shared.records).
RESTORE_CODE = """
import json, sys
sys.path.insert(0, sys.argv[1])
import index
answers = [index.main_handler(event, {"request_id": "cold"}) for event in json.loads(sys.argv[2])]
loaded = sorted(m for m in sys.modules if m == "pydantic" or m.startswith("pydantic."))
print(json.dumps({"statuses": [a["statusCode"] for a in answers], "pydantic": loaded}))
"""


def test_a_first_restore_of_each_provider_loads_no_pydantic(cos_emulator, gcs_emulator):
    cos_event = golden("scf_apigw_post.json")
    cos_emulator.emulator.put_object(COS_BUCKET, "golden/apigw.bin", b"x", "ARCHIVE")
    signed(cos_event, cos_event["body"].encode())
    gcs_event = golden("scf_apigw_post_base64.json")
    raw = base64.b64decode(gcs_event["body"])
    name = json.loads(raw)["object"]
    deleted = soft_delete(gcs_emulator, name)
    signed(gcs_event, raw)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("RESTORE_", "COS_", "GCS_", "TDMQ_", "TENCENTCLOUD_"))}
    env.update(scf_env_vars(cos_emulator.url, gcs_emulator.url))
    out = subprocess.run(
        [sys.executable, "-c", RESTORE_CODE, str(FUNCTION_DIR), json.dumps([cos_event, gcs_event])],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=True,
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result == {"statuses": [202, 200], "pydantic": []}
    assert [e.method for e in cos_emulator.log.entries()] == ["HEAD", "POST"]
    [live] = [g for g in gcs_emulator.emulator.generations(GCS_BUCKET, name)
              if g["state"] == "live"]
    assert int(live["generation"]) != deleted
