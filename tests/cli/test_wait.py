"""wait and restore --wait: polling until completed or failed, the timeout, progress, backoff."""

from __future__ import annotations

import io
from typing import Any

import pytest

from emulators._http import FaultPlan
from shared.cli import (
    EXIT_BAD_INPUT,
    EXIT_FAILED,
    EXIT_OK,
    EXIT_RETRYABLE,
    EXIT_WAIT_TIMEOUT,
    Progress,
    wait_for,
)
from shared.outcome import ErrorCode, ErrorInfo, Outcome, OutcomeStatus
from tests.conftest import COS_BUCKET, COS_REGION, GCS_BUCKET

pytestmark = pytest.mark.usefixtures("cos_credentials")


def cos_flags(key: str, *extra: str) -> list[str]:
    return ["--provider", "cos", "--bucket", COS_BUCKET, "--region", COS_REGION, "--key", key,
            *extra]


def test_restore_wait_reaches_completed(cli, fast_cos):
    fast_cos.emulator.put_object(COS_BUCKET, "fast.bin", b"x", "ARCHIVE")
    run = cli("--json", "--cos-endpoint", fast_cos.url, "restore",
              *cos_flags("fast.bin", "--days", "2", "--tier", "Expedited", "--request-id", "w-1"),
              "--wait", "--interval", "0.01")
    assert run.code == EXIT_OK
    accepted, final = run.docs()
    assert accepted["status"] == "initiated"
    assert final["status"] == "completed"
    assert final["request_id"] == "w-1"  # the same request, followed to its end
    assert final["expiry_time"]
    assert fast_cos.emulator.restore_state(COS_BUCKET, "fast.bin")["status"] == "readable"


def test_wait_alone_polls_an_earlier_restore_and_needs_no_days(cli, fast_cos):
    fast_cos.emulator.put_object(COS_BUCKET, "later.bin", b"x", "ARCHIVE")
    base = ["--cos-endpoint", fast_cos.url]
    assert cli(*base, "restore", *cos_flags("later.bin", "--days", "1", "--tier",
                                            "Expedited")).code == 0
    run = cli(*base, "wait", *cos_flags("later.bin"), "--interval", "0.01")
    assert run.code == EXIT_OK
    assert run.out.startswith(f"completed  cos {COS_BUCKET}/later.bin")
    assert "days:" not in run.out  # the placeholder days never shows
    assert "expiry_time:" in run.out


def test_wait_timeout_exits_3_while_still_in_progress(cli, cos_emulator):
    cos_emulator.emulator.put_object(COS_BUCKET, "deep.bin", b"x", "DEEP_ARCHIVE")
    run = cli("--json", "--cos-endpoint", cos_emulator.url, "restore",
              *cos_flags("deep.bin", "--days", "1", "--tier", "Bulk"),
              "--wait", "--timeout", "0.5", "--interval", "0.1")
    assert run.code == EXIT_WAIT_TIMEOUT
    accepted, last = run.docs()
    assert accepted["status"] == "initiated"
    assert last["status"] == "in_progress"
    # stderr is not a terminal here: plain progress lines, one per pause.
    progress = [line for line in run.err.splitlines() if "next check in" in line]
    assert progress
    assert progress[0].startswith("restorefn: in_progress; ")


def test_wait_on_a_never_restored_object_fails_with_1(cli, cos_emulator):
    cos_emulator.emulator.put_object(COS_BUCKET, "cold.bin", b"x", "ARCHIVE")
    run = cli("--json", "--cos-endpoint", cos_emulator.url, "wait", *cos_flags("cold.bin"),
              "--timeout", "5")
    assert run.code == EXIT_FAILED
    assert run.doc()["error"]["code"] == "not_restored"
    assert "next check" not in run.err  # decided on the first check, no pause


def test_wait_with_bad_input_exits_2(cli, cos_emulator):
    run = cli("--json", "--cos-endpoint", cos_emulator.url, "wait", "--provider", "cos",
              "--bucket", COS_BUCKET, "--key", "k")
    assert run.code == EXIT_BAD_INPUT
    assert {f["field"] for f in run.doc()["error"]["fields"]} == {"region"}


def test_wait_through_503s_ends_retryable_at_the_timeout(cli, cos_emulator):
    cos_emulator.emulator.put_object(COS_BUCKET, "flaky.bin", b"x", "ARCHIVE")
    cos_emulator.faults.set(FaultPlan(error_rate=1.0))
    run = cli("--json", "--cos-endpoint", cos_emulator.url, "wait", *cos_flags("flaky.bin"),
              "--timeout", "0.3", "--interval", "0.05")
    assert run.code == EXIT_RETRYABLE
    assert run.doc()["error"]["retryable"] is True
    assert "retrying after" in run.err  # kept polling instead of giving up at the first 503


def test_gcs_wait_sees_the_live_object(cli, gcs_emulator):
    gcs_emulator.emulator.put_object(GCS_BUCKET, "here.txt", b"x")
    run = cli("--gcs-endpoint", gcs_emulator.url, "wait", "--provider", "gcs",
              "--bucket", GCS_BUCKET, "--object", "here.txt")
    assert run.code == EXIT_OK
    assert run.out.startswith("completed  gcs")


# -- the loop itself, with a fake clock --------------------------------------------------------
class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


class ScriptedService:
    """check() answers in_progress ``running`` times, then ``final``."""

    def __init__(self, running: int, final: Outcome) -> None:
        self.running = running
        self.final = final
        self.checks = 0

    def check(self, payload: Any, *, publish: bool = True) -> Outcome:
        assert publish is False
        self.checks += 1
        if self.checks <= self.running:
            return outcome(OutcomeStatus.IN_PROGRESS)
        return self.final


def outcome(status: OutcomeStatus, error: ErrorInfo | None = None) -> Outcome:
    return Outcome(status=status, request_id="r-1", provider="cos", bucket=COS_BUCKET,
                   key="k", error=error)


def test_pauses_grow_by_half_up_to_the_maximum():
    clock = FakeClock()
    progress = Progress(io.StringIO(), sleep=clock.sleep, clock=clock)
    service = ScriptedService(6, outcome(OutcomeStatus.COMPLETED))
    [(final, code)] = wait_for(service, [{}], interval=1.0, max_interval=3.0, timeout=3600,
                               progress=progress)  # type: ignore[arg-type]
    assert (final.status, code) == (OutcomeStatus.COMPLETED, EXIT_OK)
    assert clock.sleeps == [1.0, 1.5, 2.25, 3.0, 3.0, 3.0]
    assert service.checks == 7


def test_the_last_pause_is_cut_to_the_timeout():
    clock = FakeClock()
    progress = Progress(io.StringIO(), sleep=clock.sleep, clock=clock)
    service = ScriptedService(1000, outcome(OutcomeStatus.COMPLETED))
    [(final, code)] = wait_for(service, [{}], interval=4.0, max_interval=60.0, timeout=10.0,
                               progress=progress)  # type: ignore[arg-type]
    assert (final.status, code) == (OutcomeStatus.IN_PROGRESS, EXIT_WAIT_TIMEOUT)
    assert clock.sleeps == [4.0, 6.0]  # 4 + 6 = the 10 s timeout; one last check at 10 s
    assert service.checks == 3


def test_a_terminal_failure_stops_the_wait():
    clock = FakeClock()
    progress = Progress(io.StringIO(), sleep=clock.sleep, clock=clock)
    failed = outcome(OutcomeStatus.FAILED, ErrorInfo(code=ErrorCode.NOT_FOUND, message="gone"))
    [(final, code)] = wait_for(ScriptedService(2, failed), [{}], interval=1.0,  # type: ignore[arg-type]
                               max_interval=60.0, timeout=3600, progress=progress)
    assert (final.status, code) == (OutcomeStatus.FAILED, EXIT_FAILED)
    assert clock.sleeps == [1.0, 1.5]


class TtyBuffer(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_tty_progress_is_one_line_rewritten_in_place():
    clock = FakeClock()
    stream = TtyBuffer()
    progress = Progress(stream, sleep=clock.sleep, clock=clock)
    wait_for(ScriptedService(1, outcome(OutcomeStatus.COMPLETED)), [{}], interval=2.0,  # type: ignore[arg-type]
             max_interval=60.0, timeout=3600, progress=progress)
    text = stream.getvalue()
    assert "\n" not in text  # never a new line: the same one is redrawn
    frames = text.split("\r\x1b[K")
    assert frames[1] == "in_progress · 0.0s elapsed · next check in 2.0s"
    assert frames[2] == "in_progress · 0.5s elapsed · next check in 1.5s"  # redrawn while waiting
    assert frames[-1] == ""  # cleared at the end
    assert clock.sleeps == [0.5, 0.5, 0.5, 0.5]
