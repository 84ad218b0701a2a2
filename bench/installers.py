"""Installer benchmark: bundle sizes, and the frozen agent's `check` time beside the non-frozen
one, measured in the same run against a floor (bare `python3 -c pass`, the cost of starting
any Python program) and an absolute floor (`/bin/true`, the cost of starting any process).

    .venv/bin/python bench/installers.py [--dist dist] [--build] [--runs 30]

--build (or a missing dist/license-agent) freezes the agent first with `python -m installers
build agent --bundle`. The storefront's size is reported when dist/tokenrent exists (build it
by hand: `python -m installers build storefront`).
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.installers_agent import AgentHome, agent_command  # noqa: E402


def dir_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def timed(argv: list[str], env: dict, runs: int, expect: int = 0) -> list[float]:
    samples = []
    for _ in range(runs):
        t0 = time.perf_counter()
        proc = subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        samples.append(time.perf_counter() - t0)
        if proc.returncode != expect:
            raise SystemExit(f"{argv} exit {proc.returncode}: {proc.stderr.decode()[-500:]}")
    return samples


def pct(samples: list[float], q: float) -> float:
    s = sorted(samples)
    return s[min(len(s) - 1, int(round(q * (len(s) - 1))))]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dist", type=Path, default=ROOT / "dist")
    ap.add_argument("--build", action="store_true")
    ap.add_argument("--runs", type=int, default=30)
    args = ap.parse_args()
    frozen = args.dist / "license-agent" / "license-agent"
    if args.build or not frozen.exists():
        subprocess.run([sys.executable, "-m", "installers", "build", "agent", "--bundle",
                        "--dist", str(args.dist)], cwd=ROOT, check=True)

    sizes = {}
    for name in ("license-agent", "tokenrent"):
        if (args.dist / name).is_dir():
            sizes[f"{name}/ (one-folder)"] = dir_size(args.dist / name)
    for archive in sorted(args.dist.glob("tokenrent-*-linux-*.tar.gz")):
        sizes[archive.name] = archive.stat().st_size

    with tempfile.TemporaryDirectory(prefix="bench-installers-") as tmp:
        agent = AgentHome(Path(tmp) / "home")
        agent.trust_vendor()
        # processings: `check` reads the state and answers without spending anything,
        # so every run measures the same work.
        agent.grant("7", "processings", processings=1_000_000)
        env = agent.env
        cases = {
            "/bin/true (process floor)": ["/bin/true"],
            "python3 -c pass (floor)": [sys.executable, "-c", "pass"],
            "frozen license-agent check": [str(frozen), "check", "7", "--json"],
            "non-frozen license-agent check": [*agent_command(), "check", "7", "--json"],
        }
        for argv in cases.values():  # warm the page cache once
            subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        results = {}
        # Interleave the cases so that a busy neighbour slows all of them alike.
        samples = {k: [] for k in cases}
        for _ in range(args.runs):
            for name, argv in cases.items():
                samples[name] += timed(argv, env, 1)
        for name, s in samples.items():
            results[name] = {"p50_ms": pct(s, 0.5) * 1e3, "p90_ms": pct(s, 0.9) * 1e3,
                             "mean_ms": statistics.fmean(s) * 1e3}

    floor = results["python3 -c pass (floor)"]["p50_ms"]
    print(f"bundle sizes ({args.dist}):")
    for name, size in sizes.items():
        print(f"  {name:45s} {size / 1e6:8.1f} MB")
    print(f"\n`check` start-to-answer, {args.runs} runs each, interleaved:")
    for name, r in results.items():
        print(f"  {name:32s} p50 {r['p50_ms']:7.1f} ms  p90 {r['p90_ms']:7.1f} ms  "
              f"= {r['p50_ms'] / floor:5.2f}x python floor")
    fz, nf = results["frozen license-agent check"]["p50_ms"], results["non-frozen license-agent check"]["p50_ms"]
    # Paired: the two runs of one round saw the same machine load, so their ratio is steadier.
    paired = statistics.median(f / n for f, n in zip(samples["frozen license-agent check"],
                                                      samples["non-frozen license-agent check"], strict=True))
    print(f"\nfrozen / non-frozen check: p50 ratio {fz / nf:.2f}x, median of paired ratios {paired:.2f}x")
    results["paired_frozen_over_nonfrozen"] = paired
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    (out / "installers.json").write_text(json.dumps({"sizes_bytes": sizes, "check": results,
                                                     "runs": args.runs}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
