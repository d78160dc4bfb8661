"""rlctl_writing.py - the commands that decide or forget: allow (and
--wait), reset (of keys, of selections, --all on a terminal), prune."""
import math
import os
import signal
import subprocess
import time

from rlctl_common import ERROR, USAGE

RLCTL = None  # the binary under test: set by test_rlctl.main()


class WritingTests:
    """Tests of allow, reset and prune: mixed into test_rlctl.RlctlTest."""

    # ---- allow ----------------------------------------------------------

    def test_allow_until_refused(self):
        for i in range(10):
            p = self.run_raw("allow", "m:alice")
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertRegex(p.stdout, rf"^allowed remaining={9 - i} limit=10 reset_after=\S+\n$")
        p = self.fails(1, "allow", "m:alice")
        self.assertRegex(p.stdout, r"^refused retry_after=\d[\dhms.]* limit=hourly\n$")
        self.assertEqual(p.stderr, "")

    def test_allow_refuses_after_burst(self):
        # The burst passes, then everything is refused: on the metered tier
        # (10/hour) nothing refills while processes start, however slowly
        # (valgrind), so the sequence is exact.
        codes = [self.allow("m:burst") for _ in range(13)]
        self.assertEqual(codes, [0] * 10 + [1] * 3)
        # On the free tier (5/s, burst 10) refills do come in meanwhile:
        # the burst passes, and what passes beyond it never exceeds the
        # rate times the time it took, whatever that time was.
        start = time.monotonic()
        codes = [self.allow("ip:10.0.0.1") for _ in range(15)]
        elapsed = time.monotonic() - start
        self.assertEqual(codes[:10], [0] * 10)
        self.assertLessEqual(codes.count(0), 10 + math.ceil(5 * elapsed) + 1)

    def test_allow_json_and_quiet(self):
        d = self.json_of("allow", "--json", "--cost", "4", "m:bob")
        self.assertEqual(d, {"key": "m:bob", "cost": 4, "allowed": True, "timed_out": False,
                             "degraded": False, "limit_name": "hourly", "limit": 10,
                             "remaining": 6, "retry_after_ns": 0,
                             "reset_after_ns": d["reset_after_ns"]})
        self.assertGreater(d["reset_after_ns"], 0)
        p = self.run_raw("allow", "--quiet", "--cost", "6", "m:bob")
        self.assertEqual((p.returncode, p.stdout, p.stderr), (0, "", ""))
        p = self.run_raw("allow", "--quiet", "m:bob")
        self.assertEqual((p.returncode, p.stdout, p.stderr), (1, "", ""))
        d = self.json_of("allow", "--json", "m:bob", code=1)
        self.assertFalse(d["allowed"])
        self.assertEqual(d["limit_name"], "hourly")
        self.assertGreater(d["retry_after_ns"], 5 * 60 * 10**9)

    def test_allow_errors(self):
        p = self.fails(ERROR, "allow", "--cost", "11", "m:carol")
        self.assertRegex(p.stderr, r"^rlctl: .*burst 10.*\n$")
        p = self.fails(ERROR, "allow", "bad\x01key")
        self.assertRegex(p.stderr, r"^rlctl: invalid key")

    def test_allow_wait(self):
        self.assertEqual(self.allow("m:dave", "--cost", "10"), 0)
        p = self.fails(1, "allow", "--wait", "50ms", "m:dave")
        self.assertRegex(p.stdout, r"^timed out retry_after=\S+ limit=hourly\n$")
        d = self.json_of("allow", "--json", "--wait", "1s", "m:dave", code=1)
        self.assertTrue(d["timed_out"])
        self.assertFalse(d["allowed"])
        # On the free tier one unit comes back every 200 ms.
        self.assertEqual(self.allow("ip:wait", "--cost", "10"), 0)
        start = time.monotonic()
        p = self.run_raw("allow", "--wait", "5s", "ip:wait")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertTrue(p.stdout.startswith("allowed "), p.stdout)
        self.assertLess(time.monotonic() - start, 5)

    def test_allow_wait_interrupted_returns_the_reservation(self):
        self.assertEqual(self.allow("m:erin", "--cost", "10"), 0)
        # 10/hour: one unit is 6 minutes away, so this sleeps until ^C.
        proc = subprocess.Popen([RLCTL, "--db", self.db, "allow", "--wait", "1h", "m:erin"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=self.env,
                                encoding="utf-8")
        # Interrupt only once the wait holds its reservation (the next unit
        # then shows ~12 minutes away), so the handler is surely in place.
        deadline = time.monotonic() + 30
        while self.json_of("inspect", "--json", "m:erin")["limits"][0]["retry_after_ns"] \
                <= 7 * 60 * 10**9:
            self.assertLess(time.monotonic(), deadline, "the wait never reserved")
            self.assertIsNone(proc.poll())
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
        self.assertEqual(proc.returncode, -signal.SIGINT, err)
        self.assertEqual(out, "")
        self.assertRegex(err, r"^rlctl: interrupted")
        # Returned: the next unit is still ~6 minutes away, not 12.
        d = self.json_of("inspect", "--json", "m:erin")
        self.assertEqual(d["limits"][0]["remaining"], 0)
        self.assertLessEqual(d["limits"][0]["retry_after_ns"], 6 * 60 * 10**9)


    # ---- reset ----------------------------------------------------------

    def test_reset(self):
        self.allow("m:r1", "--cost", "10")
        self.allow("m:r2")
        self.assertEqual(self.ok("reset", "m:r1"), "reset 1 key(s)\n")
        p = self.fails(ERROR, "stats", "m:r1")
        self.assertEqual(p.stderr, "rlctl: no such key: 'm:r1'\n")
        d = self.json_of("stats", "--json")
        self.assertEqual([k["key"] for k in d["keys"]], ["m:r2"])
        self.assertEqual(d["totals"]["keys"], 1)
        self.assertEqual(self.allow("m:r1", "--cost", "10"), 0)  # full again

    def test_reset_unknown_key_resets_the_others(self):
        self.allow("m:r3")
        self.allow("m:r4")
        p = self.fails(ERROR, "reset", "m:r3", "nope", "m:r4")
        self.assertEqual(p.stdout, "reset 2 key(s)\n")
        self.assertEqual(p.stderr, "rlctl: no such key: 'nope'\n")
        self.assertEqual(self.json_of("stats", "--json")["keys"], [])


    # ---- reset by selection -----------------------------------------------

    def test_reset_selections(self):
        for key in ("m:a1", "m:a2", "m:b1", "ip:1", "user:x"):
            self.allow(key)
        self.ok("assign", "m:pro", "pro")
        self.allow("m:pro")
        out = self.ok("reset", "--dry-run", "--match", "m:a*")
        self.assertEqual(out, "m:a1\nm:a2\nwould reset 2 key(s)\n")
        self.assertEqual(len(self.json_of("stats", "--json")["keys"]), 6)
        self.assertEqual(self.ok("reset", "--match", "m:a*"), "reset 2 key(s)\n")
        self.assertEqual(self.ok("reset", "--dry-run", "--tier", "free"), "ip:1\nuser:x\nwould reset 2 key(s)\n")
        self.assertEqual(self.ok("reset", "--tier", "free", "--match", "ip:*"), "reset 1 key(s)\n")
        self.assertEqual(sorted(k["key"] for k in self.json_of("stats", "--json")["keys"]),
                         ["m:b1", "m:pro", "user:x"])
        self.assertEqual(self.ok("reset", "--dry-run", "m:b1"), "m:b1\nwould reset 1 key(s)\n")
        p = self.fails(ERROR, "reset", "--tier", "gold")
        self.assertEqual((p.stdout, p.stderr), ("", "rlctl: no such tier: 'gold'\n"))
        # --all: refused without --yes when stdin is not a terminal
        p = self.fails(USAGE, "reset", "--all")
        self.assertIn("--yes", p.stderr)
        self.assertEqual(self.ok("reset", "--all", "--dry-run").splitlines()[-1], "would reset 3 key(s)")
        self.assertEqual(self.ok("reset", "--all", "--yes"), "reset 3 key(s)\n")
        # the assigned key keeps its tier; its counters are gone
        self.assertEqual(self.ok("which", "m:pro"), "pro (assigned)\n")
        d = self.json_of("stats", "--json", "m:pro")
        self.assertEqual(d["keys"][0]["allowed"], 0)


    def test_reset_all_asks_on_a_terminal(self):
        self.allow("m:t1")
        self.allow("m:t2")
        argv = [RLCTL, "--db", self.db, "reset", "--all"]
        status, out = self.run_pty(argv, b"n\n", until=lambda o: b"[y/N]" in o)
        self.assertEqual(os.waitstatus_to_exitcode(status), 1, out)
        self.assertIn(b"reset all 2 key(s) of " + self.db.encode() + b"? [y/N]", out)
        self.assertIn(b"not confirmed; nothing was reset", out)
        self.assertEqual(self.json_of("stats", "--json")["totals"]["keys"], 2)
        status, out = self.run_pty(argv, b"y\n", until=lambda o: b"[y/N]" in o)
        self.assertEqual(os.waitstatus_to_exitcode(status), 0, out)
        self.assertIn(b"reset 2 key(s)", out)
        self.assertEqual(self.json_of("stats", "--json")["totals"]["keys"], 0)

    # ---- prune --------------------------------------------------------------

    def test_prune(self):
        # Only lower bounds of time matter here (a slow start-up, under
        # valgrind say, makes keys idler, never busier): ip:old is full
        # and idle, the others are kept whatever the time.
        self.allow("ip:old")               # 5/s: full again 200 ms later
        self.allow("m:spent")              # 10/hour: not full for 6 minutes
        self.ok("assign", "ip:kept", "free")
        self.allow("ip:kept")              # full and idle, but assigned
        time.sleep(0.5)
        self.assertEqual(self.ok("prune", "--idle", "1h"), "pruned 0 key(s)\n")
        self.assertEqual(self.ok("prune", "--idle", "300ms", "--dry-run"), "would prune 1 key(s)\n")
        self.assertEqual(len(self.json_of("stats", "--json")["keys"]), 3)
        self.assertEqual(self.ok("prune", "--idle=300ms"), "pruned 1 key(s)\n")
        self.assertEqual(sorted(k["key"] for k in self.json_of("stats", "--json")["keys"]),
                         ["ip:kept", "m:spent"])
        # what a pruned key's next request meets: the same full bucket
        self.assertRegex(self.ok("allow", "ip:old"), r"^allowed remaining=9 limit=10 ")
