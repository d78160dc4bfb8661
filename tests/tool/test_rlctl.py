#!/usr/bin/env python3
"""test_rlctl.py - end-to-end tests of rlctl: the real binary on real
database files in a temporary directory.

    test_rlctl.py RLCTL [unittest options]      (or RLCTL=path test_rlctl.py)

Databases get their tiers the way an operator's would, by `rlctl tiers load`
of a YAML file, and their keys by `rlctl allow`. Every command's human
output, its --json (parsed by json.loads), `stats --format prometheus`
(checked line by line by a small parser of the exposition format), exit
codes and errors are checked; `watch` runs under a pseudo-terminal, the
man page is rendered and the bash completion run. Standard library only.

The tests live in one module per group of commands, each a mixin of
RlctlTest; this file puts them together and runs them (so that one ctest
entry runs all of them, over a file and, with RL_TEST_REDIS, over Redis):
    rlctl_common.py   tiers files, exit codes, the Prometheus checker,
                      redis_call, RlctlCase (the temporary database, helpers)
    rlctl_usage.py    help, usage errors, version, man page, completion,
                      output and database-choice errors
    rlctl_writing.py  allow, reset, prune
    rlctl_reading.py  stats, inspect, keys, watch
    rlctl_tiers.py    assign/which/unassign, tiers validate/load/list/show
    rlctl_admin.py    doctor, export, import
    rlctl_trust.py    foreign, read-only and planted databases
"""
import os
import sys
import time
import unittest

import rlctl_admin
import rlctl_common
import rlctl_reading
import rlctl_tiers
import rlctl_trust
import rlctl_usage
import rlctl_writing
from rlctl_common import redis_call

# Every module that runs rlctl: main() gives each the binary's path.
MODULES = (rlctl_common, rlctl_usage, rlctl_writing, rlctl_reading, rlctl_tiers, rlctl_admin,
           rlctl_trust)

RLCTL = None


class RlctlTest(rlctl_usage.UsageTests, rlctl_writing.WritingTests,
                rlctl_reading.ReadingTests, rlctl_tiers.TiersTests, rlctl_admin.AdminTests,
                rlctl_trust.TrustTests, rlctl_common.RlctlCase):
    """Every test of every module, over a database file."""


class RlctlRedisTest(RlctlTest):
    """Every test above again with --db redis://... (RL_TEST_REDIS), each
    under its own key prefix; skipped without RL_TEST_REDIS."""

    SEQ = [0]

    def setUp(self):
        url = os.environ.get("RL_TEST_REDIS")
        if not url:
            self.skipTest("RL_TEST_REDIS is not set")
        self.SEQ[0] += 1
        sep = "&" if "?" in url else "?"
        self.redis_db = f"{url}{sep}prefix=rlctl{os.getpid()}.{time.monotonic_ns()}.{self.SEQ[0]}:"
        super().setUp()

    @property
    def db(self):
        return self.redis_db

    @db.setter
    def db(self, value):
        pass  # the file path the base class sets is not used

    REDIS = True

    def prefix(self):
        import urllib.parse
        return urllib.parse.parse_qs(urllib.parse.urlsplit(self.db).query)["prefix"][0]

    def name(self, what):
        """A Redis key of the store's, data format 2: {PREFIX}what."""
        return f"{{{self.prefix()}}}{what}"

    def plant_key(self, key, allowed):
        import struct
        row = b"\x01\x00" + struct.pack("<5q", allowed, 0, allowed, 1, 1)
        redis_call(self.db, "HSET", self.name(f"k:{key}"), "v", "planted", "r", row)
        redis_call(self.db, "ZADD", self.name("keys"), "0", key)

    def damage_policy(self):
        redis_call(self.db, "HSET", self.name("policy"), "b", b"\x01garbage")

    def test_doctor(self):
        self.allow("m:d")
        out = self.ok("doctor")
        for check in ("store", "eviction", "persistence", "policy", "bucket states",
                      "assignments"):
            self.assertRegex(out, rf"(?m)^{check} +(ok|warn) +\S")
        self.assertRegex(out, r"(?m)^store +ok +redis \d")
        d = self.json_of("doctor", "--json")
        self.assertTrue(d["ok"])
        self.assertEqual(d["database"], self.db)

    def test_reading_commands_on_a_read_only_database(self):
        self.skipTest("file permissions: on Redis, access is the server's ACLs")

    def test_watch_reads_a_bounded_slice(self):
        self.skipTest("fill_keys writes a database file")

    def test_watch_holds_no_read_transaction_between_refreshes(self):
        self.skipTest("read transactions and the WAL are SQLite's")

    def test_refused_file(self):
        self.skipTest("file permissions: on Redis, access is the server's ACLs")


def main():
    global RLCTL
    args = sys.argv[1:]
    if args and not args[0].startswith("-"):
        RLCTL = args.pop(0)
    else:
        RLCTL = os.environ.get("RLCTL")
    if not RLCTL or not os.access(RLCTL, os.X_OK):
        sys.exit("usage: test_rlctl.py RLCTL [unittest options] (or set $RLCTL)")
    RLCTL = os.path.abspath(RLCTL)
    for m in MODULES:
        m.RLCTL = RLCTL
    unittest.main(argv=[sys.argv[0]] + args)


if __name__ == "__main__":
    main()
