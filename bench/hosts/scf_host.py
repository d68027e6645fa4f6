"""A stand-in for SCF's Python runtime: put the code directory on ``sys.path``, import
``index``, call ``main_handler(event, context)`` for each event of a JSON list, then print one
line ``@@bench@@ {json}`` (the answers, or their count, and the process's peak RSS; the
function's own stdout, its log-sink events, comes before it) and leave without the
interpreter's teardown (the platform freezes the instance; it does not wait for a clean exit).

    python bench/hosts/scf_host.py CODE_DIR EVENTS.json

Only the standard library is imported here, so ours and the baseline pay the same host cost.
"""

import json
import os
import resource
import sys

MARKER = "@@bench@@ "


def peak_rss_kib() -> int:
    """This process's peak RSS: VmHWM, which starts afresh at exec. (``ru_maxrss`` does not:
    Linux carries the parent's high-water mark at fork into it.)"""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux


def main() -> None:
    code_dir, events_path = sys.argv[1], sys.argv[2]
    sys.path.insert(0, code_dir)
    with open(events_path, encoding="utf-8") as handle:
        events = json.load(handle)
    import index  # type: ignore[import-not-found]  # the function's module, as SCF loads it

    answers = []
    for event in events:
        try:
            answers.append(index.main_handler(event, {"request_id": "bench"}))
        except Exception as exc:  # reported; the driver decides
            answers.append({"raised": type(exc).__name__})
    peak_kib = peak_rss_kib()
    shown = answers if len(answers) <= 3 else {"count": len(answers), "last": answers[-1]}
    result = json.dumps({"answers": shown, "maxrss_kib": peak_kib}, default=str)
    sys.stdout.write(MARKER + result + "\n")
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
