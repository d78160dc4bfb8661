#!/usr/bin/env python3
"""test_http.py - pyrl's HTTP helpers (key_for, keys_for, key_build,
format_headers) against librl.

    RL_LIBRARY=build/librl.so PYRL_HELPER=build/tests/pyrl_helper \\
        python3 bindings/python/tests/test_http.py [unittest options]

ctest runs it that way (test_python_http). The expected strings are those
of librl's own tests (tests/core/test_headers.c); the cases compared with
the C helper (helper.c `keys`, `headers`) must give what a C program gets
for the same input, byte for byte.
"""
import os
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

import pyrl  # noqa: E402

sys.path.insert(0, HERE)
import test_pyrl  # noqa: E402  (a module, not its TestCases: they run in their own ctest)

S = pyrl.SECOND
IETF, CLASSIC = pyrl.RL_HEADERS_IETF, pyrl.RL_HEADERS_CLASSIC


def result(allowed, name, limit, remaining, retry_ns, reset_ns, degraded=False):
    return pyrl.Result(allowed, remaining, retry_ns, reset_ns, limit, name, degraded)


def c_keys(user=None, ip=None, agent=None, org=None):
    """(key, keys) as rl_key_for and rl_keys_for give them in C."""
    args = ["-" if v is None else v for v in (user, ip, agent, org)]
    out = subprocess.run([test_pyrl.helper(), "keys"] + args, check=True, capture_output=True,
                         text=True).stdout
    key = [ln[4:] for ln in out.splitlines() if ln.startswith("key ")]
    keys = [ln[5:] for ln in out.splitlines() if ln.startswith("keys ")]
    return key[0], keys


def c_headers(res, window_ns, flags):
    """What rl_format_headers writes in C: the text, or "rc N"."""
    args = [str(int(res.allowed)), str(res.limit), str(res.remaining), str(res.retry_after_ns),
            str(res.reset_after_ns), res.limit_name, str(int(res.degraded)), str(window_ns),
            str(flags)]
    return subprocess.run([test_pyrl.helper(), "headers"] + args, check=True,
                          capture_output=True).stdout.decode()


def text(pairs):
    return "".join("%s: %s\r\n" % p for p in pairs)


class TestKeys(unittest.TestCase):
    def test_key_for(self):
        self.assertEqual(pyrl.key_for(user="alice"), "user:alice")
        self.assertEqual(pyrl.key_for(ip="203.0.113.7"), "ip:203.0.113.7")
        self.assertEqual(pyrl.key_for(), "global")
        self.assertEqual(pyrl.key_for(user="", ip="", agent=None, org=""), "global")
        # the most specific identity wins: user, agent, org, then ip
        self.assertEqual(pyrl.key_for(user="u", ip="i", agent="a", org="o"), "user:u")
        self.assertEqual(pyrl.key_for(ip="i", agent="a", org="o"), "agent:a")
        self.assertEqual(pyrl.key_for(ip="i", org="o"), "org:o")

    def test_escaping(self):
        # ':' cannot fake a kind, '%' an escape, '*' '?' '\\' a glob
        self.assertEqual(pyrl.key_for(user="alice:admin"), "user:alice%3Aadmin")
        self.assertEqual(pyrl.key_for(user="100%"), "user:100%25")
        self.assertEqual(pyrl.key_for(org="a* b?\\"), "org:a%2A%20b%3F%5C")
        self.assertEqual(pyrl.key_for(user="global"), "user:global")
        # UTF-8 stays, bytes that are not UTF-8 are escaped one by one
        self.assertEqual(pyrl.key_for(user="zoë"), "user:zoë")
        self.assertEqual(pyrl.key_for(user=b"\xffa\x01"), "user:%FFa%01")
        self.assertEqual(pyrl.key_build("tenant", "acme:eu"), "tenant:acme%3Aeu")
        self.assertEqual(pyrl.key_build(b"tenant", b"x"), "tenant:x")

    def test_keys_for(self):
        self.assertEqual(pyrl.keys_for(user="u", ip="i", agent="a", org="o"),
                         ["user:u", "agent:a", "org:o", "ip:i", "global"])
        self.assertEqual(len(pyrl.keys_for(user="u", ip="i", agent="a", org="o")),
                         pyrl.RL_KEYS_FOR_MAX)
        self.assertEqual(pyrl.keys_for(ip="10.0.0.1", user="a:b"),
                         ["user:a%3Ab", "ip:10.0.0.1", "global"])
        self.assertEqual(pyrl.keys_for(), ["global"])
        self.assertEqual(pyrl.keys_for(user=""), ["global"])

    def test_same_as_c(self):
        cases = [dict(), dict(user="alice"), dict(user="a:b%c", ip="::1"),
                 dict(ip="i", agent="a b", org="o*"), dict(user="u", ip="i", agent="a", org="o"),
                 dict(org="ü?", user=""), dict(agent="x" * 500)]
        for who in cases:
            with self.subTest(**who):
                key, keys = c_keys(**who)
                self.assertEqual(pyrl.key_for(**who), key)
                self.assertEqual(pyrl.keys_for(**who), keys)

    def test_bad_arguments(self):
        for call in (lambda: pyrl.key_for(user="a\0b"), lambda: pyrl.keys_for(ip="1\0"),
                     lambda: pyrl.key_for(org=b"\0"), lambda: pyrl.key_build("user", "a\0"),
                     lambda: pyrl.key_build("us\0er", "a")):
            with self.assertRaises(pyrl.InvalidArgument) as cm:
                call()
            self.assertIn("NUL", str(cm.exception))
        # too long once escaped (each ':' is 3 bytes): refused, never cut
        # short or passed on to the next identity
        for call in (lambda: pyrl.key_for(user=":" * 200, ip="1.2.3.4"),
                     lambda: pyrl.keys_for(agent="x" * 600),
                     lambda: pyrl.key_build("user", "x" * 508)):
            with self.assertRaises(pyrl.InvalidArgument) as cm:
                call()
            self.assertEqual(cm.exception.code, pyrl.RL_EINVAL)
        self.assertEqual(pyrl.key_build("user", "x" * 507), "user:" + "x" * 507)
        with self.assertRaisesRegex(pyrl.InvalidArgument, "user cannot make a key"):
            pyrl.key_for(user="x" * 600, ip="1.2.3.4")
        for kind, value in (("a:b", "c"), ("", "c"), ("user", ""), ("bad kind", "c")):
            with self.assertRaises(pyrl.InvalidArgument):
                pyrl.key_build(kind, value)
        for call in (lambda: pyrl.key_for(user=42), lambda: pyrl.key_build("user", None),
                     lambda: pyrl.key_build(None, "x")):
            with self.assertRaises(TypeError):
                call()


class TestHeaders(unittest.TestCase):
    def test_admitted(self):
        res = result(True, "default", 100, 50, 0, 30 * S)
        self.assertEqual(pyrl.format_headers(res, 10 * S),
                         [("RateLimit-Policy", '"default";q=100;w=10'),
                          ("RateLimit", '"default";r=50;t=30')])
        # w= needs a window; seconds are rounded up
        res = result(True, "limit1", 10, 9, 0, 100_000_000)
        self.assertEqual(pyrl.format_headers(res),
                         [("RateLimit-Policy", '"limit1";q=10'),
                          ("RateLimit", '"limit1";r=9;t=1')])
        self.assertEqual(pyrl.format_headers(res, S, ietf=False, classic=True),
                         [("X-RateLimit-Limit", "10"), ("X-RateLimit-Remaining", "9"),
                          ("X-RateLimit-Reset", "1")])
        self.assertNotIn("Retry-After", dict(pyrl.format_headers(res, S, classic=True)))

    def test_refused(self):
        res = result(False, "m", 60, 0, 2 * S, 60 * S + 1)
        self.assertEqual(pyrl.format_headers(res, 60 * S, classic=True),
                         [("RateLimit-Policy", '"m";q=60;w=60'), ("RateLimit", '"m";r=0;t=2'),
                          ("X-RateLimit-Limit", "60"), ("X-RateLimit-Remaining", "0"),
                          ("X-RateLimit-Reset", "61"), ("Retry-After", "2")])
        # never "Retry-After: 0", which would invite a retry loop
        res = result(False, "limit1", 10, 0, 0, 0)
        self.assertEqual(dict(pyrl.format_headers(res, S))["Retry-After"], "1")

    def test_no_deciding_limit(self):
        # no limit applied (what rl_allow gives then): nothing to advertise
        res = result(True, "", 0, (1 << 63) - 1, 0, 0)
        self.assertEqual(pyrl.format_headers(res, S, classic=True), [])
        # the store failed, fail closed: only a retry hint
        res = result(False, "", 0, 0, 0, 0)
        self.assertEqual(pyrl.format_headers(res, S, classic=True), [("Retry-After", "1")])
        # fail open: admitted without the store, no numbers known
        res = result(True, "limit1", 0, 0, 0, 0, degraded=True)
        self.assertEqual(pyrl.format_headers(res, S, classic=True), [])

    def test_same_as_c(self):
        cases = [result(True, "default", 100, 50, 0, 30 * S),
                 result(False, "dynamic", 15, 0, 20 * S, 20 * S),
                 result(True, "f.1:x-y_z", 5, 4, 0, 1),
                 result(False, "limit1", 10, 0, 100_000_000, 1_500_000_000),
                 result(True, "", 0, 0, 0, 0), result(False, "", 0, 0, 3 * S + 1, 0),
                 result(True, "x", 0, 0, 0, 0, degraded=True),
                 result(True, "n" * 63, 999_999_999_999_999, 999_999_999_999_999, 0,
                        (1 << 63) - 1)]
        for res in cases:
            for window in (0, 1, 1500_000_000, 86400 * S):
                for ietf, classic in ((True, False), (False, True), (True, True)):
                    with self.subTest(res=res, window=window, ietf=ietf, classic=classic):
                        flags = (IETF if ietf else 0) | (CLASSIC if classic else 0)
                        got = pyrl.format_headers(res, window, ietf=ietf, classic=classic)
                        self.assertEqual(text(got), c_headers(res, window, flags))

    def test_decisions_of_a_limiter(self):
        with tempfile.TemporaryDirectory(prefix="pyrl-http.") as tmp, \
                pyrl.Limiter(os.path.join(tmp, "rl.db"),
                             default_limits=[pyrl.Limit(2, 60, name="rpm")]) as rl:
            first, second, refused = (rl.allow("user:alice") for _ in range(3))
        self.assertEqual(pyrl.format_headers(first, 60 * S),
                         [("RateLimit-Policy", '"rpm";q=2;w=60'), ("RateLimit", '"rpm";r=1;t=30')])
        self.assertEqual(dict(pyrl.format_headers(second, 60 * S))["RateLimit"], '"rpm";r=0;t=60')
        headers = dict(pyrl.format_headers(refused, 60 * S, classic=True))
        retry = int(headers["Retry-After"])
        self.assertTrue(29 <= retry <= 30, retry)
        self.assertEqual(headers["RateLimit"], '"rpm";r=0;t=%d' % retry)
        self.assertEqual(headers["X-RateLimit-Remaining"], "0")

    def test_no_style_is_refused_as_in_c(self):
        for res in (result(True, "rpm", 2, 1, 0, S), result(False, "rpm", 2, 0, S, S)):
            self.assertEqual(c_headers(res, 0, 0), "rc %d" % pyrl.RL_EINVAL)
            with self.assertRaisesRegex(pyrl.InvalidArgument, "no header style"):
                pyrl.format_headers(res, ietf=False, classic=False)

    def test_bad_arguments(self):
        ok = result(True, "rpm", 2, 1, 0, S)
        for bad in (None, {"allowed": True}, (True, 1, 0, 0, 2, "rpm", False), "rpm"):
            with self.assertRaisesRegex(TypeError, "pyrl.Result"):
                pyrl.format_headers(bad)
        with self.assertRaisesRegex(pyrl.InvalidArgument, "NUL"):
            pyrl.format_headers(result(True, "r\0m", 2, 1, 0, S))
        with self.assertRaisesRegex(pyrl.InvalidArgument, "longer than 63"):
            pyrl.format_headers(result(True, "n" * 64, 2, 1, 0, S))
        with self.assertRaisesRegex(pyrl.InvalidArgument, "negative"):
            pyrl.format_headers(ok, -1)
        with self.assertRaisesRegex(pyrl.InvalidArgument, "must not be negative"):
            pyrl.format_headers(result(False, "rpm", 2, 0, -1, S))
        with self.assertRaisesRegex(pyrl.InvalidArgument, "structured-field"):
            pyrl.format_headers(result(True, "rpm", 10 ** 15, 1, 0, S))
        with self.assertRaisesRegex(pyrl.InvalidArgument, "not a valid name"):
            pyrl.format_headers(result(True, "bad name", 2, 1, 0, S))
        with self.assertRaises(pyrl.OutOfRange):
            pyrl.format_headers(result(True, "rpm", 2, 1 << 63, 0, S))
        with self.assertRaises(pyrl.OutOfRange):
            pyrl.format_headers(ok, 1 << 63)
        with self.assertRaises(TypeError):
            pyrl.format_headers(ok, 1.5)


if __name__ == "__main__":
    unittest.main(verbosity=2)
