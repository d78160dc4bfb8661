#!/usr/bin/env python3
"""pyrl_bench.py - what pyrl adds to the C call it wraps (issue 20: pyrl
>= 0.85x the C call on a file database).

    python3 bench/pyrl_bench.py [--build DIR] [--seconds S] [--rounds N]

Each round times, one after the other on a fresh database file each:
  - C: `DIR/bench/bench --only sqlite/1p/1key/lock --json`, rl_allow in a
    loop on one key (limit 10^9/s, burst 10^9: every decision admitted);
  - pyrl: Limiter.allow in a loop on one key of a file database, with the
    same limit as the default, in this interpreter, on DIR's librl.so.
It prints each round, then the medians and their ratio. A program that
prints figures, not a test: nothing here fails on a slow machine.
Needs a build with the bench and the shared library (the default
RelWithDebInfo or a Release build).
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def c_rate(build, seconds):
    out = subprocess.run(
        [os.path.join(build, "bench", "bench"), "--seconds", str(seconds), "--only",
         "sqlite/1p/1key/lock", "--json"],
        check=True, capture_output=True, text=True).stdout
    doc = json.loads(out)
    for case in doc["cases"]:
        if case["label"] == "sqlite/1p/1key/lock":
            m = doc.get("machine", {})
            return case["decisions_per_s"], ("machine: nproc {nproc}, {cpu}, {kernel}, SQLite {sqlite}"
                                             .format(**m) if m else "")
    raise SystemExit("pyrl_bench: the C bench printed no sqlite/1p/1key/lock row")


def py_rate(pyrl, seconds):
    with tempfile.TemporaryDirectory(prefix="pyrl-bench.") as d:
        huge = [pyrl.Limit(10**9, 1.0, 10**9)]
        with pyrl.Limiter(os.path.join(d, "rl.db"), default_limits=huge) as lim:
            allow = lim.allow
            allow("warmup")
            n, t0 = 0, time.perf_counter()
            end = t0 + seconds
            while True:
                for _ in range(256):  # the clock is read once per 256 calls
                    if not allow("k0").allowed:
                        raise SystemExit("pyrl_bench: a decision was refused")
                n += 256
                t1 = time.perf_counter()
                if t1 >= end:
                    return n / (t1 - t0)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    build = os.path.abspath(a.build)
    lib = os.path.join(build, "librl.so")
    if not os.path.exists(lib):
        raise SystemExit(f"pyrl_bench: no {lib}: build the shared library first")
    os.environ["RL_LIBRARY"] = lib
    sys.path.insert(0, os.path.join(ROOT, "bindings", "python"))
    import pyrl  # noqa: E402 (after RL_LIBRARY is set)

    cs, ps, machine = [], [], ""
    for i in range(a.rounds):
        c, machine = c_rate(build, a.seconds)
        p = py_rate(pyrl, a.seconds)
        cs.append(c)
        ps.append(p)
        print(f"round {i + 1}: C rl_allow {c:,.0f}/s ({1e6 / c:.1f} us)   "
              f"pyrl Limiter.allow {p:,.0f}/s ({1e6 / p:.1f} us)   ratio {p / c:.2f}x")
    c, p = statistics.median(cs), statistics.median(ps)
    if machine:
        print(machine)
    print(f"python {sys.version.split()[0]}, librl {lib}")
    print(f"median: C {c:,.0f}/s, pyrl {p:,.0f}/s: pyrl / C = {p / c:.2f}x "
          f"(pyrl adds {1e6 / p - 1e6 / c:.1f} us per call)")


if __name__ == "__main__":
    main()
