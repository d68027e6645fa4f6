"""``python -m emulators.cos --port N``: run the COS emulator standalone.

Point cos-python-sdk-v5 at it with ``CosConfig(..., Scheme="http", IP="127.0.0.1", Port=N)``, or
coscmd with ``http_proxy=http://127.0.0.1:N`` and ``schema = http``. Steer it through
``/_emulator/`` (``objects``, ``restore-state``, ``restore-requests``, ``settings``, ``clock``,
``faults``, ``requests``, ``notifications``).

``--notify-url URL`` POSTs a COS-trigger-shaped event (``cos:ObjectRestore:Post``, then
``cos:ObjectRestore:Completed`` once the emulated restore finishes) to URL, checked every
``--notify-interval`` seconds.
"""

from __future__ import annotations

import argparse

from emulators._http import add_fault_argument, serve_forever_cli
from emulators.cos.server import DEFAULT_SECRET_ID, DEFAULT_SECRET_KEY, CosEmulator


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m emulators.cos", description=__doc__)
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port (default)")
    parser.add_argument(
        "--clock-factor", type=float, default=1.0, help="emulated seconds per real second"
    )
    parser.add_argument(
        "--rate-limit", type=float, default=100.0, help="restore POSTs per second (0: unlimited)"
    )
    parser.add_argument("--secret-id", default=DEFAULT_SECRET_ID)
    parser.add_argument("--secret-key", default=DEFAULT_SECRET_KEY)
    parser.add_argument(
        "--no-verify-signatures",
        action="store_true",
        help="accept unsigned or badly signed requests",
    )
    parser.add_argument(
        "--notify-url",
        default=None,
        help="POST restore notifications (COS-trigger event JSON) to this URL",
    )
    parser.add_argument(
        "--notify-interval",
        type=float,
        default=1.0,
        help="real seconds between checks for due notifications (default 1)",
    )
    add_fault_argument(parser)
    args = parser.parse_args(argv)
    if args.notify_interval <= 0:
        parser.error("--notify-interval must be positive")
    emulator = CosEmulator(
        credentials={args.secret_id: args.secret_key},
        clock_factor=args.clock_factor,
        restore_rate_limit=args.rate_limit,
        verify_signatures=not args.no_verify_signatures,
        notify_url=args.notify_url,
    )
    if args.notify_url:
        emulator.start_notifier(args.notify_interval)
    try:
        serve_forever_cli(emulator, args.port, "COS", args.faults)
    finally:
        emulator.stop_notifier()


if __name__ == "__main__":
    main()
