"""Run the GCS emulator standalone: ``python -m emulators.gcs --port 9023``.

Point google-cloud-storage at it with ``STORAGE_EMULATOR_HOST=http://127.0.0.1:9023`` or
``client_options={"api_endpoint": "http://127.0.0.1:9023"}``; steer it via ``/_emulator/``.
"""

from __future__ import annotations

import argparse

from .._http import add_fault_argument, serve_forever_cli
from .server import GcsEmulator


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m emulators.gcs", description=__doc__)
    parser.add_argument("--port", type=int, default=0, help="port to bind on 127.0.0.1 (0: any)")
    parser.add_argument(
        "--clock-factor", type=float, default=1.0, help="emulated seconds per real second"
    )
    parser.add_argument(
        "--drop-soft-deleted-on-restore",
        action="store_true",
        help="remove the soft-deleted generation once it is restored (default: keep it)",
    )
    parser.add_argument(
        "--bulk-restore-seconds",
        type=float,
        default=1.0,
        help="emulated seconds a bulkRestore operation takes before it is done",
    )
    parser.add_argument("--project", default="emulator-project")
    add_fault_argument(parser)
    args = parser.parse_args(argv)
    emulator = GcsEmulator(
        clock_factor=args.clock_factor,
        keep_soft_deleted_on_restore=not args.drop_soft_deleted_on_restore,
        project=args.project,
        bulk_restore_seconds=args.bulk_restore_seconds,
    )
    serve_forever_cli(emulator, args.port, "gcs", args.faults)


if __name__ == "__main__":
    main()
