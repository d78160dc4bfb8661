#!/usr/bin/env python3
"""agent_workers.py - several asyncio agent tasks share one limiter in front
of a model provider (the Python counterpart of examples/agent_workers.c).

The account allows 600 requests/min (burst 8), 10,000 tokens/s (burst
6,000) and 2 concurrent streams; each user 4,000 tokens/s (burst 3,000):
small numbers, so that the run takes seconds. Every call is
one guard over the user's key and the account's: it waits its turn (the
stream slot is waited for without polling), holds the slot while the
"model" streams, and settles the tokens the reply really used. One reply
in 8 is a 429 with Retry-After: 1, which the guard's end turns into a
cool-down every task (and every process on the same database) honours.

    RL_LIBRARY=build/librl.so python3 bindings/python/examples/agent_workers.py [DB]

Prints what each task got and checks that the limits held (streams in
flight never above 2, tokens within burst + rate x elapsed + debt); exits 0.
"""
import asyncio
import os
import random
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import pyrl  # noqa: E402

TIERS = """\
version: 1
tiers:
  provider:
    limits:
      - { name: rpm,     rate: 600/min, burst: 8 }
      - { name: tpm,     rate: 600000/min, burst: 6000, resource: tokens }
      - { name: streams, concurrent: 2, resource: streams }
  user:
    limits:
      - { name: user_tpm, rate: 240000/min, burst: 3000, resource: tokens }
keys:
  - { match: "provider:*", tier: provider }
  - { match: "user:*",     tier: user }
"""
ACCOUNT = "provider:demo"
TASKS = 6
CALLS = 5
ESTIMATE = 800


class FakeModel:
    """An async model client: streams a reply, counts the streams in
    flight, answers 429 one time in 8."""

    def __init__(self, seed: int):
        self.rng = random.Random(seed)
        self.in_flight = 0
        self.max_in_flight = 0
        self.calls = 0

    async def complete(self, prompt: str):
        self.calls += 1
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            for _ in range(3):  # three chunks
                await asyncio.sleep(0.01)
            if self.calls % 8 == 0:
                return 429, 0, {"Retry-After": "1"}
            used = self.rng.randint(200, 1200)
            return 200, used, {"x-ratelimit-remaining-tokens": "15000"}
        finally:
            self.in_flight -= 1


async def agent(n: int, alim: pyrl.AsyncLimiter, model: FakeModel, log: dict) -> None:
    user = "user:%s" % ("alice", "bob", "carol")[n % 3]
    mine = log.setdefault(n, {"user": user, "ok": 0, "429": 0, "tokens": 0, "waited": 0.0})
    for i in range(CALLS):
        t0 = time.monotonic()
        async with alim.guard([user, ACCOUNT], tokens=ESTIMATE, streams=1,
                              priority="interactive" if n % 2 == 0 else "batch",
                              timeout=60) as g:
            mine["waited"] += time.monotonic() - t0
            status, used, headers = await model.complete("task %d call %d" % (n, i))
            if status == 429:
                mine["429"] += 1
                g.end(headers=headers)  # settled at the estimate; cool-down for all
            else:
                mine["ok"] += 1
                mine["tokens"] += used
                g.end(tokens=used, headers=headers)
            log["charged"] += ESTIMATE if status == 429 else used


async def main(db: str) -> int:
    tiers = os.path.join(os.path.dirname(db), "tiers.yaml")
    with open(tiers, "w") as f:
        f.write(TIERS)
    alim = pyrl.AsyncLimiter(db, tiers_file=tiers)
    model = FakeModel(19)
    log: dict = {"charged": 0}
    t0 = time.monotonic()
    await asyncio.gather(*[agent(n, alim, model, log) for n in range(TASKS)])
    elapsed = time.monotonic() - t0
    st = await alim.stats(ACCOUNT)
    lim = {l.name: l for l in st.limits}
    await alim.aclose()

    for n in range(TASKS):
        m = log[n]
        print("task %d %-10s ok %d  429 %d  tokens %5d  waited %.2f s"
              % (n, m["user"], m["ok"], m["429"], m["tokens"], m["waited"]))
    tpm = lim["tpm"]
    bound = tpm.burst + tpm.count * elapsed / (tpm.period_ns / pyrl.SECOND) + tpm.debt
    print("calls %d in %.2f s; streams in flight at most %d (cap 2); tokens charged %d "
          "(bound %d); slots held now %d"
          % (model.calls, elapsed, model.max_in_flight, log["charged"], bound,
             lim["streams"].in_flight))
    failures = []
    if model.calls != TASKS * CALLS:
        failures.append("%d calls, not %d" % (model.calls, TASKS * CALLS))
    if model.max_in_flight > 2:
        failures.append("%d streams in flight" % model.max_in_flight)
    if log["charged"] > bound:
        failures.append("tokens %d above the bound %d" % (log["charged"], bound))
    if lim["streams"].in_flight != 0:
        failures.append("slots still held")
    for f in failures:
        print("FAIL:", f)
    return 1 if failures else 0


if __name__ == "__main__":
    with tempfile.TemporaryDirectory(prefix="pyrl-agents.") as d:
        db = sys.argv[1] if len(sys.argv) > 1 else os.path.join(d, "rl.db")
        sys.exit(asyncio.run(main(db)))
