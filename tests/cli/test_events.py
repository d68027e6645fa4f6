"""The file sink and ``restorefn events``: summary lines, --json, --follow, --until-terminal."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from shared.cli import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_OK, EXIT_WAIT_TIMEOUT, main
from shared.config import ConfigurationError, Settings
from shared.events import build_event
from shared.outcome import ErrorCode, ErrorInfo, Outcome, OutcomeStatus
from shared.sinks import SinkError, sink_from_settings
from shared.sinks.file import FileSink
from tests.conftest import COS_BUCKET, COS_REGION


def outcome(request_id: str, status: OutcomeStatus, key: str = "logs/a.gz",
            error: ErrorInfo | None = None) -> Outcome:
    return Outcome(status=status, request_id=request_id, provider="cos", bucket=COS_BUCKET,
                   key=key, region=COS_REGION, error=error)


def publish(path: Path, *outcomes: Outcome) -> None:
    sink = FileSink(path)
    for item in outcomes:
        sink.publish(build_event(item))


# -- the sink ------------------------------------------------------------------------------------
def test_file_sink_appends_one_cloudevent_per_line(tmp_path):
    path = tmp_path / "events.jsonl"
    publish(path, outcome("r-1", OutcomeStatus.INITIATED), outcome("r-1", OutcomeStatus.COMPLETED))
    lines = path.read_text().splitlines()
    assert [json.loads(line)["type"].rsplit(".", 1)[-1] for line in lines] == [
        "initiated", "completed"]
    assert all(json.loads(line)["specversion"] == "1.0" for line in lines)


def test_file_sink_from_settings(tmp_path):
    path = tmp_path / "e.jsonl"
    sink = sink_from_settings(Settings.from_env(
        {"RESTORE_EVENT_SINK": "file", "RESTORE_EVENT_FILE": str(path)}))
    assert isinstance(sink, FileSink)
    assert sink.path == path
    with pytest.raises(ConfigurationError, match="RESTORE_EVENT_FILE"):
        sink_from_settings(Settings.from_env({"RESTORE_EVENT_SINK": "file"}))


def test_file_sink_failure_is_a_sink_error(tmp_path):
    sink = FileSink(tmp_path / "no-such-dir" / "e.jsonl")
    with pytest.raises(SinkError, match="could not append"):
        sink.publish(build_event(outcome("r-1", OutcomeStatus.INITIATED)))


def test_restore_publishes_to_the_file_sink_and_events_prints_it(
    cli, cos_emulator, cos_credentials, monkeypatch, tmp_path
):
    path = tmp_path / "events.jsonl"
    monkeypatch.setenv("RESTORE_EVENT_SINK", "file")
    monkeypatch.setenv("RESTORE_EVENT_FILE", str(path))
    cos_emulator.emulator.put_object(COS_BUCKET, "logs/a.gz", b"x", "ARCHIVE")
    restored = cli("--cos-endpoint", cos_emulator.url, "restore", "--provider", "cos",
                   "--bucket", COS_BUCKET, "--region", COS_REGION, "--key", "logs/a.gz",
                   "--days", "1", "--request-id", "ev-1")
    assert restored.code == 0
    assert restored.err == ""  # the event went to the file, not to stderr
    [line] = path.read_text().splitlines()

    shown = cli("events", str(path))
    assert shown.code == EXIT_OK
    [summary] = shown.out.splitlines()
    time, status, where, request_id = summary.split()
    assert (status, where, request_id) == ("initiated", f"{COS_BUCKET}/logs/a.gz", "ev-1")
    assert time == json.loads(line)["time"]

    as_json = cli("--json", "events", str(path))
    assert as_json.doc() == json.loads(line)


def test_events_skips_lines_that_are_not_events(cli, tmp_path):
    path = tmp_path / "e.jsonl"
    publish(path, outcome("r-1", OutcomeStatus.INITIATED))
    with path.open("a") as handle:
        handle.write("not json\n\n[1, 2]\n")
    publish(path, outcome("r-2", OutcomeStatus.INITIATED))
    run = cli("events", str(path))
    assert run.code == 0
    assert [line.split()[-1] for line in run.out.splitlines()] == ["r-1", "r-2"]
    assert f"{path}:2: not a JSON event; skipped" in run.err
    assert f"{path}:4: not a JSON event; skipped" in run.err


def test_failed_events_show_their_error_code(cli, tmp_path):
    path = tmp_path / "e.jsonl"
    error = ErrorInfo(code=ErrorCode.NOT_FOUND, message="gone")
    publish(path, outcome("r-9", OutcomeStatus.FAILED, error=error))
    run = cli("events", str(path))
    assert run.out.split()[1:] == ["failed", f"{COS_BUCKET}/logs/a.gz", "r-9", "error=not_found"]


def test_until_terminal_stops_after_that_requests_terminal_event(cli, tmp_path):
    path = tmp_path / "e.jsonl"
    publish(path,
            outcome("mine", OutcomeStatus.INITIATED),
            outcome("other", OutcomeStatus.COMPLETED),  # someone else's terminal: keep going
            outcome("mine", OutcomeStatus.COMPLETED),
            outcome("later", OutcomeStatus.INITIATED))
    run = cli("events", "--until-terminal", "mine", str(path))
    assert run.code == EXIT_OK
    assert [line.split()[-1] for line in run.out.splitlines()] == ["mine", "other", "mine"]


def test_until_terminal_exit_code_follows_the_terminal_outcome(cli, tmp_path):
    path = tmp_path / "e.jsonl"
    error = ErrorInfo(code=ErrorCode.NOT_FOUND, message="gone")
    publish(path, outcome("bad", OutcomeStatus.FAILED, error=error))
    assert cli("events", "--until-terminal", "bad", str(path)).code == EXIT_FAILED


def test_until_terminal_without_one_exits_3(cli, tmp_path):
    path = tmp_path / "e.jsonl"
    publish(path, outcome("slow", OutcomeStatus.INITIATED))
    run = cli("events", "--until-terminal", "slow", str(path))
    assert run.code == EXIT_WAIT_TIMEOUT
    assert "no terminal event for request slow" in run.err


def test_missing_file_without_follow_exits_2(cli, tmp_path):
    run = cli("events", str(tmp_path / "nope.jsonl"))
    assert run.code == EXIT_BAD_INPUT
    assert "no such file" in run.err


def test_follow_reads_as_the_file_grows(capsys, tmp_path):
    """The follower starts before the file exists; events (and half a line) arrive later."""
    path = tmp_path / "later.jsonl"
    result: list[int] = []
    follower = threading.Thread(
        target=lambda: result.append(main(["events", "--follow", "--until-terminal", "f-1",
                                           str(path)])),
        daemon=True,
    )
    follower.start()
    publish(path, outcome("f-1", OutcomeStatus.INITIATED))
    completed = build_event(outcome("f-1", OutcomeStatus.COMPLETED)).to_json() + "\n"
    with path.open("a") as handle:  # a line written in two pieces is read as one
        handle.write(completed[:40])
        handle.flush()
        handle.write(completed[40:])
    follower.join(timeout=10)
    assert not follower.is_alive()
    assert result == [EXIT_OK]
    statuses = [line.split()[1] for line in capsys.readouterr().out.splitlines()]
    assert statuses == ["initiated", "completed"]


def test_follow_stops_on_ctrl_c_with_0(cli, tmp_path, monkeypatch):
    path = tmp_path / "e.jsonl"
    publish(path, outcome("r-1", OutcomeStatus.INITIATED))

    def interrupt(seconds: float) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr("shared.cli.time.sleep", interrupt)
    run = cli("events", "--follow", str(path))
    assert run.code == EXIT_OK
    assert run.out.split()[1] == "initiated"
