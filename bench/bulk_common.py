"""What the bulk sections share: running a contender as a process of its own and timing it
from spawn to exit (our job through ``bench/hosts/bulk_job.py``, the CLIs, the SDK loops), the
emulators' added latency, and the row for a throughput comparison.

Every contender is timed the same way, spawn to exit: a process start, the listing, every
restore and, for ours, the report and the job's completion event. The emulator runs in the
driver (this process), which does nothing else while a contender runs.
"""

from __future__ import annotations

import json
import math
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.core import Row, Target
from bench.stack import PYTHON, ROOT, clean_environ
from emulators._http import RunningEmulator

LATENCY_MS = 20.0  # added to every request the emulators answer (FaultPlan.latency_ms)
# The emulators' listen backlog is socketserver's default of 5: the burst of connections 80
# worker threads open at once overflows it, and a dropped SYN costs its sender a 1 s
# retransmission (seen here as one chunk starting a second late). COS accepts them; so does
# an emulator a bench starts (``deeper_backlog``).
BACKLOG = 128
INSTANCES = 10  # RESTORE_BULK_MAX_INSTANCES: the default, as a deployment would leave it
THREADS = 8  # RESTORE_BULK_WORKER_THREADS: the default
BULK_HOST = ROOT / "bench" / "hosts" / "bulk_job.py"
MARKER = "@@bench@@ "
TIMEOUT = 900.0


@dataclass
class Timed:
    """One contender's run: wall seconds from spawn to exit, and what it printed."""

    seconds: float
    returncode: int
    stdout: str
    stderr: str

    def marker(self) -> dict[str, Any]:
        for line in reversed(self.stdout.splitlines()):
            if line.startswith(MARKER):
                result: dict[str, Any] = json.loads(line[len(MARKER):])
                return result
        raise RuntimeError(f"no result line (exit {self.returncode}); "
                           f"stderr: {self.stderr[-1500:]}")


def deeper_backlog(running: RunningEmulator) -> None:
    """Raise the listening socket's backlog (``listen`` again on a listening socket updates
    it): see BACKLOG."""
    running.server.socket.listen(BACKLOG)


def child_env(extra: dict[str, str]) -> dict[str, str]:
    """The driver's environment without the developer's settings or proxies, plus ``extra``."""
    env = {k: v for k, v in clean_environ().items() if "proxy" not in k.lower()}
    return {**env, "PYTHONPATH": str(ROOT), **extra}


def timed(argv: list[str], env: dict[str, str], timeout: float = TIMEOUT) -> Timed:
    started = time.perf_counter()
    done = subprocess.run(  # noqa: S603 - our own fixed argv
        argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    return Timed(time.perf_counter() - started, done.returncode, done.stdout, done.stderr)


def run_our_job(env: dict[str, str], job: dict[str, Any]) -> tuple[Timed, dict[str, Any]]:
    """Our bulk job in a process of its own (``bench/hosts/bulk_job.py``); its result line."""
    with tempfile.TemporaryDirectory(prefix="bench-bulk-") as tmp:
        spec = Path(tmp) / "spec.json"
        spec.write_text(json.dumps({"env": env, "job": job}))
        run = timed([PYTHON, str(BULK_HOST), str(spec)], child_env({}))
    if run.returncode != 0:
        raise RuntimeError(f"our bulk job exited {run.returncode}: {run.stderr[-1500:]}")
    return run, run.marker()


def chunk_size(objects: int, instances: int = INSTANCES) -> int:
    """One chunk per instance (500 for 5,000 objects over 10: the default chunk size)."""
    return max(1, min(1000, math.ceil(objects / instances)))


def throughput_row(section: str, name: str, objects: int, ours: float, baseline: float,
                   detail: dict[str, Any]) -> Row:
    """Objects per second, ours against a baseline (both spawn to exit); higher is better."""
    return Row(section, name, objects / ours, objects / baseline, "obj/s",
               Target.ratio_at_least(1.0), samples=1,
               detail={"objects": objects, "ours_seconds": round(ours, 3),
                       "baseline_seconds": round(baseline, 3), **detail})
