#!/usr/bin/env python3
"""test_rlctl.py - end-to-end tests of rlctl: the real binary on real
database files in a temporary directory.

    test_rlctl.py RLCTL [unittest options]      (or RLCTL=path test_rlctl.py)

Databases get their tiers the way an operator's would, by `rlctl tiers load`
of a YAML file, and their keys by `rlctl allow`. Standard library only.
"""
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import unittest

RLCTL = None

TIERS = """\
version: 1
default_tier: free
tiers:
  free:
    limits:
      - { name: rps, rate: 5/s, burst: 10 }
  pro:
    limits:
      - { name: rpm, rate: 600/min, burst: 50 }
  # Refills so slowly that process start-up time never lets one more in:
  # counts on its keys are exact.
  metered:
    limits:
      - { name: hourly, rate: 10/hour, burst: 10 }
keys:
  - { match: "ip:*", tier: free }
  - { match: "m:*", tier: metered }
"""

# Line 6, column 26 is the "5/m" (an ambiguous unit: minute or milli?).
BAD_TIERS = """\
version: 1
default_tier: free
tiers:
  free:
    limits:
      - { name: rps, rate: 5/m }
"""

USAGE, ERROR = 2, 3


class RlctlTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="rlctl-test.")
        self.dir = self.tmp.name
        self.db = os.path.join(self.dir, "rl.db")
        # Never the developer's own database: no RL_DB, HOME in the sandbox.
        self.env = {k: v for k, v in os.environ.items() if k not in ("RL_DB", "XDG_STATE_HOME")}
        self.env["HOME"] = self.dir
        self.tiers = self.write("tiers.yaml", TIERS)
        self.ok("tiers", "load", self.tiers)

    def tearDown(self):
        self.tmp.cleanup()

    def write(self, name, text):
        path = os.path.join(self.dir, name)
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        return path

    def run_raw(self, *args, db=True, env=None, stdout=subprocess.PIPE):
        argv = [RLCTL] + (["--db", self.db] if db else []) + list(args)
        return subprocess.run(argv, stdout=stdout, stderr=subprocess.PIPE, timeout=60,
                              env=env or self.env, encoding="utf-8")

    def ok(self, *args, **kw):
        p = self.run_raw(*args, **kw)
        self.assertEqual(p.returncode, 0, f"rlctl {args}: {p.stderr}")
        self.assertEqual(p.stderr, "")
        return p.stdout

    def fails(self, code, *args, **kw):
        p = self.run_raw(*args, **kw)
        self.assertEqual(p.returncode, code, f"rlctl {args}: out={p.stdout!r} err={p.stderr!r}")
        return p

    def json_of(self, *args, code=0):
        p = self.run_raw(*args)
        self.assertEqual(p.returncode, code, p.stderr)
        self.assertTrue(p.stdout.endswith("}\n"), p.stdout)
        return json.loads(p.stdout)

    def allow(self, key, *args):
        return self.run_raw("allow", *args, key).returncode

    # ---- help, usage errors, version ----------------------------------

    def test_help_documents_commands_and_exit_codes(self):
        out = self.ok("--help", db=False)
        self.assertTrue(out.startswith("usage: rlctl"))
        for cmd in ("stats", "inspect", "allow", "reset", "assign", "unassign", "which",
                    "tiers", "version"):
            self.assertRegex(out, rf"(?m)^  {cmd} ")
        for code in range(4):
            self.assertRegex(out, rf"(?m)^  {code}  \S")
        self.assertNotRegex(out, r"tiers (list|show)")

    def test_command_help(self):
        for cmd in (["stats"], ["inspect"], ["allow"], ["reset"], ["assign"], ["unassign"],
                    ["which"], ["version"], ["tiers"], ["tiers", "validate"], ["tiers", "load"]):
            out = self.ok(*cmd, "--help", db=False)
            self.assertTrue(out.startswith("usage: rlctl " + " ".join(cmd)), out)
        self.assertIn("--top N", self.ok("stats", "-h", db=False))

    def test_no_command_is_a_usage_error(self):
        p = self.fails(USAGE, db=False)
        self.assertEqual(p.stdout, "")
        self.assertIn("usage: rlctl", p.stderr)

    def test_unknown_command(self):
        p = self.fails(USAGE, "stat")
        self.assertEqual(p.stdout, "")
        self.assertEqual(p.stderr, "rlctl: unknown command 'stat' (did you mean 'stats'?)\n")
        p = self.fails(USAGE, "frobnicate")
        self.assertEqual(p.stderr, "rlctl: unknown command 'frobnicate' (see 'rlctl --help')\n")
        p = self.fails(USAGE, "tiers", "valdate", self.tiers)
        self.assertEqual(p.stderr,
                         "rlctl: unknown command 'tiers valdate' (did you mean 'tiers validate'?)\n")

    def test_unknown_option(self):
        p = self.fails(USAGE, "stats", "--tpo", "3")
        self.assertEqual(p.stdout, "")
        self.assertEqual(p.stderr,
                         "rlctl: stats: unknown option '--tpo' (see 'rlctl stats --help')\n")
        p = self.fails(USAGE, "--frob", "stats", db=False)
        self.assertEqual(p.stderr, "rlctl: unknown option '--frob' (see 'rlctl --help')\n")
        p = self.fails(USAGE, "tiers", "validate", "--strict", self.tiers)
        self.assertEqual(p.stderr, "rlctl: tiers validate: unknown option '--strict' "
                                   "(see 'rlctl tiers validate --help')\n")

    def test_bad_arguments_are_usage_errors(self):
        for args in (["allow", "--cost", "x", "k"], ["allow", "--cost", "-1", "k"],
                     ["allow", "--wait", "5x", "k"], ["allow"], ["allow", "a", "b"],
                     ["allow", "--cost"], ["stats", "--sort", "size"], ["stats", "--top", "-1"],
                     ["stats", "--top", "3", "ip:1"], ["inspect"], ["which"], ["assign", "k"],
                     ["unassign"], ["reset"], ["tiers", "load"], ["stats", "--json=yes"],
                     ["allow", "--quiet", "--json", "k"]):
            p = self.fails(USAGE, *args)
            self.assertEqual(p.stdout, "", args)
            self.assertRegex(p.stderr, r"^rlctl: [^\n]+ \(see 'rlctl [a-z ]+ --help'\)\n$")
        p = self.fails(USAGE, "--db", db=False)
        self.assertEqual(p.stderr, "rlctl: option '--db' needs a value (see 'rlctl --help')\n")
        p = self.fails(USAGE, "tiers")
        self.assertIn("usage: rlctl tiers", p.stderr)

    def test_version(self):
        for args in (["version"], ["--version"]):
            out = self.ok(*args, db=False)
            self.assertRegex(out, r"^rlctl \d+\.\d+\.\d+ \(librl \d+\.\d+\.\d+\)\n$")

    # ---- allow ----------------------------------------------------------

    def test_allow_until_refused(self):
        for i in range(10):
            p = self.run_raw("allow", "m:alice")
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertRegex(p.stdout, rf"^allowed remaining={9 - i} limit=10 reset_after=\S+\n$")
        p = self.fails(1, "allow", "m:alice")
        self.assertRegex(p.stdout, r"^refused retry_after=\d[\dhms.]* limit=hourly\n$")
        self.assertEqual(p.stderr, "")

    def test_allow_free_tier_refuses_after_burst(self):
        # 5/s refills while processes start, so at least the burst passes
        # and refusals come soon after.
        codes = [self.allow("ip:10.0.0.1") for _ in range(30)]
        self.assertEqual(codes[:10], [0] * 10)
        self.assertIn(1, codes)

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

    # ---- stats ----------------------------------------------------------

    def test_stats_totals(self):
        for _ in range(3):
            self.allow("m:a")
        self.allow("m:b", "--cost", "10")
        self.allow("m:b")  # refused
        self.allow("ip:1", "--cost", "2")
        d = self.json_of("stats", "--json")
        self.assertEqual(d["totals"], {"keys": 3, "allowed": 5, "refused": 1, "units": 15,
                                       "refusal_rate_bp": 1667})
        self.assertEqual(d["sort"], "admitted")
        self.assertIsNone(d["match"])
        self.assertEqual([k["key"] for k in d["keys"]][0], "m:a")
        self.assertEqual(sorted(k["key"] for k in d["keys"]), ["ip:1", "m:a", "m:b"])
        a = d["keys"][0]
        self.assertEqual((a["allowed"], a["refused"], a["units"], a["tier"], a["tier_source"]),
                         (3, 0, 3, "metered", "rule"))
        self.assertRegex(a["last_seen"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
        self.assertAlmostEqual(a["last_seen_ns"] / 1e9, time.time(), delta=120)

        out = self.ok("stats")
        self.assertRegex(out, r"(?m)^keys +3$")
        self.assertRegex(out, r"(?m)^admitted +5$")
        self.assertRegex(out, r"(?m)^refused +1$")
        self.assertRegex(out, r"(?m)^refusal rate +16\.7%$")
        self.assertRegex(out, r"(?m)^units +15$")
        self.assertRegex(out, r"(?m)^m:a +metered +3 +0 +3 ")

    def test_stats_empty_database(self):
        d = self.json_of("stats", "--json")
        self.assertEqual(d["totals"], {"keys": 0, "allowed": 0, "refused": 0, "units": 0,
                                       "refusal_rate_bp": None})
        self.assertEqual(d["keys"], [])
        self.assertIn("no keys", self.ok("stats"))

    def test_stats_top_sort_match(self):
        for key, n in (("m:a1", 1), ("m:a2", 2), ("m:b3", 3), ("ip:x", 4)):
            for _ in range(n):
                self.allow(key)
        for _ in range(2):
            self.allow("m:a1", "--cost", "10")  # both refused: 9 left
        keys = lambda *a: [k["key"] for k in self.json_of("stats", "--json", *a)["keys"]]
        self.assertEqual(keys("--top", "2"), ["ip:x", "m:b3"])
        self.assertEqual(keys("--top", "0"), ["ip:x", "m:b3", "m:a2", "m:a1"])
        self.assertEqual(keys("--sort", "refused", "--top", "1"), ["m:a1"])
        self.assertEqual(keys("--sort=last-seen", "--top=1"), ["m:a1"])
        self.assertEqual(keys("--match", "m:a*"), ["m:a2", "m:a1"])
        out = self.ok("stats", "--match", "nothing*")
        self.assertIn("no key matches 'nothing*'", out)

    def test_stats_keys_and_unknown_key(self):
        self.allow("m:k1")
        self.allow("ip:k2")
        d = self.json_of("stats", "--json", "m:k1", "ip:k2")
        self.assertEqual([(k["key"], k["tier"], k["allowed"]) for k in d["keys"]],
                         [("m:k1", "metered", 1), ("ip:k2", "free", 1)])
        self.assertRegex(d["keys"][0]["first_seen"], r"Z$")
        p = self.fails(ERROR, "stats", "m:k1", "nope")
        self.assertEqual(p.stderr, "rlctl: no such key: 'nope'\n")
        self.assertRegex(p.stdout, r"(?m)^m:k1 +metered +1 +0 +1 ")
        p = self.fails(ERROR, "stats", "--json", "nope")
        self.assertEqual(json.loads(p.stdout), {"keys": []})

    def test_table_columns_are_aligned(self):
        for key in ("m:é", "m:a-much-longer-key-name", "ip:1"):
            self.allow(key)
        lines = self.ok("stats").split("top 10 keys by admitted:\n")[1].splitlines()
        self.assertEqual(len(lines), 4)
        # Every column starts where its header does (code points, not bytes).
        starts = [m.start() for m in re.finditer(r"(?<=  )\S", lines[0])]
        self.assertEqual(len(starts), 6)
        last_seen = starts[-1]
        for line in lines[1:]:
            self.assertRegex(line[last_seen:], r"^\d{4}-")
            self.assertEqual(line[last_seen - 2:last_seen], "  ")
            self.assertFalse(line.endswith(" "))
        # Numbers are right-aligned under their headers.
        admitted_end = lines[0].index("ADMITTED") + len("ADMITTED")
        for line in lines[1:]:
            self.assertEqual(line[admitted_end - 1], "1", line)

    def test_json_strings_are_escaped(self):
        key = 'm:q"uo\\te/é\u2028'
        d = self.json_of("allow", "--json", key)
        self.assertEqual(d["key"], key)
        d = self.json_of("stats", "--json", key)
        self.assertEqual(d["keys"][0]["key"], key)

    # ---- inspect --------------------------------------------------------

    def test_inspect(self):
        for _ in range(3):
            self.allow("ip:9.9.9.9")
        out = self.ok("inspect", "ip:9.9.9.9")
        self.assertRegex(out, r"(?m)^key +ip:9\.9\.9\.9$")
        self.assertRegex(out, r"(?m)^tier +free \(rule 'ip:\*'\)$")
        self.assertRegex(out, r"(?m)^admitted +3$")
        self.assertRegex(out, r"(?m)^LIMIT +RESOURCE +RATE +BURST +REMAINING +RESET AFTER +"
                              r"RETRY AFTER$")
        self.assertRegex(out, r"(?m)^rps +requests +5/s +10 +\d+ +\S+ +0s$")
        d = self.json_of("inspect", "--json", "ip:9.9.9.9")
        self.assertEqual((d["key"], d["exists"], d["tier"], d["tier_source"], d["rule"]),
                         ("ip:9.9.9.9", True, "free", "rule", "ip:*"))
        self.assertEqual((d["allowed"], d["refused"], d["units"]), (3, 0, 3))
        self.assertEqual(len(d["limits"]), 1)
        lim = d["limits"][0]
        self.assertEqual((lim["name"], lim["resource"], lim["rate"], lim["count"],
                          lim["period_ns"], lim["burst"]),
                         ("rps", "requests", "5/s", 5, 10**9, 10))
        self.assertTrue(7 <= lim["remaining"] <= 10)
        self.assertEqual(lim["retry_after_ns"], 0)
        self.assertGreaterEqual(lim["reset_after_ns"], 0)

    def test_inspect_refused_key_shows_retry_after(self):
        self.allow("m:full", "--cost", "10")
        d = self.json_of("inspect", "--json", "m:full")
        lim = d["limits"][0]
        self.assertEqual((lim["name"], lim["remaining"]), ("hourly", 0))
        self.assertRegex(lim["rate"], r"^10/h(our)?$")
        self.assertGreater(lim["retry_after_ns"], 5 * 60 * 10**9)
        self.assertRegex(self.ok("inspect", "m:full"),
                         r"(?m)^hourly +requests +10/h(our)? +10 +0 +\d\S* +\d+m(\d+s)?$")

    def test_inspect_never_seen_key(self):
        d = self.json_of("inspect", "--json", "user:new")
        self.assertFalse(d["exists"])
        self.assertEqual((d["tier"], d["tier_source"], d["rule"]), ("free", "default_tier", None))
        self.assertIsNone(d["first_seen"])
        self.assertEqual(d["limits"][0]["remaining"], 10)
        self.assertRegex(self.ok("inspect", "user:new"), r"(?m)^first seen +-$")

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

    # ---- tiers of keys --------------------------------------------------

    def test_assign_which_unassign(self):
        self.assertEqual(self.ok("which", "user:bob"), "free (default tier)\n")
        self.assertEqual(self.ok("which", "ip:1.2.3.4"), "free (rule 'ip:*')\n")
        self.assertEqual(self.ok("which", "m:x"), "metered (rule 'm:*')\n")
        self.ok("assign", "user:bob", "pro")
        self.assertEqual(self.ok("which", "user:bob"), "pro (assigned)\n")
        self.assertEqual(self.json_of("which", "--json", "user:bob"),
                         {"key": "user:bob", "tier": "pro", "tier_source": "assigned",
                          "rule": None})
        d = self.json_of("inspect", "--json", "user:bob")
        self.assertEqual([(l["name"], l["rate"], l["burst"]) for l in d["limits"]],
                         [("rpm", "600/min", 50)])
        self.assertRegex(self.ok("allow", "user:bob"), r"^allowed remaining=49 limit=50 ")
        self.ok("unassign", "user:bob")
        self.assertEqual(self.json_of("which", "--json", "user:bob"),
                         {"key": "user:bob", "tier": "free", "tier_source": "default_tier",
                          "rule": None})

    def test_assign_unknown_tier(self):
        p = self.fails(ERROR, "assign", "user:bob", "gold")
        self.assertEqual(p.stdout, "")
        self.assertEqual(p.stderr, "rlctl: no such tier: 'gold'\n")

    # ---- tiers files ----------------------------------------------------

    def test_validate(self):
        self.assertEqual(self.ok("tiers", "validate", self.tiers, db=False),
                         f"{self.tiers}: ok\n")
        bad = self.write("bad.yaml", BAD_TIERS)
        p = self.fails(1, "tiers", "validate", bad, db=False)
        self.assertEqual(p.stdout, "")
        self.assertTrue(p.stderr.startswith(f"{bad}:6:"), p.stderr)
        self.assertRegex(p.stderr, r"^.*:6:\d+: .*5/m.*\n$")
        p = self.fails(1, "tiers", "validate", self.tiers, bad, db=False)
        self.assertEqual(p.stdout, f"{self.tiers}: ok\n")
        p = self.fails(ERROR, "tiers", "validate", os.path.join(self.dir, "missing.yaml"),
                       db=False)
        self.assertRegex(p.stderr, r"^rlctl: .*missing\.yaml")
        self.assertFalse(os.path.exists(os.path.join(self.dir, ".local")))

    def test_load(self):
        out = self.ok("tiers", "load", self.tiers)
        self.assertEqual(out, f"loaded {self.tiers}: 3 tier(s), 2 key rule(s)\n")
        bad = self.write("bad.yaml", BAD_TIERS)
        p = self.fails(1, "tiers", "load", bad)
        self.assertTrue(p.stderr.startswith(f"rlctl: {bad}:6:"), p.stderr)
        # Nothing of the bad file was applied.
        self.assertEqual(self.ok("which", "m:x"), "metered (rule 'm:*')\n")

    # ---- output and database errors ---------------------------------------

    @unittest.skipUnless(os.path.exists("/dev/full"), "no /dev/full")
    def test_write_error_is_reported(self):
        self.allow("m:w")
        for args in (["stats"], ["stats", "--json"], ["inspect", "m:w"], ["version"]):
            with open("/dev/full", "w") as full:
                p = self.run_raw(*args, stdout=full)
            self.assertEqual(p.returncode, ERROR, args)
            self.assertRegex(p.stderr, r"^rlctl: write error: .+\n$")

    def test_missing_database_is_not_created_by_reading(self):
        missing = os.path.join(self.dir, "missing.db")
        for args in (["stats"], ["inspect", "k"], ["which", "k"]):
            p = subprocess.run([RLCTL, "--db", missing] + args, capture_output=True,
                               encoding="utf-8", env=self.env, timeout=60)
            self.assertEqual(p.returncode, ERROR, args)
            self.assertRegex(p.stderr, r"^rlctl: .*missing\.db")
        self.assertFalse(os.path.exists(missing))

    def test_database_from_environment(self):
        env = dict(self.env, RL_DB=self.db)
        self.allow("m:env")
        p = self.run_raw("stats", "--json", db=False, env=env)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual([k["key"] for k in json.loads(p.stdout)["keys"]], ["m:env"])
        # --db wins over $RL_DB.
        other = os.path.join(self.dir, "other.db")
        p = subprocess.run([RLCTL, "--db", other, "tiers", "load", self.tiers],
                           capture_output=True, encoding="utf-8", env=env, timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr)
        p = subprocess.run([RLCTL, "--db=" + other, "stats", "--json"], capture_output=True,
                           encoding="utf-8", env=env, timeout=60)
        self.assertEqual(json.loads(p.stdout)["keys"], [])


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
    unittest.main(argv=[sys.argv[0]] + args)


if __name__ == "__main__":
    main()
