"""Cold start: the SCF entry module, imported as SCF imports it, loads no heavy dependency."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.tencent.conftest import FUNCTION_DIR, ROOT

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
