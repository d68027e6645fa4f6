"""``python -m bench`` (``make bench``): every registered section, a table on stdout and the same
figures as JSON (``build/bench/results.json`` by default).

Absolute times on a shared machine are noise; each figure is therefore measured against a
baseline in the same run (alternating, interleaved), and targets are ratios or differences,
except memory, which has an absolute budget.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
from pathlib import Path

from bench.core import SECTIONS, BenchContext, Row
from bench.report import document, table, write_json
from bench.stack import ROOT, byte_compile

# Importing a section module registers its sections; add new ones here.
SECTION_MODULES = ("bench.cold_start", "bench.warm", "bench.memory", "bench.bulk_cos",
                   "bench.bulk_gcs")
DEFAULT_OUT = ROOT / "build" / "bench" / "results.json"


def load_sections() -> None:
    for module in SECTION_MODULES:
        importlib.import_module(module)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    load_sections()
    names = sorted(SECTIONS, key=lambda n: SECTIONS[n].order)
    parser = argparse.ArgumentParser(
        prog="python -m bench", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="sections:\n" + "\n".join(f"  {n:<12} {SECTIONS[n].help}" for n in names))
    parser.add_argument("--quick", action="store_true",
                        help="fewer runs and iterations (a smoke run, noisier figures)")
    parser.add_argument("--only", action="append", default=[], metavar="SECTION",
                        help="run only these sections (repeat, or comma-separate)")
    parser.add_argument("--runs", type=int, help="cold-start runs per side (default 21; quick 5)")
    parser.add_argument("--iterations", type=int,
                        help="warm iterations per side (default 300; quick 60)")
    parser.add_argument("--requests", type=int,
                        help="memory: restore requests per instance (default 1000)")
    parser.add_argument("--cos-objects", type=int,
                        help="bulk_cos: archived objects per run (default 5000; quick 300)")
    parser.add_argument("--gcs-objects", type=int,
                        help="bulk_gcs: soft-deleted objects per run (default 1000; quick 100)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT,
                        help=f"JSON output (default {DEFAULT_OUT.relative_to(ROOT)})")
    parser.add_argument("--quiet", action="store_true", help="only the table")
    parser.add_argument("--strict", action="store_true",
                        help="exit 1 when a figure misses its target (default: exit 0 once "
                             "everything was measured)")
    args = parser.parse_args(argv)
    wanted = [n.strip() for item in args.only for n in item.split(",") if n.strip()]
    unknown = sorted(set(wanted) - set(SECTIONS))
    if unknown:
        parser.error(f"unknown section(s) {', '.join(unknown)}; known: {', '.join(names)}")
    args.sections = [n for n in names if not wanted or n in wanted]
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    ctx = BenchContext(quick=args.quick, runs=args.runs, iterations=args.iterations,
                       requests=args.requests, cos_objects=args.cos_objects,
                       gcs_objects=args.gcs_objects, verbose=not args.quiet)
    started_wall, started = time.time(), time.perf_counter()
    byte_compile()
    rows: list[Row] = []
    for name in args.sections:
        if ctx.verbose:
            print(f"[{name}] {SECTIONS[name].help}", flush=True)
        section_started = time.perf_counter()
        rows.extend(SECTIONS[name].run(ctx))
        ctx.log(f"({time.perf_counter() - section_started:.0f} s)")
    duration = time.perf_counter() - started
    options = {"quick": args.quick, "sections": args.sections, "cold_runs": ctx.cold_runs,
               "warm_iterations": ctx.warm_iterations, "memory_requests": ctx.memory_requests,
               "cos_bulk_objects": ctx.cos_bulk_objects, "gcs_bulk_objects": ctx.gcs_bulk_objects}
    doc = document(rows, options=options, started=started_wall, duration=duration,
                   notes=ctx.notes)
    write_json(args.out, doc)
    print()
    print(table(rows))
    for note in ctx.notes:
        print(f"- {note}")
    print(f"\n{len(rows)} figures in {duration:.0f} s; JSON: {args.out}")
    return 1 if args.strict and not doc["all_ok"] else 0


if __name__ == "__main__":
    sys.exit(main())
