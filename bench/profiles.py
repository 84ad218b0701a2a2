"""Reading what the benchmarks record about a server (issue 13: let the profile choose).

    .venv/bin/python bench/profiles.py inclusive FILE.folded [--match REGEX] [--top N]
    .venv/bin/python bench/profiles.py self FILE.folded [--top N]
    .venv/bin/python bench/profiles.py sql-callers FILE.folded [--top N]
    .venv/bin/python bench/profiles.py sql BEFORE.json AFTER.json OPERATIONS [--top N]

FILE.folded: py-spy's raw (folded) stacks, as `BENCH_PROFILE_DIR=DIR bench/network.py` records
them (`--gil`: only the thread holding the GIL, so roughly the process's Python CPU).
- inclusive: the share of samples in which each function is on the stack;
- self: the share in which it is the innermost frame;
- sql-callers: the samples inside SQLAlchemy, charged to the nearest frame of our own code
  (which of our lines cost the most statement work);
- sql: statements per operation between two snapshots of bench/sql_count (SIGUSR1).
"""
from __future__ import annotations

import argparse
import collections
import json
import re
import sys
from collections.abc import Iterator

OWN_CODE = ("server_stub/", "license_agent/", "desktop_app/")


def _stacks(path: str) -> Iterator[tuple[list[str], int]]:
    with open(path) as f:
        for line in f:
            stack, _, n = line.rstrip().rpartition(" ")
            if stack:
                yield [re.sub(r":\d+\)", ")", frame) for frame in stack.split(";")], int(n)


def _print(counts: collections.Counter[str], total: int, top: int, match: str | None = None) -> None:
    print(f"{total} samples")
    shown = 0
    for name, n in counts.most_common():
        if match is None or re.search(match, name):
            print(f"{100 * n / max(total, 1):5.1f}% {name[:160]}")
            shown += 1
            if shown >= top:
                break


def inclusive(path: str, top: int, match: str | None) -> None:
    counts: collections.Counter[str] = collections.Counter()
    total = 0
    for frames, n in _stacks(path):
        total += n
        for name in set(frames):
            counts[name] += n
    _print(counts, total, top, match)


def self_time(path: str, top: int) -> None:
    counts: collections.Counter[str] = collections.Counter()
    total = 0
    for frames, n in _stacks(path):
        total += n
        counts[frames[-1]] += n
    _print(counts, total, top)


def sql_callers(path: str, top: int) -> None:
    counts: collections.Counter[str] = collections.Counter()
    total = 0
    for frames, n in _stacks(path):
        total += n
        if "sqlalchemy" in frames[-1]:
            own = [f for f in frames if any(part in f for part in OWN_CODE)]
            counts[own[-1] if own else "(no frame of ours)"] += n
    _print(counts, total, top)


def sql_counts(before: str, after: str, operations: int, top: int) -> None:
    with open(before) as f:
        a = json.load(f)
    with open(after) as f:
        b = json.load(f)
    delta = {k: v - a.get(k, 0) for k, v in b.items() if v - a.get(k, 0)}
    statements = sum(v for k, v in delta.items() if k != "<COMMIT>")
    print(f"{statements / operations:.1f} statements and {delta.get('<COMMIT>', 0) / operations:.2f} commits "
          f"per operation ({operations} operations)")
    for k, v in sorted(delta.items(), key=lambda kv: -kv[1])[:top]:
        print(f"{v / operations:6.2f} {k}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=("inclusive", "self", "sql-callers", "sql"))
    ap.add_argument("files", nargs="+")
    ap.add_argument("--top", type=int, default=40)
    ap.add_argument("--match", default=None, help="inclusive: only the functions matching this regex")
    a = ap.parse_args()
    try:
        if a.what == "inclusive":
            inclusive(a.files[0], a.top, a.match)
        elif a.what == "self":
            self_time(a.files[0], a.top)
        elif a.what == "sql-callers":
            sql_callers(a.files[0], a.top)
        else:
            if len(a.files) != 3:
                ap.error("sql takes BEFORE.json AFTER.json OPERATIONS")
            sql_counts(a.files[0], a.files[1], int(a.files[2]), a.top)
    except BrokenPipeError:   # | head
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
