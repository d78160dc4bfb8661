#!/usr/bin/env python3
"""test_http.py - pyrl's HTTP helpers (key_for, keys_for, key_build)
against librl.

    RL_LIBRARY=build/librl.so PYRL_HELPER=build/tests/pyrl_helper \\
        python3 bindings/python/tests/test_http.py [unittest options]

ctest runs it that way (test_python_http). The cases compared with the C
helper (helper.c `keys`) must give what a C program gets for the same
input, byte for byte.
"""
import os
import subprocess
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

import pyrl  # noqa: E402

sys.path.insert(0, HERE)
import test_pyrl  # noqa: E402  (a module, not its TestCases: they run in their own ctest)


def c_keys(user=None, ip=None, agent=None, org=None):
    """(key, keys) as rl_key_for and rl_keys_for give them in C."""
    args = ["-" if v is None else v for v in (user, ip, agent, org)]
    out = subprocess.run([test_pyrl.helper(), "keys"] + args, check=True, capture_output=True,
                         text=True).stdout
    key = [ln[4:] for ln in out.splitlines() if ln.startswith("key ")]
    keys = [ln[5:] for ln in out.splitlines() if ln.startswith("keys ")]
    return key[0], keys


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


if __name__ == "__main__":
    unittest.main(verbosity=2)
