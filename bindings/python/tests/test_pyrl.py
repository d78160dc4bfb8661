#!/usr/bin/env python3
"""test_pyrl.py - tests of the Python binding (pyrl) over a real librl.

    RL_LIBRARY=build/librl.so PYRL_HELPER=build/tests/pyrl_helper \\
        python3 bindings/python/tests/test_pyrl.py [unittest options]

ctest runs it that way. Without PYRL_HELPER the C helper (helper.c) is
compiled with `cc` if there is one, else the tests that need it are skipped.
Standard library only; every database lives in a temporary directory.
"""
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

import pyrl  # noqa: E402

SOURCE_DIR = os.path.normpath(os.path.join(HERE, "..", "..", ".."))
_helper = None


def helper():
    """The path of the C helper, building it with cc if need be."""
    global _helper
    if _helper:
        return _helper
    env = os.environ.get("PYRL_HELPER")
    if env:
        _helper = env
        return env
    out = os.path.join(tempfile.mkdtemp(prefix="pyrl-helper."), "pyrl_helper")
    libdir = os.path.dirname(os.path.abspath(pyrl.library_path))
    cmd = ["cc", "-std=c11", "-D_POSIX_C_SOURCE=200809L", "-I", os.path.join(SOURCE_DIR, "core"),
           os.path.join(HERE, "helper.c"), "-o", out, "-L", libdir, "-l:" +
           os.path.basename(pyrl.library_path), "-Wl,-rpath," + libdir]
    try:
        subprocess.run(cmd, check=True, capture_output=True)
    except (OSError, subprocess.CalledProcessError) as e:
        raise unittest.SkipTest("no C helper: set PYRL_HELPER or install cc (%s)" % e)
    _helper = out
    return out


TIERS = """\
version: 1
default_tier: free
tiers:
  free:
    limits:
      - { name: rps, rate: 50/s, burst: 20 }
  pro:
    limits:
      - { name: rpm, rate: 600/min, burst: 50 }
      - { name: tpm, rate: 9000/min, resource: tokens }
  unlimited: { unlimited: true }
keys:
  - { match: "admin:*", tier: unlimited }
"""


class Base(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="pyrl-test.")
        self.db = os.path.join(self.tmp.name, "rl.db")

    def tearDown(self):
        self.tmp.cleanup()

    def write(self, name, text):
        path = os.path.join(self.tmp.name, name)
        with open(path, "w") as f:
            f.write(text)
        return path


class TestLayout(unittest.TestCase):
    """The ctypes mirror of rl.h against what the C compiler says."""

    def test_sizes_offsets_constants(self):
        out = subprocess.run([helper(), "layout"], check=True, capture_output=True,
                             text=True).stdout
        checked = 0
        for line in out.splitlines():
            kind, *rest = line.split()
            if kind == "size":
                name, size = rest[0], int(rest[1])
                self.assertIn(name, pyrl.STRUCTS, "rl.h type %s not mirrored" % name)
                self.assertEqual(__import__("ctypes").sizeof(pyrl.STRUCTS[name]), size,
                                 "sizeof(%s)" % name)
            elif kind == "offset":
                name, fld, off = rest[0], rest[1], int(rest[2])
                self.assertEqual(getattr(pyrl.STRUCTS[name], fld).offset, off,
                                 "offsetof(%s, %s)" % (name, fld))
            elif kind == "const":
                name, value = rest[0], int(rest[1])
                self.assertEqual(getattr(pyrl, name), value, name)
            else:
                self.fail("unexpected line %r" % line)
            checked += 1
        self.assertGreater(checked, 90)

    def test_library(self):
        self.assertRegex(pyrl.version(), r"^\d+\.\d+\.\d+")
        self.assertTrue(os.path.exists(pyrl.library_path) or "/" not in pyrl.library_path)
        if os.environ.get("RL_LIBRARY"):
            self.assertEqual(pyrl.library_path, os.environ["RL_LIBRARY"])

    def test_parsers(self):
        self.assertEqual(pyrl.parse_rate("600/min"), (600, 60 * pyrl.SECOND))
        self.assertEqual(pyrl.parse_duration("1m30s"), 90 * pyrl.SECOND)
        with self.assertRaises(pyrl.InvalidArgument):
            pyrl.parse_rate("5/m")


class TestDecisions(Base):
    def test_allow(self):
        with pyrl.Limiter(self.db, default_limits=[pyrl.Limit(10, 1, burst=5)]) as rl:
            results = [rl.allow("user:alice") for _ in range(7)]
        self.assertEqual([r.allowed for r in results], [True] * 5 + [False] * 2)
        first, refused = results[0], results[-1]
        self.assertTrue(first)
        self.assertFalse(refused)
        self.assertEqual(first.remaining, 4)
        self.assertEqual(first.limit, 5)
        self.assertEqual(first.limit_name, "limit1")
        self.assertFalse(first.degraded)
        self.assertEqual(first.retry_after, 0.0)
        self.assertIsInstance(refused.retry_after_ns, int)
        self.assertGreater(refused.retry_after_ns, 50_000_000)
        self.assertLessEqual(refused.retry_after_ns, 100_000_000)
        self.assertAlmostEqual(refused.retry_after, refused.retry_after_ns / 1e9)
        self.assertGreater(refused.reset_after, 0.4)
        # made without Result.__init__ (pyrl._values._result), yet the very
        # value Result(...) makes: equal, same hash and repr, still frozen
        made = pyrl.Result(True, 4, 0, first.reset_after_ns, 5, "limit1", False, 0, None)
        self.assertEqual(first, made)
        self.assertEqual(hash(first), hash(made))
        self.assertEqual(repr(first), repr(made))
        with self.assertRaises(AttributeError):
            first.allowed = False
        self.assertIsNone(first.key)

    def test_limit_spellings(self):
        limits = ["60/min", {"rate": "10/s", "burst": 3, "name": "fast"},
                  (1000, 86400, 0, "daily")]
        with pyrl.Limiter(self.db, default_limits=limits) as rl:
            rl.allow("k")
            st = rl.stats("k")
        self.assertEqual([(l.name, l.count, l.period_ns, l.burst) for l in st.limits],
                         [("limit1", 60, 60 * pyrl.SECOND, 60), ("fast", 10, pyrl.SECOND, 3),
                          ("daily", 1000, 86400 * pyrl.SECOND, 1000)])

    def test_sliding_window(self):
        limits = [{"rate": "3/hour", "name": "w", "algorithm": "sliding_window"},
                  pyrl.Limit(100, 1, name="g")]
        with pyrl.Limiter(self.db, default_limits=limits) as rl:
            self.assertTrue(all(rl.allow("k") for _ in range(3)))
            self.assertFalse(rl.allow("k"))
            st = rl.stats("k")
            rl.set_tier("t", [pyrl.Limit.rate("5/min", algorithm="sliding_window")])
            tiers = rl.tiers()
        self.assertEqual([(l.name, l.algorithm, l.burst) for l in st.limits],
                         [("w", "sliding_window", 3), ("g", "gcra", 100)])
        self.assertEqual(st.limits[0].remaining, 0)
        self.assertEqual(tiers["t"][0].algorithm, "sliding_window")
        with self.assertRaises(ValueError):
            pyrl.Limiter(":memory:", default_limits=[pyrl.Limit(1, 1, algorithm="fixed")])

    def test_wait(self):
        with pyrl.Limiter(self.db, default_limits=[pyrl.Limit(20, 1, burst=1)]) as rl:
            self.assertTrue(rl.allow("k"))
            t0 = time.monotonic()
            res = rl.wait("k", timeout=1)
            self.assertTrue(res.allowed)
            self.assertGreater(time.monotonic() - t0, 0.03)
            with self.assertRaises(pyrl.Timeout) as cm:
                rl.wait("k", timeout=0.001)
            self.assertIsInstance(cm.exception, TimeoutError)
            self.assertEqual(cm.exception.code, pyrl.RL_ETIMEOUT)
            self.assertTrue(str(cm.exception))

    def test_wait_cancel_from_thread(self):
        with pyrl.Limiter(self.db, default_limits=[pyrl.Limit(1, 10, burst=1)]) as rl:
            rl.allow("k")
            token = pyrl.CancelToken()
            threading.Timer(0.1, token.cancel).start()
            t0 = time.monotonic()
            with self.assertRaises(pyrl.Canceled):
                rl.wait("k", timeout=30, cancel=token)
            self.assertLess(time.monotonic() - t0, 2)
            # the reservation went back: the next wait is ~10 s, not ~20 s
            self.assertLess(rl.stats("k").limits[0].retry_after_ns, 10.5 * pyrl.SECOND)

    def test_close_cancels_waits(self):
        rl = pyrl.Limiter(self.db, default_limits=[pyrl.Limit(1, 10, burst=1)])
        rl.allow("k")
        errors = []

        def waiter():
            try:
                rl.wait("k", timeout=30)
            except pyrl.RLError as e:
                errors.append(e)

        t = threading.Thread(target=waiter)
        t.start()
        time.sleep(0.1)
        t0 = time.monotonic()
        rl.close()
        t.join()
        self.assertLess(time.monotonic() - t0, 2)
        self.assertEqual([type(e) for e in errors], [pyrl.Canceled])

    def test_wait_interrupted_by_signal(self):
        class Interrupted(Exception):
            pass

        def on_alarm(sig, frame):
            raise Interrupted()

        old = signal.signal(signal.SIGALRM, on_alarm)
        try:
            with pyrl.Limiter(self.db, default_limits=[pyrl.Limit(1, 10, burst=1)]) as rl:
                rl.allow("k")
                signal.setitimer(signal.ITIMER_REAL, 0.1)
                t0 = time.monotonic()
                with self.assertRaises(Interrupted):
                    rl.wait("k", timeout=30)
                self.assertLess(time.monotonic() - t0, 2)
                self.assertLess(rl.stats("k").limits[0].retry_after_ns, 10.5 * pyrl.SECOND)
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, old)

    def test_reserve_cancel(self):
        with pyrl.Limiter(self.db, default_limits=[pyrl.Limit(10, 1, burst=1)]) as rl:
            rl.allow("k")
            rv = rl.reserve("k", max_delay=1)
            self.assertTrue(rv.ok)
            self.assertGreater(rv.delay, 0.05)
            before = rl.stats("k").limits[0].retry_after_ns
            rv.cancel()
            rv.cancel()  # idempotent
            after = rl.stats("k").limits[0].retry_after_ns
            self.assertGreater(before - after, 80_000_000)
            self.assertFalse(rl.reserve("k", max_delay=0.01).ok)

    def test_acquire_resources_and_keys(self):
        tiers = self.write("tiers.yaml", TIERS)
        with pyrl.Limiter(self.db, tiers_file=tiers) as rl:
            rl.assign("user:bob", "pro")
            got = [rl.acquire("user:bob", requests=1, tokens=4000) for _ in range(3)]
            self.assertEqual([bool(r) for r in got], [True, True, False])
            self.assertEqual(got[2].limit_name, "tpm")
            self.assertEqual(rl.stats("user:bob").units, 2)
            # a resource name that is no identifier, and requests left alone
            with self.assertRaises(pyrl.InvalidArgument):
                rl.acquire("user:bob", requests=None, costs={"bad name": 1})
            # user + global: global has burst 2, so the third caller fails on it
            rl.set_tier("global", [pyrl.Limit(2, 60, name="all")])
            rl.assign("global", "global")
            res = [rl.acquire([u, "global"]) for u in ("user:a", "user:b", "user:c")]
            self.assertEqual([bool(r) for r in res], [True, True, False])
            self.assertEqual(res[2].key, "global")
            self.assertEqual(res[2].key_index, 1)
            self.assertEqual(res[2].limit_name, "all")
            self.assertEqual(rl.stats("user:c").allowed, 0)

    def test_penalize(self):
        with pyrl.Limiter(self.db, default_limits=["100/s"]) as rl:
            rl.penalize("k", 30)
            res = rl.allow("k")
            self.assertFalse(res)
            self.assertEqual(res.limit_name, "cooldown")
            self.assertGreater(res.retry_after, 29)
            self.assertGreater(rl.stats("k").cooldown_ns, 29 * pyrl.SECOND)
            rl.penalize("k", 0)
            self.assertTrue(rl.allow("k"))
            rl.penalize("k", 30, resource="tokens")
            self.assertTrue(rl.allow("k"))  # requests are not under the cool-down

    def test_lease_settles_tokens_and_holds_slots(self):
        limits = [pyrl.Limit(60000, 60, name="tpm", resource="tokens"),
                  pyrl.Limit(1, 0, name="streams", resource="streams")]
        with pyrl.Limiter(self.db, default_limits=limits) as rl:
            t0 = time.monotonic()
            with rl.lease("acct", requests=None, tokens=1500, streams=1) as lease:
                self.assertGreater(lease.id, 0)
                remaining = rl.stats("acct").limits[0].remaining
                # 1500 reserved; the real clock refills one token per ms meanwhile
                refill = int((time.monotonic() - t0) * 1000) + 1
                self.assertGreaterEqual(remaining, 58500)
                self.assertLessEqual(remaining, 58500 + refill)
                # the only stream slot is held: a second stream is refused
                with self.assertRaises(pyrl.Refused) as cm:
                    with rl.lease("acct", requests=None, tokens=10, streams=1):
                        pass
                self.assertEqual(cm.exception.result.limit_name, "streams")
                lease.settle(tokens=900)
            st = rl.stats("acct")
            self.assertGreaterEqual(st.limits[0].remaining, 59100)  # 600 came back
            self.assertEqual(st.limits[1].remaining, 1)             # slot freed
            # an exception in the block gives everything back
            before = rl.stats("acct").limits[0].remaining
            with self.assertRaises(KeyError):
                with rl.lease("acct", requests=None, tokens=5000):
                    raise KeyError("model call failed")
            self.assertGreaterEqual(rl.stats("acct").limits[0].remaining, before)

    def test_threads_share_one_limiter(self):
        with pyrl.Limiter(self.db, default_limits=[pyrl.Limit(1, 3600, burst=40)]) as rl:
            counts = []

            def work():
                counts.append(sum(rl.allow("shared").allowed for _ in range(25)))

            threads = [threading.Thread(target=work) for _ in range(4)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            self.assertEqual(sum(counts), 40)
            self.assertEqual(rl.stats("shared").refused, 60)


class TestReading(Base):
    def test_stats_reset_keys_totals(self):
        with pyrl.Limiter(self.db, default_limits=[pyrl.Limit(1, 3600, burst=3)]) as rl:
            for key, n in (("user:a", 1), ("user:b", 5), ("ip:1", 2)):
                for _ in range(n):
                    rl.allow(key)
            st = rl.stats("user:b")
            self.assertTrue(st.exists)
            self.assertEqual((st.allowed, st.refused, st.units), (3, 2, 3))
            self.assertEqual(st.tier, "default")  # where the default limits are stored
            self.assertEqual(st.tier_source, "options")
            self.assertEqual(st.limits[0].remaining, 0)
            self.assertGreaterEqual(st.last_seen_ns, st.first_seen_ns)
            self.assertFalse(rl.stats("user:nobody").exists)
            self.assertEqual(rl.totals(), pyrl.Totals(3, 6, 2, 6))
            self.assertEqual([k.key for k in rl.keys()], ["ip:1", "user:a", "user:b"])
            self.assertEqual([k.key for k in rl.keys("user:*", sort="refused", limit=1)],
                             ["user:b"])
            rl.reset("user:b")
            self.assertFalse(rl.stats("user:b").exists)
            with self.assertRaises(pyrl.NotFound) as cm:
                rl.reset("user:b")
            self.assertIsInstance(cm.exception, LookupError)
            self.assertEqual(cm.exception.code, pyrl.RL_ENOTFOUND)

    def test_tiers_assign(self):
        tiers = self.write("tiers.yaml", TIERS)
        pyrl.validate_tiers(tiers)
        with pyrl.Limiter(self.db) as rl:
            rl.load_tiers(tiers)
            self.assertEqual(sorted(rl.tiers()), ["free", "pro", "unlimited"])
            self.assertEqual(rl.tiers()["unlimited"], [])
            rl.allow("user:x")
            self.assertEqual((rl.stats("user:x").tier, rl.stats("user:x").tier_source),
                             ("free", "default_tier"))
            self.assertEqual(rl.stats("admin:root").tier_source, "rule")
            rl.assign("user:x", "pro")
            self.assertEqual((rl.stats("user:x").tier, rl.stats("user:x").tier_source),
                             ("pro", "assigned"))
            rl.assign("user:x", None)
            self.assertEqual(rl.stats("user:x").tier, "free")
            with self.assertRaises(pyrl.NotFound):
                rl.assign("user:x", "gold")

    def test_bad_tiers_file(self):
        bad = self.write("bad.yaml", "version: 1\ntier: {}\n")
        with self.assertRaises(pyrl.Config) as cm:
            pyrl.validate_tiers(bad)
        self.assertRegex(str(cm.exception), r"bad\.yaml:2:1: unknown field 'tier'")
        with pyrl.Limiter(self.db) as rl, self.assertRaises(pyrl.Config) as cm:
            rl.load_tiers(bad)
        self.assertEqual(cm.exception.code, pyrl.RL_ECONFIG)
        self.assertIn("bad.yaml:2:1", str(cm.exception))
        with self.assertRaises(pyrl.Config):
            pyrl.Limiter(self.db, tiers_file=bad)


class TestErrors(Base):
    def test_argument_errors(self):
        with pyrl.Limiter(self.db, default_limits=[pyrl.Limit(5, 1)]) as rl:
            for key in ("", "a\x01b", "x" * 513):
                with self.assertRaises(pyrl.InvalidArgument) as cm:
                    rl.allow(key)
                self.assertIsInstance(cm.exception, ValueError)
                self.assertIn("invalid key", str(cm.exception))
            with self.assertRaises(pyrl.InvalidArgument):
                rl.allow("a\0b")
            with self.assertRaises(pyrl.InvalidArgument):
                rl.allow("k", cost=-1)
            with self.assertRaises(pyrl.TooBig) as cm:
                rl.allow("k", cost=6)
            self.assertEqual(cm.exception.code, pyrl.RL_ETOOBIG)
        with pyrl.Limiter(self.db) as rl:
            rl.delete_tier("default")  # the default limits the first Limiter stored
            with self.assertRaises(pyrl.NoLimit):
                rl.allow("k")
        with self.assertRaises(pyrl.InvalidArgument):
            pyrl.Limiter(self.db, default_limits=[pyrl.Limit(0, 1)])

    def test_integers_out_of_range(self):
        # ctypes keeps the low bits of an integer its C type cannot hold:
        # 2**64 + 1 would be charged as 1. Each is refused before librl.
        with pyrl.Limiter(self.db, default_limits=[pyrl.Limit(5, 60, burst=5)]) as rl:
            calls = [
                ("cost", lambda: rl.allow("k", 2**64 + 1)),
                ("cost", lambda: rl.allow("k", -2**63 - 1)),
                ("cost", lambda: rl.wait("k", 2**64 + 1, timeout=0)),
                ("cost", lambda: rl.reserve("k", 2**64 + 1)),
                ("cost of requests", lambda: rl.acquire("k", requests=2**64 + 1)),
                ("cost of tokens", lambda: rl.acquire("k", tokens=2**64)),
                ("cost of tokens", lambda: rl.lease("k", tokens=2**63).begin()),
                ("ttl", lambda: rl.lease("k", ttl=2**64).begin()),
                ("cool-down", lambda: rl.penalize("k", 2**64)),
                ("cool-down", lambda: rl.penalize("k", float("nan"))),
                ("limit", lambda: rl.keys(limit=-1)),
                ("limit", lambda: rl.keys(limit=2**64)),
                ("count", lambda: rl.set_tier("t", [pyrl.Limit(2**64 + 5, 1)])),
                ("burst", lambda: rl.set_tier("t", [pyrl.Limit(5, 1, burst=2**64 + 5)])),
                ("period", lambda: rl.set_tier("t", [pyrl.Limit(5, 2.0**64)])),
                ("busy_timeout", lambda: pyrl.Limiter(self.db, busy_timeout=2**32)),
                ("file_mode", lambda: pyrl.Limiter(self.db, file_mode=2**32 + 0o600)),
            ]
            for what, call in calls:
                with self.assertRaises(pyrl.OutOfRange, msg=what) as cm:
                    call()
                e = cm.exception
                self.assertIsInstance(e, ValueError)
                self.assertIsInstance(e, OverflowError)
                self.assertIsInstance(e, pyrl.InvalidArgument)
                self.assertTrue(str(e).startswith(what + " "), str(e))
                self.assertRegex(str(e), "out of range|NaN")
            with self.assertRaises(TypeError):
                rl.allow("k", 1.5)
            # nothing was charged, and nothing was stored
            self.assertEqual(rl.stats("k").limits[0].remaining, 5)
            self.assertNotIn("t", rl.tiers())
            # a timeout longer than librl's cap on waits means "no limit":
            # it waits (about 12 s here would be its turn, so a short one
            # with a cancel), never times out at once
            for i in range(5):
                self.assertTrue(rl.allow("k"))
            token = pyrl.CancelToken()
            threading.Timer(0.3, token.cancel).start()
            t0 = time.monotonic()
            with self.assertRaises(pyrl.Canceled):
                rl.wait("k", timeout=2**64, cancel=token)
            self.assertGreater(time.monotonic() - t0, 0.2)
            self.assertTrue(rl.reserve("k", max_delay=float("inf")).ok)
            self.assertTrue(rl.reserve("k", max_delay=2**64).ok)

    def test_tiers_file_not_regular(self):
        # a FIFO would block rl_open until some process writes to it
        fifo = os.path.join(self.tmp.name, "tiers.yaml")
        os.mkfifo(fifo)
        unblock = threading.Timer(10, lambda: os.close(os.open(fifo, os.O_RDWR)))
        unblock.start()
        try:
            t0 = time.monotonic()
            with self.assertRaises(pyrl.StoreError) as cm:
                pyrl.Limiter(self.db, tiers_file=fifo)
            self.assertLess(time.monotonic() - t0, 5)
            self.assertIn("not a regular file (a FIFO)", str(cm.exception))
            with self.assertRaises(pyrl.StoreError):
                pyrl.validate_tiers(fifo)
            with self.assertRaises(pyrl.StoreError) as cm:
                pyrl.validate_tiers("/dev/zero")
            self.assertIn("not a regular file (a character device)", str(cm.exception))
        finally:
            unblock.cancel()

    def test_unreachable_server(self):
        # a loopback port nothing listens on: the connection is refused
        import socket
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        with self.assertRaises(pyrl.Unreachable) as cm:
            pyrl.Limiter("redis://127.0.0.1:%d/0" % port)
        self.assertIsInstance(cm.exception, ConnectionError)
        self.assertIsInstance(cm.exception, pyrl.StoreFailure)
        self.assertEqual(cm.exception.code, pyrl.RL_ECONNECT)

    def test_readonly_fail_closed_and_open(self):
        pyrl.Limiter(self.db).close()
        with pyrl.Limiter(self.db, default_limits=["5/s"], readonly=True) as rl:
            with self.assertRaises(pyrl.ReadOnly) as cm:
                rl.allow("k")
            self.assertIsInstance(cm.exception, pyrl.StoreFailure)
            self.assertEqual(cm.exception.code, pyrl.RL_EREADONLY)
            self.assertIn("read-only", str(cm.exception))
            self.assertFalse(rl.stats("k").exists)  # reading still works
        with pyrl.Limiter(self.db, default_limits=["5/s"], readonly=True, fail_open=True) as rl:
            res = rl.allow("k")
            self.assertTrue(res.allowed)
            self.assertTrue(res.degraded)
            self.assertTrue(rl.acquire(["k", "global"]).degraded)
            self.assertTrue(rl.wait("k", timeout=1).degraded)
            with self.assertRaises(pyrl.ReadOnly):  # nothing to degrade to
                rl.reset("k")

    def test_untrusted_file(self):
        # a database file every user may write: anyone could have planted it
        path = os.path.join(self.tmp.name, "planted.db")
        with open(path, "w"):
            pass
        os.chmod(path, 0o666)
        with self.assertRaises(pyrl.Untrusted) as cm:
            pyrl.Limiter(path)
        self.assertIsInstance(cm.exception, PermissionError)
        self.assertNotIsInstance(cm.exception, pyrl.StoreFailure)  # fail_open cannot admit it
        self.assertEqual(cm.exception.code, pyrl.RL_EPERM)
        self.assertIn(path + ": mode 0666 is wider than file_mode 0600", str(cm.exception))
        self.assertEqual(os.path.getsize(path), 0)
        os.chmod(path, 0o660)  # a group's mode: only with the group set-up chosen
        with self.assertRaises(pyrl.Untrusted):
            pyrl.Limiter(path, readonly=True)
        pyrl.Limiter(path, file_mode=0o660, shared_group=True).close()

    def test_open_errors(self):
        path = self.write("not-a-db", "hello, this is not SQLite\n" * 100)
        os.chmod(path, 0o600)  # a wider mode is refused first (test_untrusted_file)
        with self.assertRaises(pyrl.Corrupt) as cm:
            pyrl.Limiter(path)
        self.assertTrue(str(cm.exception))
        with self.assertRaises(pyrl.StoreFailure):
            pyrl.Limiter(os.path.join(self.tmp.name, "no", "such", "dir", "rl.db"))

    def test_closed_and_fork(self):
        rl = pyrl.Limiter(self.db, default_limits=["5/s"])
        rl.allow("k")
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: the parent's handle refuses, a new one works
            try:
                try:
                    rl.allow("k")
                    code = 1
                except pyrl.RLError as e:
                    code = 0 if "fork" in str(e) else 2
                rl.close()
                with pyrl.Limiter(self.db, default_limits=["5/s"]) as mine:
                    if not mine.allow("k"):
                        code = 3
            except BaseException:
                code = 4
            os.write(w, bytes([code]))
            os._exit(0)
        os.close(w)
        code = os.read(r, 1)
        os.close(r)
        os.waitpid(pid, 0)
        self.assertEqual(code, b"\0")
        self.assertEqual(rl.stats("k").allowed, 2)
        rl.close()
        rl.close()
        with self.assertRaises(pyrl.RLError):
            rl.allow("k")


class TestDefaults(Base):
    """Default limits are the database's, shared by every Limiter (and C
    program) on it: the same ones agree, other ones raise DefaultsMismatch
    unless override_defaults replaces them, none uses the stored ones."""

    def test_shared_mismatch_override(self):
        with pyrl.Limiter(self.db, default_limits=[{"rate": "60/min", "burst": 10}]) as a:
            self.assertEqual(a.allow("user:alice", cost=4).remaining, 6)
            with pyrl.Limiter(self.db, default_limits=[pyrl.Limit(60, 60, burst=10)]) as b:
                self.assertEqual(b.allow("user:alice", cost=4).remaining, 2)
            with self.assertRaises(pyrl.DefaultsMismatch) as cm:
                pyrl.Limiter(self.db, default_limits=["60/min"])  # burst 60, not 10
            self.assertEqual(cm.exception.code, pyrl.RL_EMISMATCH)
            self.assertIn("RL_OPEN_OVERRIDE_DEFAULTS", str(cm.exception))
            with pyrl.Limiter(self.db) as none:
                st = none.stats("user:alice")
                self.assertEqual((st.tier, st.tier_source), ("default", "options"))
                self.assertEqual([(l.count, l.burst) for l in st.limits], [(60, 10)])
                with pyrl.Limiter(self.db, default_limits=["2/min"], override_defaults=True):
                    pass
                # every handle applies the new ones from its next decision
                res = a.allow("user:bob", cost=2)
                self.assertEqual((res.allowed, res.limit, res.remaining), (True, 2, 0))
                self.assertFalse(none.allow("user:bob"))

    def test_open_flags(self):
        self.assertEqual((pyrl.RL_OPEN_ANY_RESOURCE, pyrl.RL_OPEN_OVERRIDE_DEFAULTS), (4, 8))
        with pyrl.Limiter(self.db, default_limits=["5/s"]) as rl:
            with self.assertRaises(pyrl.NoLimit):
                rl.acquire("k", tokenz=1)
        with pyrl.Limiter(self.db, any_resource=True) as rl:
            self.assertTrue(rl.acquire("k", tokenz=1))


class TestCrossProcess(Base):
    """A Python process and a C process share a key on one database file."""

    def test_shared_bound(self):
        tiers = self.write("tiers.yaml", TIERS)  # default tier free: 50/s, burst 20
        seconds = 1.5
        with pyrl.Limiter(self.db, tiers_file=tiers) as rl:
            c = subprocess.Popen([helper(), "hammer", self.db, "user:shared", str(seconds)],
                                 stdout=subprocess.PIPE, text=True)
            py_admitted = 0
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                py_admitted += rl.allow("user:shared").allowed
            out, _ = c.communicate(timeout=60)
            self.assertEqual(c.returncode, 0)
            c_admitted = int(out.split()[1])
            st = rl.stats("user:shared")
        lim = st.limits[0]
        elapsed = st.last_seen_ns - st.first_seen_ns
        bound = lim.burst + lim.count * elapsed // lim.period_ns + 1
        print("\n  python %d + C %d = %d admitted in %.2f s, bound %d" %
              (py_admitted, c_admitted, st.units, elapsed / 1e9, bound), file=sys.stderr)
        self.assertEqual(st.units, py_admitted + c_admitted)
        self.assertGreater(py_admitted, 0)
        self.assertGreater(c_admitted, 0)
        self.assertLessEqual(st.units, bound)
        # and the limit was really the bottleneck: close to the bound
        self.assertGreaterEqual(st.units, bound - 10)


if __name__ == "__main__":
    unittest.main(verbosity=2)
