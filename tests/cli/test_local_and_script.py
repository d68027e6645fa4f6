"""--local (the URLs `make serve` writes) and the installed console script."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from emulators.cos import DEFAULT_SECRET_ID, DEFAULT_SECRET_KEY
from shared.cli import EXIT_CONFIG, EXIT_OK
from tests.conftest import COS_BUCKET, COS_REGION, GCS_BUCKET

SCRIPT = Path(sys.executable).with_name("restorefn")


def write_urls(directory: Path, cos_url: str, gcs_url: str) -> None:
    urls = {"webhook": "http://127.0.0.1:1/", "queue_function": "http://127.0.0.1:2/",
            "cos_emulator": cos_url, "gcs_emulator": gcs_url, "events": "http://127.0.0.1:3/"}
    (directory / "urls.json").write_text(json.dumps(urls, indent=2))


def test_local_uses_the_emulators_and_their_credentials(cli, cos_emulator, gcs_emulator,
                                                        tmp_path):
    # No COS credentials and no endpoints in the environment: --local supplies them.
    write_urls(tmp_path, cos_emulator.url, gcs_emulator.url)
    cos_emulator.emulator.put_object(COS_BUCKET, "local.bin", b"x", "ARCHIVE")
    run = cli("--json", "--local-state", str(tmp_path), "restore", "--provider", "cos",
              "--bucket", COS_BUCKET, "--region", COS_REGION, "--key", "local.bin",
              "--days", "1")
    assert run.code == EXIT_OK
    assert run.doc()["status"] == "initiated"
    [post] = [e for e in cos_emulator.log.entries() if e.method == "POST"]
    assert post.status == 202  # signed with the emulator's default keys, accepted

    generation = gcs_emulator.emulator.put_object(GCS_BUCKET, "l.txt", b"x")
    status = cli("--json", "--local", "--local-state", str(tmp_path), "status",
                 "--provider", "gcs", "--bucket", GCS_BUCKET, "--object", "l.txt")
    assert (status.code, status.doc()["live_generation"]) == (EXIT_OK, generation)


def test_local_without_make_serve_is_a_configuration_error(cli, tmp_path):
    run = cli("--local-state", str(tmp_path), "status", "--provider", "gcs",
              "--bucket", GCS_BUCKET, "--object", "x")
    assert run.code == EXIT_CONFIG
    assert "make serve" in run.err
    assert str(tmp_path / "urls.json") in run.err


def test_local_with_a_broken_urls_file(cli, tmp_path):
    (tmp_path / "urls.json").write_text(json.dumps({"webhook": "http://x"}))
    run = cli("--local-state", str(tmp_path), "status", "--provider", "gcs",
              "--bucket", GCS_BUCKET, "--object", "x")
    assert run.code == EXIT_CONFIG
    assert "cos_emulator" in run.err


def test_endpoint_flags_override_local(cli, cos_emulator, gcs_emulator, tmp_path):
    write_urls(tmp_path, "http://127.0.0.1:9", "http://127.0.0.1:9")  # nothing listens there
    generation = gcs_emulator.emulator.put_object(GCS_BUCKET, "o.txt", b"x")
    run = cli("--json", "--local-state", str(tmp_path), "--gcs-endpoint", gcs_emulator.url,
              "status", "--provider", "gcs", "--bucket", GCS_BUCKET, "--object", "o.txt")
    assert (run.code, run.doc()["live_generation"]) == (EXIT_OK, generation)


def test_console_script_runs_a_restore(cos_emulator, tmp_path):
    assert SCRIPT.is_file(), "run .venv/bin/pip install -e '.[dev]' to install the script"
    cos_emulator.emulator.put_object(COS_BUCKET, "script.bin", b"x", "ARCHIVE")
    env = {
        name: value for name, value in os.environ.items()
        if not name.startswith(("RESTORE_", "COS_", "TENCENTCLOUD_"))
    }
    env.update(COS_SECRET_ID=DEFAULT_SECRET_ID, COS_SECRET_KEY=DEFAULT_SECRET_KEY,
               RESTORE_EVENT_SINK="file", RESTORE_EVENT_FILE=str(tmp_path / "e.jsonl"))
    done = subprocess.run(
        [str(SCRIPT), "--json", "--cos-endpoint", cos_emulator.url, "restore",
         "--provider", "cos", "--bucket", COS_BUCKET, "--region", COS_REGION,
         "--key", "script.bin", "--days", "1", "--request-id", "script-1"],
        capture_output=True, text=True, env=env, timeout=60, check=False,
    )
    assert done.returncode == 0, done.stderr
    outcome = json.loads(done.stdout)
    assert (outcome["status"], outcome["request_id"]) == ("initiated", "script-1")
    followed = subprocess.run(
        [str(SCRIPT), "events", "--until-terminal", "script-1", str(tmp_path / "e.jsonl")],
        capture_output=True, text=True, env=env, timeout=60, check=False,
    )
    assert followed.returncode == 3  # initiated only: no terminal event yet
    assert followed.stdout.split()[1:] == ["initiated", f"{COS_BUCKET}/script.bin", "script-1"]


def test_console_script_usage_error_exits_2():
    done = subprocess.run([str(SCRIPT), "restore", "--days", "x"], capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 2
    assert "invalid int value" in done.stderr
