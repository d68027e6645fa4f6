"""``python -m emulators.cloudtasks --port N``: run the Cloud Tasks v2 REST emulator standalone.

Create tasks with ``POST /v2/projects/P/locations/L/queues/Q/tasks`` (the scheduler in
``shared.schedulers.cloudtasks`` does, with ``CLOUD_TASKS_EMULATOR_HOST=127.0.0.1:N``). Queues
come from ``--queue`` (repeatable), the REST CreateQueue call or ``POST /_emulator/queues``.

Due tasks are only dispatched when something asks: ``POST /_emulator/deliver``, or
``--dispatch-interval SECONDS`` for a background dispatcher that delivers on its own. Steer it
through ``/_emulator/`` (``tasks``, ``deliver``, ``attempts``, ``queues``, ``dispatcher``,
``clock``, ``faults``, ``requests``).
"""

from __future__ import annotations

import argparse

from emulators._http import add_fault_argument, serve_forever_cli
from emulators.cloudtasks.server import CloudTasksEmulator, RetryConfig


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m emulators.cloudtasks", description=__doc__)
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port (default)")
    parser.add_argument(
        "--clock-factor", type=float, default=1.0, help="emulated seconds per real second"
    )
    parser.add_argument(
        "--clock-epoch", type=float, default=None, metavar="UNIX_SECONDS",
        help="anchor the accelerated clock: it reads EPOCH + (now - EPOCH) * factor, like every "
        "other clock built with the same epoch and factor (default: starts at the real time)",
    )
    parser.add_argument(
        "--queue",
        action="append",
        default=[],
        metavar="projects/P/locations/L/queues/Q",
        help="create a queue (repeatable)",
    )
    parser.add_argument(
        "--dispatch-interval",
        type=float,
        default=None,
        metavar="SECONDS",
        help="deliver due tasks in the background every SECONDS real seconds (default: off, "
        "delivery only through POST /_emulator/deliver)",
    )
    parser.add_argument(
        "--dispatch-timeout", type=float, default=10.0, help="real seconds to wait for a worker"
    )
    parser.add_argument("--max-attempts", type=int, default=100, help="-1: unlimited")
    parser.add_argument("--min-backoff", type=float, default=0.1, help="emulated seconds")
    parser.add_argument("--max-backoff", type=float, default=3600.0, help="emulated seconds")
    parser.add_argument("--max-doublings", type=int, default=16)
    add_fault_argument(parser)
    args = parser.parse_args(argv)
    if args.dispatch_interval is not None and args.dispatch_interval <= 0:
        parser.error("--dispatch-interval must be positive")
    try:
        retry = RetryConfig(
            max_attempts=args.max_attempts,
            min_backoff=args.min_backoff,
            max_backoff=args.max_backoff,
            max_doublings=args.max_doublings,
        )
        emulator = CloudTasksEmulator(
            args.queue,
            clock_factor=args.clock_factor,
            clock_epoch=args.clock_epoch,
            retry_config=retry,
            dispatch_timeout=args.dispatch_timeout,
            dispatch_interval=args.dispatch_interval,
        )
    except ValueError as exc:
        parser.error(str(exc))
    try:
        serve_forever_cli(emulator, args.port, "Cloud Tasks", args.faults)
    finally:
        emulator.close()


if __name__ == "__main__":
    main()
