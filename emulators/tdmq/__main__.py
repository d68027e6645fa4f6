"""``python -m emulators.tdmq --port N``: run the TDMQ (CMQ edition) emulator standalone.

Point tencentcloud-sdk-python-tdmq at it with ``ClientProfile(httpProfile=HttpProfile(
protocol="http", endpoint="127.0.0.1:N"))`` and the emulator's credentials. Steer it through
``/_emulator/`` (``topics``, ``queues``, ``queues/pop``, ``queues/consumed``, ``topics/push``,
``queues/push``, ``deliver``, ``dead-letters``, ``settings``, ``clock``, ``faults``,
``requests``).
"""

from __future__ import annotations

import argparse

from emulators._http import add_fault_argument, serve_forever_cli
from emulators.tdmq.server import DEFAULT_SECRET_ID, DEFAULT_SECRET_KEY, TdmqEmulator


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m emulators.tdmq", description=__doc__)
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port (default)")
    parser.add_argument(
        "--clock-factor", type=float, default=1.0, help="emulated seconds per real second"
    )
    parser.add_argument(
        "--rate-limit", type=float, default=0.0, help="API requests per second (0: unlimited)"
    )
    parser.add_argument("--secret-id", default=DEFAULT_SECRET_ID)
    parser.add_argument("--secret-key", default=DEFAULT_SECRET_KEY)
    parser.add_argument(
        "--topic", action="append", default=[], metavar="NAME", help="create a topic (repeatable)"
    )
    parser.add_argument(
        "--queue", action="append", default=[], metavar="NAME", help="create a queue (repeatable)"
    )
    parser.add_argument(
        "--no-verify-signatures",
        action="store_true",
        help="accept unsigned or badly signed requests",
    )
    add_fault_argument(parser)
    args = parser.parse_args(argv)
    emulator = TdmqEmulator(
        credentials={args.secret_id: args.secret_key},
        topics=args.topic,
        queues=args.queue,
        clock_factor=args.clock_factor,
        rate_limit=args.rate_limit,
        verify_signatures=not args.no_verify_signatures,
    )
    try:
        serve_forever_cli(emulator, args.port, "TDMQ", args.faults)
    finally:
        emulator.close()


if __name__ == "__main__":
    main()
