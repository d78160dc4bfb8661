#!/usr/bin/env python3
"""test_asyncio.py - pyrl under asyncio (AsyncLimiter, guards, slots, the
decorator), over a real librl:

    RL_LIBRARY=build/librl.so python3 bindings/python/tests/test_asyncio.py

Standard library only (unittest.IsolatedAsyncioTestCase). No sleep stands
for synchronisation: a test that needs a task to be asleep in librl polls
the store for the sign of it (its reservation) with a deadline; outcomes are
asserted exactly on rl's own counters (stats: remaining, in_flight,
allowed, refused). Limits are chosen so that time passing during a run
(under load) cannot change them: rates of 1 per 100 s, or slots.
"""
import asyncio
import os
import sys
import tempfile
import threading
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

import pyrl  # noqa: E402

SLOW = pyrl.Limit(1, 100, name="slow")                        # 1 per 100 s, burst 1
TOKENS = pyrl.Limit(1000, 3600, name="tpm", resource="tokens")  # no refill to speak of
STREAMS = pyrl.Limit(1, 0, name="streams", resource="streams")  # one slot


class Base(unittest.IsolatedAsyncioTestCase):
    limits = [pyrl.Limit(10, 3600, name="rph"), TOKENS, STREAMS]

    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="pyrl-aio.")
        self.db = os.path.join(self.tmp.name, "rl.db")
        self.lim = pyrl.Limiter(self.db, default_limits=self.limits)
        self.alim = self.lim.aio

    def tearDown(self):
        self.lim.close()
        self.tmp.cleanup()

    def limit(self, key, name):
        for l in self.lim.stats(key).limits:
            if l.name == name:
                return l
        raise KeyError(name)

    async def until(self, cond, what, seconds=20.0):
        """Polls cond() (a look at the store) until true, or fails."""
        end = time.monotonic() + seconds
        while not cond():
            if time.monotonic() > end:
                self.fail("timed out waiting for " + what)
            await asyncio.sleep(0.005)


class Ticker:
    """A task that ticks every 10 ms: proof that the loop runs."""

    def __init__(self):
        self.ticks = 0
        self.max_gap = 0.0
        self.task = asyncio.ensure_future(self.run())

    async def run(self):
        last = time.monotonic()
        while True:
            await asyncio.sleep(0.01)
            now = time.monotonic()
            self.max_gap = max(self.max_gap, now - last)
            last = now
            self.ticks += 1

    async def stop(self):
        self.task.cancel()
        try:
            await self.task
        except asyncio.CancelledError:
            pass


class TestDecisions(Base):
    async def test_many_tasks_exact(self):
        # 50 tasks decide at once on a budget of 10: exactly 10 pass
        res = await asyncio.gather(*[self.alim.allow("user:a") for _ in range(50)])
        self.assertEqual(sum(1 for r in res if r), 10)
        st = self.lim.stats("user:a")
        self.assertEqual((st.allowed, st.refused), (10, 40))
        # and 30 tasks that wait on a fast rate all get in, in turn
        self.lim.set_tier("fast", [pyrl.Limit(200, 1, burst=5, name="rps")])
        self.lim.assign("user:b", "fast")
        t0 = time.monotonic()
        res = await asyncio.gather(*[self.alim.wait("user:b", timeout=30) for _ in range(30)])
        self.assertTrue(all(res))
        self.assertEqual(self.lim.stats("user:b").allowed, 30)
        self.assertGreaterEqual(time.monotonic() - t0, (30 - 5) / 200 * 0.9)

    async def test_try_acquire_and_acquire(self):
        r = await self.alim.try_acquire("user:a", tokens=600)
        self.assertTrue(r)
        r = await self.alim.try_acquire("user:a", tokens=600)
        self.assertFalse(r)
        self.assertEqual(r.limit_name, "tpm")
        # the waiting acquire over two keys; then one that cannot pass in time
        r = await self.alim.acquire(["user:b", "acct"], tokens=300, timeout=5)
        self.assertTrue(r)
        self.assertEqual(self.limit("user:b", "tpm").remaining, 700)
        self.assertEqual(self.limit("acct", "tpm").remaining, 700)
        with self.assertRaises(pyrl.Timeout) as cm:
            await self.alim.acquire(["user:b", "acct"], tokens=800, timeout=0.1)
        self.assertEqual(cm.exception.result.limit_name, "tpm")
        self.assertEqual(self.limit("acct", "tpm").remaining, 700)  # nothing charged

    async def test_wait_timeout_consumes_nothing(self):
        self.lim.set_tier("slow", [SLOW])
        self.lim.assign("user:s", "slow")
        self.assertTrue(await self.alim.allow("user:s"))
        t0 = time.monotonic()
        with self.assertRaises(pyrl.Timeout):
            await self.alim.wait("user:s", timeout=5)  # needs 100 s: refused at once
        self.assertLess(time.monotonic() - t0, 4)
        self.assertGreater(self.limit("user:s", "slow").retry_after_ns, 90 * pyrl.SECOND)
        self.assertLess(self.limit("user:s", "slow").retry_after_ns, 101 * pyrl.SECOND)


class TestCancellation(Base):
    async def test_cancel_wait_returns_reservation(self):
        self.lim.set_tier("slow", [SLOW])
        self.lim.assign("user:s", "slow")
        self.assertTrue(await self.alim.allow("user:s"))
        task = asyncio.ensure_future(self.alim.wait("user:s", timeout=1000))
        # asleep in rl_wait once its reservation pushed the next slot to ~200 s
        await self.until(lambda: self.limit("user:s", "slow").retry_after_ns >
                         150 * pyrl.SECOND, "the waiter's reservation")
        task.cancel()
        with self.assertRaises(asyncio.CancelledError):
            await task
        # the reservation went back: the next unit is ~100 s away again
        self.assertLess(self.limit("user:s", "slow").retry_after_ns, 101 * pyrl.SECOND)

    async def test_cancel_inside_lease_and_guard(self):
        never = asyncio.Event()
        entered = asyncio.Event()

        async def worker():
            async with self.alim.guard(["user:a", "acct"], tokens=600, streams=1):
                entered.set()
                await never.wait()

        task = asyncio.ensure_future(worker())
        await entered.wait()
        self.assertEqual(self.limit("acct", "streams").in_flight, 1)
        self.assertEqual(self.limit("acct", "tpm").remaining, 400)
        task.cancel()
        with self.assertRaises(asyncio.CancelledError):
            await task
        self.assertEqual(self.limit("acct", "streams").in_flight, 0)
        self.assertEqual(self.limit("acct", "tpm").remaining, 1000)
        self.assertEqual(self.limit("user:a", "tpm").remaining, 1000)

        entered.clear()

        async def leaser():
            async with self.alim.lease("acct", tokens=700) as lease:
                entered.set()
                await never.wait()
                lease.settle(tokens=1)

        task = asyncio.ensure_future(leaser())
        await entered.wait()
        self.assertEqual(self.limit("acct", "tpm").remaining, 300)
        task.cancel()
        with self.assertRaises(asyncio.CancelledError):
            await task
        self.assertEqual(self.limit("acct", "tpm").remaining, 1000)

    async def test_cancel_slot_waiter_holds_nothing(self):
        held = self.lim.slot("acct").begin()
        ticker = Ticker()
        task = asyncio.ensure_future(self._slot_user("acct"))
        await self.until(lambda: ticker.ticks >= 10, "ticks")
        task.cancel()
        with self.assertRaises(asyncio.CancelledError):
            await task
        await ticker.stop()
        self.assertEqual(self.limit("acct", "streams").in_flight, 1)
        held.cancel()
        self.assertEqual(self.limit("acct", "streams").in_flight, 0)
        async with self.alim.slot("acct", timeout=0):  # the cancelled waiter holds no place
            self.assertEqual(self.limit("acct", "streams").in_flight, 1)

    async def _slot_user(self, key):
        async with self.alim.slot(key, timeout=60):
            return True

    async def test_wait_for_timeout_cancels(self):
        self.lim.set_tier("slow", [SLOW])
        self.lim.assign("user:s", "slow")
        self.assertTrue(await self.alim.allow("user:s"))
        with self.assertRaises(asyncio.TimeoutError):
            await asyncio.wait_for(self.alim.wait("user:s", timeout=1000), 0.2)
        self.assertLess(self.limit("user:s", "slow").retry_after_ns, 101 * pyrl.SECOND)


class TestSlotsAndLoop(Base):
    async def test_slot_wakeup_without_busy_loop(self):
        held = self.lim.slot("acct").begin()
        ticker = Ticker()
        admitted_at = []

        async def waiter():
            async with self.alim.slot("acct", timeout=60) as s:
                admitted_at.append(time.monotonic())
                self.assertEqual(s.result.limit_name, "streams")

        before = self.lim.stats("acct")
        cpu0 = time.process_time()
        t0 = time.monotonic()
        task = asyncio.ensure_future(waiter())
        await self.until(lambda: ticker.ticks >= 30, "ticks")  # >= 0.3 s asleep
        cpu = time.process_time() - cpu0
        wall = time.monotonic() - t0
        during = self.lim.stats("acct")
        self.assertEqual(admitted_at, [])
        # asleep in the queue: librl looks again only every 500 ms (for a
        # holder that died) and is otherwise woken; a poller following the
        # refusals' retry_after (RL_SLOT_RETRY_NS, 50 ms) would make 20
        # decisions a second. And far from a core of CPU.
        self.assertLessEqual(during.refused - before.refused, 2 + int(wall * 3))
        self.assertEqual(during.allowed, before.allowed)
        self.assertLess(cpu, 0.5 * wall)
        released = time.monotonic()
        held.end()  # frees the slot: the waiter is woken
        await asyncio.wait_for(task, 30)
        self.assertEqual(len(admitted_at), 1)
        self.assertLess(admitted_at[0] - released, 5.0)
        self.assertGreater(ticker.ticks, 10)
        await ticker.stop()
        self.assertEqual(self.limit("acct", "streams").in_flight, 0)

    async def test_slot_timeout(self):
        held = self.lim.slot("acct").begin()
        t0 = time.monotonic()
        with self.assertRaises(pyrl.RateLimitExceeded) as cm:
            async with self.alim.slot("acct", timeout=0.3):
                self.fail("admitted")
        self.assertGreaterEqual(time.monotonic() - t0, 0.25)
        self.assertIsInstance(cm.exception, pyrl.Timeout)
        self.assertIsInstance(cm.exception, pyrl.Refused)
        self.assertEqual(cm.exception.limit_name, "streams")
        self.assertEqual(cm.exception.key, "acct")
        held.cancel()

    async def test_loop_not_blocked_during_wait(self):
        self.lim.set_tier("half", [pyrl.Limit(4, 1, burst=1, name="rps")])
        self.lim.assign("user:h", "half")
        ticker = Ticker()
        await self.alim.allow("user:h")
        t0 = time.monotonic()
        for _ in range(2):  # two waits of ~250 ms each
            self.assertTrue(await self.alim.wait("user:h", timeout=30))
        elapsed = time.monotonic() - t0
        await ticker.stop()
        self.assertGreaterEqual(elapsed, 0.4)
        self.assertGreaterEqual(ticker.ticks, 10)
        self.assertLess(ticker.max_gap, 0.4)


class TestGuardAndDecorator(Base):
    async def test_async_guard_settles_and_cools_down(self):
        async with self.alim.guard(["user:a", "acct"], tokens=600, streams=1,
                                   timeout=10) as g:
            self.assertTrue(g.held)
            self.assertEqual(g.result.limit_name, "streams")  # least room: 0 of 1
            g.end(tokens=250, headers={"Retry-After": "30"})
        self.assertFalse(g.held)
        self.assertEqual(self.limit("user:a", "tpm").remaining, 750)
        self.assertEqual(self.limit("acct", "tpm").remaining, 750)
        self.assertEqual(self.limit("acct", "streams").in_flight, 0)
        self.assertEqual(g.end_result.limit_name, "cooldown")
        # the account cools down for every guard of every process
        with self.assertRaises(pyrl.RateLimitExceeded) as cm:
            async with self.alim.guard(["user:b", "acct"], tokens=1, timeout=0):
                pass
        self.assertEqual(cm.exception.limit_name, "cooldown")
        self.assertEqual(cm.exception.key, "acct")
        self.assertGreater(cm.exception.retry_after, 20)

    def test_sync_guard(self):
        with self.lim.guard(["user:a", "acct"], tokens=600, streams=1, timeout=5) as g:
            self.assertEqual(self.limit("acct", "streams").in_flight, 1)
            with self.assertRaises(pyrl.RateLimitExceeded) as cm:
                self.lim.guard(["user:b", "acct"], streams=1, timeout=0).begin()
            self.assertEqual(cm.exception.limit_name, "streams")
            r = g.end(tokens=900)
            self.assertEqual(r.remaining, 100)  # least room after settling: 100 tokens
        self.assertEqual(self.limit("acct", "tpm").remaining, 100)
        # a block that raises cancels: the estimate goes back
        with self.assertRaises(RuntimeError):
            with self.lim.guard(["user:c", "acct"], tokens=50, timeout=5):
                raise RuntimeError("never sent")
        self.assertEqual(self.limit("acct", "tpm").remaining, 100)
        self.assertEqual(self.limit("user:c", "tpm").remaining, 1000)
        # a block that ends without end() settles at the estimate
        with self.lim.guard(["user:d", "acct"], tokens=50, timeout=5):
            pass
        self.assertEqual(self.limit("acct", "tpm").remaining, 50)
        # sync slot and a batch wait over several resources
        with self.lim.slot("acct", timeout=1):
            self.assertEqual(self.limit("acct", "streams").in_flight, 1)
        self.assertTrue(self.lim.wait("user:e", 1, 5, priority="batch", tokens=10))
        self.assertEqual(self.limit("user:e", "tpm").remaining, 990)

    async def test_decorator(self):
        calls = []

        @self.lim.limited(lambda user, n: "user:" + user, timeout=0)
        async def answer(user, n):
            calls.append((user, n))
            return n * 2

        @self.lim.limited("sync:key", timeout=0, tokens=400)
        def work(n):
            calls.append(("sync", n))
            return n + 1

        self.assertEqual(answer.__name__, "answer")
        self.assertEqual([await answer("ann", i) for i in range(10)], [i * 2 for i in range(10)])
        with self.assertRaises(pyrl.Timeout):
            await answer("ann", 10)  # the 11th of 10 per hour
        self.assertEqual(await answer("bob", 1), 2)  # another key
        self.assertEqual(work(1), 2)
        self.assertEqual(work(2), 3)
        with self.assertRaises(pyrl.Timeout):
            work(3)  # 1200 tokens > 1000
        self.assertEqual(len(calls), 13)
        self.assertEqual(self.lim.stats("user:ann").allowed, 10)

        # hold=True keeps the slot for the call
        @self.alim.limited("acct", None, timeout=5, hold=True, streams=1)
        async def stream():
            return self.limit("acct", "streams").in_flight

        self.assertEqual(await stream(), 1)
        self.assertEqual(self.limit("acct", "streams").in_flight, 0)

    async def test_close_cancels_async_waits(self):
        self.lim.set_tier("slow", [SLOW])
        self.lim.assign("user:s", "slow")
        self.assertTrue(await self.alim.allow("user:s"))
        task = asyncio.ensure_future(self.alim.wait("user:s", timeout=1000))
        await self.until(lambda: self.limit("user:s", "slow").retry_after_ns >
                         150 * pyrl.SECOND, "the waiter's reservation")
        await asyncio.get_running_loop().run_in_executor(None, self.lim.close)
        with self.assertRaises(pyrl.Canceled):
            await task


class TestPid(unittest.TestCase):
    def test_pid_cache_follows_fork(self):
        self.assertEqual(pyrl.current_pid(), os.getpid())
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            ok = pyrl.current_pid() == os.getpid()
            os.write(w, b"1" if ok else b"0")
            os._exit(0)
        os.close(w)
        got = os.read(r, 1)
        os.close(r)
        os.waitpid(pid, 0)
        self.assertEqual(got, b"1")


if __name__ == "__main__":
    unittest.main(verbosity=2)
