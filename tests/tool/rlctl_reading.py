"""rlctl_reading.py - the commands that read: stats (human, --json,
prometheus), inspect, keys (streamed, paged with --limit and --after),
watch, tiers validate --json; that reading creates no database and no
directory; leases that expired or whose owner died, as leases, inspect and
doctor show them and prune reclaims them."""
import json
import os
import re
import signal
import subprocess
import sys
import time

from rlctl_common import ERROR, PERM, SOURCE_DIR, TIERS, USAGE, parse_prometheus

RLCTL = None  # the binary under test: set by test_rlctl.main()


class ReadingTests:
    """Tests of stats, inspect, keys and watch: mixed into test_rlctl.RlctlTest."""

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

    def test_stats_tier(self):
        for key, n in (("m:a", 3), ("m:b", 1), ("ip:1", 2), ("user:z", 4)):
            for _ in range(n):
                self.allow(key)
        d = self.json_of("stats", "--json", "--tier", "metered")
        self.assertEqual([k["key"] for k in d["keys"]], ["m:a", "m:b"])
        self.assertEqual(d["tier"], "metered")
        self.assertEqual(d["totals"]["keys"], 4)
        self.assertEqual(d["selected"], {"keys": 2, "allowed": 4, "refused": 0, "units": 4,
                                         "refusal_rate_bp": 0})
        # free is the default tier too: user:z resolves to it
        d = self.json_of("stats", "--json", "--tier", "free", "--top", "1")
        self.assertEqual([k["key"] for k in d["keys"]], ["user:z"])
        self.assertEqual(d["selected"]["keys"], 2)
        d = self.json_of("stats", "--json", "--tier", "free", "--match", "ip:*")
        self.assertEqual([k["key"] for k in d["keys"]], ["ip:1"])
        out = self.ok("stats", "--tier", "metered")
        self.assertRegex(out, r"(?m)^ +ALL +SELECTED$")
        self.assertRegex(out, r"(?m)^keys +4 +2$")
        self.assertIn("top 10 keys by admitted in tier metered:", out)
        self.assertNotRegex(out, r"(?m)^(ip:1|user:z) ")
        self.assertIn("no key in tier pro", self.ok("stats", "--tier", "pro"))
        p = self.fails(ERROR, "stats", "--tier", "gold")
        self.assertEqual((p.stdout, p.stderr), ("", "rlctl: no such tier: 'gold'\n"))

    def test_stats_prometheus(self):
        for key, n in (("m:a", 3), ("ip:1", 1)):
            for _ in range(n):
                self.allow(key)
        odd = 'm:q"uo\\te é'
        self.allow(odd, "--cost", "2")
        self.allow("m:a", "--cost", "10")  # refused
        out = self.ok("stats", "--format", "prometheus")
        samples, types = parse_prometheus(out)
        self.assertEqual(types, {"rl_keys": "gauge", "rl_decisions_total": "counter",
                                 "rl_units_total": "counter", "rl_key_decisions_total": "counter",
                                 "rl_key_units_total": "counter",
                                 "rl_key_last_seen_seconds": "gauge"})
        self.assertEqual(samples[("rl_keys", ())], 3)
        self.assertEqual(samples[("rl_decisions_total", (("result", "admitted"),))], 5)
        self.assertEqual(samples[("rl_decisions_total", (("result", "refused"),))], 1)
        self.assertEqual(samples[("rl_units_total", ())], 6)
        self.assertEqual(samples[("rl_key_decisions_total",
                                  (("key", "m:a"), ("tier", "metered"), ("result", "refused")))], 1)
        # the key's quote and backslash come back through the escaping
        self.assertEqual(samples[("rl_key_units_total", (("key", odd), ("tier", "metered")))], 2)
        self.assertIn(r'key="m:q\"uo\\te é"', out)
        last = samples[("rl_key_last_seen_seconds", (("key", "m:a"), ("tier", "metered")))]
        self.assertAlmostEqual(last, time.time(), delta=120)
        # per-key series only for the --top keys
        samples, _ = parse_prometheus(self.ok("stats", "--format=prometheus", "--top", "1"))
        self.assertEqual({dict(k[1])["key"] for k in samples if k[0].startswith("rl_key_")},
                         {"m:a"})
        samples, types = parse_prometheus(self.ok("stats", "--format", "prometheus", "--tier", "pro"))
        self.assertNotIn("rl_key_units_total", types)
        self.assertEqual(samples[("rl_keys", ())], 3)
        # the parser itself refuses what the format forbids
        for bad in ("rl_x 1", "rl_x{a=\"b} 1\n", "rl_x{a=\"\\q\"} 1\n", "rl_x 1\nrl_y 2\nrl_x 3\n",
                    "# TYPE rl_x_total counter\nrl_x_total -1\n", "rl_x one\n", "rl_x 1\nrl_x 2\n"):
            with self.assertRaises(AssertionError, msg=bad):
                parse_prometheus(bad)

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
        self.assertIn("no key matching 'nothing*'", out)
        self.assertRegex(out, r"(?m)^keys +4 +0$")

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


    # ---- keys -------------------------------------------------------------

    def test_keys(self):
        self.allow("m:full", "--cost", "10")
        self.allow("m:some", "--cost", "3")
        self.allow("ip:1")
        self.ok("assign", "user:p", "pro")
        out = self.ok("keys")
        lines = out.splitlines()
        self.assertRegex(lines[0], r"^KEY +TIER +LIMIT +RATE +REMAINING +RETRY AFTER +RESET AFTER$")
        self.assertEqual([l.split()[0] for l in lines[1:]], ["ip:1", "m:full", "m:some", "user:p"])
        self.assertRegex(out, r"(?m)^m:full +metered +hourly +10/h(our)? +0/10 +\d+m(\d+s)? +\d+m?\S* *$")
        self.assertRegex(out, r"(?m)^m:some +metered +hourly +10/h(our)? +7/10 +0s +\S+$")
        self.assertRegex(out, r"(?m)^user:p +pro +rpm +600/min +50/50 +0s +0s$")
        d = self.json_of("keys", "--json")
        self.assertEqual(d["count"], 4)
        k = {x["key"]: x for x in d["keys"]}
        self.assertTrue(k["m:full"]["limited"])
        self.assertFalse(k["m:some"]["limited"])
        self.assertEqual(k["m:full"]["tightest"], "hourly")
        lim = k["m:full"]["limits"][0]
        self.assertEqual((lim["name"], lim["remaining"], lim["burst"], lim["kind"], lim["rate"]),
                         ("hourly", 0, 10, "rate", lim["rate"]))
        self.assertGreater(lim["retry_after_ns"], 5 * 60 * 10**9)
        self.assertEqual((k["user:p"]["tier"], k["user:p"]["tier_source"]), ("pro", "assigned"))
        # --limited, --tier, --match
        self.assertEqual([x["key"] for x in self.json_of("keys", "--json", "--limited")["keys"]],
                         ["m:full"])
        self.assertEqual(self.ok("keys", "--limited").splitlines()[1].split()[0], "m:full")
        self.assertEqual([x["key"] for x in self.json_of("keys", "--json", "--tier", "free")["keys"]],
                         ["ip:1"])
        self.assertEqual([x["key"] for x in self.json_of("keys", "--json", "--match", "m:*")["keys"]],
                         ["m:full", "m:some"])
        self.assertEqual(self.ok("keys", "--match", "zzz*"), "no keys\n")
        self.assertEqual(self.ok("keys", "--limited", "--tier", "pro"), "no limited keys\n")
        p = self.fails(ERROR, "keys", "--tier", "gold")
        self.assertEqual(p.stderr, "rlctl: no such tier: 'gold'\n")

    def test_keys_all_limits(self):
        multi = self.write("multi.yaml", TIERS.replace(
            "      - { name: hourly, rate: 10/hour, burst: 10 }",
            "      - { name: hourly, rate: 10/hour, burst: 10 }\n"
            "      - { name: daily, rate: 100/day }"))
        self.ok("tiers", "load", multi)
        self.allow("m:two", "--cost", "4")
        out = self.ok("keys", "--all-limits")
        self.assertRegex(out, r"(?m)^m:two +metered +hourly +10/h(our)? +6/10 ")
        self.assertRegex(out, r"(?m)^m:two +metered +daily +100/day +96/100 ")
        # the tightest by share of burst left: hourly (6/10) before daily (96/100)
        self.assertRegex(self.ok("keys"), r"(?m)^m:two +metered +hourly ")

    def import_keys(self, names):
        """Keys named `names`, each with m:seed's state, by one import
        (quicker than a process per key)."""
        self.allow("m:seed")
        doc = json.loads(self.ok("export"))
        k = doc["keys"][0]
        doc["keys"] = [dict(k, key=n) for n in names]
        self.ok("import", "--yes", self.write("keys.json", json.dumps(doc)))

    def test_keys_limit_and_after_page_through(self):
        names = [f"m:{i:02d}" for i in range(10)]
        self.import_keys(names + ["ip:1"])
        everything = ["ip:1"] + names
        lines = self.ok("keys", "--limit", "3").splitlines()
        self.assertRegex(lines[0], r"^KEY ")
        self.assertEqual([l.split()[0] for l in lines[1:]], ["ip:1", "m:00", "m:01"])
        d = self.json_of("keys", "--json", "--limit", "3")
        self.assertEqual((d["after"], d["limit"], d["count"], d["next"]), (None, 3, 3, "m:01"))
        # the whole listing has no next page
        d = self.json_of("keys", "--json")
        self.assertEqual((d["limit"], d["count"], d["next"]), (None, 11, None))
        self.assertEqual(self.json_of("keys", "--json", "--limit", "0")["count"], 11)
        # paging: each page's next is the following page's --after, until null
        seen, after, pages = [], None, 0
        while True:
            args = ["keys", "--json", "--limit", "4"] + (["--after", after] if after else [])
            d = self.json_of(*args)
            self.assertEqual(d["after"], after)
            seen += [k["key"] for k in d["keys"]]
            pages += 1
            if d["next"] is None:
                break
            self.assertEqual(d["next"], seen[-1])
            after = d["next"]
        self.assertEqual(seen, everything)
        self.assertEqual(pages, 3)  # 4 + 4 + 3
        # after a key that does not exist; with --match; the last page empty
        after = lambda *a: [k["key"] for k in self.json_of("keys", "--json", *a)["keys"]]
        self.assertEqual(after("--after", "m:045"), names[5:])
        self.assertEqual(after("--after", "ip:1", "--match", "m:?5"), ["m:05"])
        self.assertEqual(after("--after", "m:09"), [])
        self.assertEqual(self.ok("keys", "--after", "m:09"), "no keys\n")
        d = self.json_of("keys", "--json", "--limit", "1", "--after", "m:08")
        self.assertEqual((d["count"], d["next"]), (1, "m:09"))
        d = self.json_of("keys", "--json", "--limit", "1", "--after", "m:09")
        self.assertEqual((d["count"], d["next"]), (0, None))
        # --limit counts the keys listed, after the filters
        self.allow("m:03", "--cost", "9")  # m:seed's state: 9 of 10 left
        self.allow("m:07", "--cost", "9")
        d = self.json_of("keys", "--json", "--limited", "--limit", "1")
        self.assertEqual(([k["key"] for k in d["keys"]], d["next"]), (["m:03"], "m:03"))
        self.assertEqual(after("--limited", "--after", "m:03"), ["m:07"])
        # --all-limits: N keys, with all their lines
        self.assertEqual(len(self.ok("keys", "--all-limits", "--limit", "2").splitlines()), 3)
        for bad in (["--limit", "-1"], ["--limit", "x"], ["--limit", ""], ["--after", ""],
                    ["--after", "k" * 513]):
            p = self.fails(USAGE, "keys", *bad)
            self.assertEqual(p.stdout, "")
            self.assertRegex(p.stderr, r"^rlctl: keys: --(limit|after) needs ")

    def test_keys_stream_across_pages(self):
        # More keys than a page (256) holds, and a longer key further down:
        # every key once, in order; the columns widen from where it stands
        # and never narrow.
        names = [f"m:{i:04d}" for i in range(700)] + ["m:9999-" + "x" * 40]
        self.import_keys(names)
        everything = sorted(names)  # the import replaced m:seed
        lines = self.ok("keys").splitlines()
        self.assertEqual([l.split()[0] for l in lines[1:]], everything)
        tier_at = [l.index(" metered ") for l in lines[1:]]
        self.assertEqual(sorted(tier_at), tier_at)
        self.assertEqual(len(set(tier_at)), 2)
        d = self.json_of("keys", "--json")
        self.assertEqual([k["key"] for k in d["keys"]], everything)
        self.assertEqual(d["count"], len(everything))
        d = self.json_of("keys", "--json", "--after", "m:0200", "--limit", "300")
        self.assertEqual([k["key"] for k in d["keys"]], everything[201:501])
        self.assertEqual(d["next"], everything[500])

    def test_keys_first_lines_come_before_the_end(self):
        # The listing streams: a reader that takes one line and leaves gets
        # it, and rlctl stops at its next page (exit 3, said by nothing but
        # the status, as for any reader that left).
        self.import_keys([f"m:{i:04d}" for i in range(3000)])
        p = subprocess.Popen([RLCTL, "--db", self.db, "keys", "--json"], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, env=self.env)
        self.assertEqual(p.stdout.readline(), b"{\n")
        p.stdout.close()
        self.assertEqual(p.wait(timeout=60), ERROR)
        self.assertEqual(p.stderr.read(), b"")
        p.stderr.close()

    def test_keys_holds_no_read_transaction_while_it_writes(self):
        # A reader that does not keep up (a pager) leaves rlctl blocked in a
        # write; no read transaction may be open then, or no checkpoint could
        # empty the WAL for as long as the pager stays open.
        if self.REDIS:
            self.skipTest("WAL checkpoints are SQLite's")
        import sqlite3
        self.import_keys([f"m:{i:04d}" for i in range(3000)])  # more than a pipe holds
        p = subprocess.Popen([RLCTL, "--db", self.db, "keys"], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, env=self.env)
        try:
            first = p.stdout.readline()
            time.sleep(0.3)  # rlctl fills the pipe and blocks
            self.assertIsNone(p.poll())
            self.assertEqual(self.allow("m:0001"), 0)  # something in the WAL
            con = sqlite3.connect(self.db, timeout=0.2)
            try:
                busy, _, _ = con.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            finally:
                con.close()
            self.assertEqual(busy, 0)
            rest = p.stdout.read()
        finally:
            p.stdout.close()
            p.stderr.close()
            p.wait(timeout=60)
        self.assertEqual(p.returncode, 0)
        self.assertEqual(len((first + rest).splitlines()), 3001)

    def test_reading_creates_no_database_and_no_directory(self):
        if self.REDIS:
            self.skipTest("files only: the same on Redis")
        missing = os.path.join(self.dir, "no", "such", "dir", "x.db")
        for args in (["keys"], ["keys", "--json"], ["stats"], ["leases"], ["tiers", "list"],
                     ["export"]):
            p = subprocess.run([RLCTL, "--db", missing] + args, capture_output=True,
                               encoding="utf-8", env=self.env, timeout=60)
            self.assertEqual((p.returncode, p.stdout), (ERROR, ""), args)
            self.assertEqual(p.stderr, f"rlctl: {missing}: No such file or directory (a reading "
                                       "command creates no database)\n", args)
        self.assertFalse(os.path.exists(os.path.join(self.dir, "no")))
        # a dangling symbolic link is refused as a link (exit 4), as ever
        link = os.path.join(self.dir, "link.db")
        os.symlink("nowhere.db", link)
        p = subprocess.run([RLCTL, "--db", link, "keys"], capture_output=True, encoding="utf-8",
                           env=self.env, timeout=60)
        self.assertEqual(p.returncode, PERM, p.stderr)
        self.assertIn("symbolic link", p.stderr)
        self.assertFalse(os.path.exists(os.path.join(self.dir, "nowhere.db")))
        # the default path: neither it nor its directories are made
        home = os.path.join(self.dir, "home")
        os.mkdir(home)
        env = {k: v for k, v in self.env.items() if k not in ("RL_DB", "XDG_STATE_HOME")}
        for xdg in (None, os.path.join(home, "state")):
            e = dict(env, HOME=home, **({"XDG_STATE_HOME": xdg} if xdg else {}))
            for args in (["keys"], ["stats"], ["tiers", "list"]):
                p = subprocess.run([RLCTL] + args, capture_output=True, encoding="utf-8",
                                   env=e, timeout=60)
                self.assertEqual(p.returncode, ERROR, args)
                self.assertRegex(p.stderr, r"^rlctl: .*/rl/rl\.db: No such file or directory")
            self.assertEqual(os.listdir(home), [])
        # a writing command still makes them, and reading then works
        e = dict(env, HOME=home)
        for args in (["tiers", "load", self.tiers], ["assign", "u:1", "free"]):
            p = subprocess.run([RLCTL] + args, capture_output=True, encoding="utf-8", env=e,
                               timeout=60)
            self.assertEqual(p.returncode, 0, p.stderr)
        self.assertTrue(os.path.exists(os.path.join(home, ".local", "state", "rl", "rl.db")))
        p = subprocess.run([RLCTL, "keys", "--json"], capture_output=True, encoding="utf-8",
                           env=e, timeout=60)
        self.assertEqual([k["key"] for k in json.loads(p.stdout)["keys"]], ["u:1"])

    def test_tiers_validate_json(self):
        bad = self.write("bad.yaml", "version: 1\ntiers:\n  free: {limits: [{name: a, rate: 5/x}]}\n")
        missing = os.path.join(self.dir, "missing.yaml")
        p = subprocess.run([RLCTL, "tiers", "validate", "--json", self.tiers], capture_output=True,
                           encoding="utf-8", env=self.env, timeout=60)
        self.assertEqual((p.returncode, p.stderr), (0, ""))
        self.assertEqual(json.loads(p.stdout), {
            "files": [{"file": self.tiers, "valid": True, "error": None}], "valid": True})
        p = subprocess.run([RLCTL, "tiers", "validate", self.tiers, bad, "--json"],
                           capture_output=True, encoding="utf-8", env=self.env, timeout=60)
        self.assertEqual((p.returncode, p.stderr), (1, ""))
        d = json.loads(p.stdout)
        self.assertFalse(d["valid"])
        self.assertEqual([(f["file"], f["valid"]) for f in d["files"]],
                         [(self.tiers, True), (bad, False)])
        self.assertRegex(d["files"][1]["error"], rf"^{re.escape(bad)}:3:\d+: invalid rate '5/x'")
        # a file that cannot be read: no verdict, status 3 as without --json
        p = subprocess.run([RLCTL, "tiers", "validate", "--json", bad, missing],
                           capture_output=True, encoding="utf-8", env=self.env, timeout=60)
        self.assertEqual((p.returncode, p.stderr), (ERROR, ""))
        d = json.loads(p.stdout)
        self.assertEqual([(f["file"], f["valid"]) for f in d["files"]], [(bad, False), (missing, None)])
        self.assertRegex(d["files"][1]["error"], rf"^{re.escape(missing)}: cannot read: No such file")
        self.assertFalse(d["valid"])

    def test_penalize_and_leases(self):
        self.allow("m:p")
        self.assertEqual(self.ok("penalize", "m:p", "1m"), "m:p refused for 1m\n")
        d = self.json_of("keys", "--json", "--limited")
        self.assertEqual([k["key"] for k in d["keys"]], ["m:p"])
        self.assertGreater(d["keys"][0]["cooldown_ns"], 50 * 10**9)
        self.assertRegex(self.ok("keys", "--limited"), r"(?m)^m:p +metered +hourly +\S+ +9/10 +(59|1m)")
        self.assertEqual(self.fails(1, "allow", "m:p").stdout.split()[0], "refused")
        self.assertEqual(self.ok("penalize", "m:p", "0s"), "lifted the cool-down of m:p\n")
        self.assertEqual(self.json_of("keys", "--json", "--limited")["keys"], [])
        self.assertEqual(self.ok("leases"), "no open leases\n")
        p = self.run_raw("leases", "--json")
        self.assertEqual((p.returncode, json.loads(p.stdout)), (0, []))


    # ---- leases that hold nothing any more --------------------------------------

    # A process that takes a lease of one stream on KEY for each TTL given
    # (seconds), through the Python binding over the librl next to rlctl,
    # prints "held" and waits to be killed.
    HOLDER = """if True:
        import sys, time
        sys.path.insert(0, sys.argv[1])
        import pyrl
        lim = pyrl.Limiter(sys.argv[2])
        held = [lim.lease(sys.argv[3], ttl=float(t), requests=None, streams=1).begin()
                for t in sys.argv[4:]]
        print("held", flush=True)
        time.sleep(600)
    """

    def lease_holder(self, key, *ttls):
        if os.environ.get("RL_TEST_NO_PYRL"):
            self.skipTest("librl is built with a sanitizer, which Python cannot load")
        lib = os.path.join(os.path.dirname(RLCTL), "librl.so")
        if not os.path.exists(lib):
            self.skipTest("no librl.so next to rlctl for the lease holder")
        env = dict(self.env, RL_LIBRARY=lib)
        p = subprocess.Popen([sys.executable, "-c", self.HOLDER,
                              os.path.join(SOURCE_DIR, "bindings", "python"), self.db, key,
                              *map(str, ttls)], stdout=subprocess.PIPE, env=env)
        self.addCleanup(p.wait)
        self.addCleanup(p.kill)
        self.assertEqual(p.stdout.readline(), b"held\n")
        return p

    def test_expired_and_dead_owners_leases_are_not_held(self):
        agents = TIERS.replace("tiers:\n", "tiers:\n  agents:\n    limits:\n"
                               "      - { name: streams, concurrent: 2, resource: streams }\n", 1)
        self.ok("tiers", "load", self.write("streams.yaml", agents + """\
  - { match: "s:*", tier: agents }
"""))
        # s:dead: 2 of 2 held by a process killed since
        dead = self.lease_holder("s:dead", 3600, 3600)
        dead.send_signal(signal.SIGKILL)
        dead.wait()
        # s:mix: one lease that lives on, one whose TTL ends, the owner alive
        self.lease_holder("s:mix", 3600, 0.5)
        time.sleep(0.6)

        out = self.ok("inspect", "s:dead")
        self.assertRegex(out, r"(?m)^in flight +streams: 0 of 2 held by leases$")
        self.assertRegex(out, r"(?m)^leases +0 open, 2 reclaimable "
                              r"\(expired or owner dead: rlctl prune\)$")
        d = self.json_of("inspect", "--json", "s:dead")
        self.assertEqual((d["limits"][0]["in_flight"], d["limits"][0]["remaining"]), (0, 2))
        self.assertEqual((d["open_leases"], d["reclaimable_leases"]), (0, 2))
        out = self.ok("inspect", "s:mix")
        self.assertRegex(out, r"(?m)^in flight +streams: 1 of 2 held by leases$")
        self.assertRegex(out, r"(?m)^leases +1 open, 1 reclaimable ")
        d = self.json_of("inspect", "--json", "s:mix")
        self.assertEqual((d["limits"][0]["in_flight"], d["open_leases"],
                          d["reclaimable_leases"]), (1, 1, 1))

        out = self.ok("leases")
        # ID is right-aligned to the widest id, as the rows below are
        self.assertRegex(out.splitlines()[0],
                         r"^ *ID +KEY +ESTIMATE +OWNER +AGE +EXPIRES IN +STATE$")
        self.assertEqual(len(re.findall(r"(?m)^ *\d+ +s:dead +streams 1 +\d+ \(gone\) +\S+ +\S+ +"
                                        r"owner dead \(reclaimable\)$", out)), 2, out)
        self.assertRegex(out, r"(?m)^ *\d+ +s:mix +streams 1 +\d+ +\S+ +\S+ +held$")
        self.assertRegex(out, r"(?m)^ *\d+ +s:mix +streams 1 +\d+ +\S+ +expired +"
                              r"expired \(reclaimable\)$")
        self.assertRegex(out, r"(?m)^\n?3 of 4 lease\(s\) reclaimable: rlctl prune$")
        states = sorted((x["key"], x["state"], x["live"]) for x in self.json_of_list("leases"))
        self.assertEqual(states, [("s:dead", "owner_dead", False), ("s:dead", "owner_dead", False),
                                  ("s:mix", "expired", False), ("s:mix", "held", True)])

        out = self.ok("doctor")
        self.assertRegex(out, r"(?m)^leases +warn +3 of 4 open lease\(s\) expired or held by a "
                              r"dead process .*rlctl prune")
        self.assertEqual(self.ok("prune", "--dry-run"), "would reclaim 3 lease(s)\n")
        self.assertEqual(len(self.json_of_list("leases")), 4)
        self.assertEqual(self.ok("prune"), "reclaimed 3 lease(s)\n")
        self.assertEqual([(x["key"], x["state"]) for x in self.json_of_list("leases")],
                         [("s:mix", "held")])
        self.assertEqual(self.json_of("inspect", "--json", "s:dead")["limits"][0]["in_flight"], 0)
        self.assertRegex(self.ok("doctor"), r"(?m)^leases +ok +1 open lease\(s\), all live$")
        self.assertEqual(self.ok("prune"), "reclaimed 0 lease(s)\n")
        self.assertEqual(self.ok("prune", "--idle", "1h"), "pruned 0 key(s)\n")

    def json_of_list(self, *args):
        p = self.run_raw(*args, "--json")
        self.assertEqual(p.returncode, 0, p.stderr)
        return json.loads(p.stdout)


    # ---- watch ----------------------------------------------------------------

    def test_watch_needs_a_terminal(self):
        p = self.fails(USAGE, "watch")
        self.assertEqual(p.stdout, "")
        self.assertRegex(p.stderr, r"^rlctl: watch: stdout is not a terminal.*\(see 'rlctl watch --help'\)\n$")

    def test_watch_under_a_terminal(self):
        for _ in range(3):
            self.allow("m:w1")
        self.allow("ip:w2")
        argv = [RLCTL, "--db", self.db, "watch", "--interval", "200ms"]
        frames = []

        def busy(out):
            # decisions between frames, so rates show up
            if len(frames) < 3 and out.count(b"KEY") > len(frames):
                frames.append(len(out))
                self.allow("m:w1")
            return len(frames) >= 3 and b"/s" in out.split(b"KEY")[-1]
        status, out = self.run_pty(argv, until=busy, interrupt=True,
                                   env=dict(self.env, TERM="xterm"))
        self.assertEqual(os.waitstatus_to_exitcode(status), 0, out)
        text = out.decode("utf-8", "replace")
        self.assertIn("\x1b[?25l", text)                       # cursor hidden while drawing
        self.assertTrue(text.endswith("\x1b[0m\x1b[?25h\r\n"), repr(text[-40:]))
        self.assertIn("rlctl watch", text)
        self.assertRegex(text, r"KEY +TIER +ADMITTED/S +REFUSED/S +ADMITTED +REFUSED +LAST SEEN")
        self.assertRegex(text, r"m:w1 +metered +[\d.]+/s +0/s +\d+ +0 +\d+s ago")
        self.assertRegex(text, r"keys 2 +admitted [\d.]+/s")
        self.assertIn("\x1b[1m", text)                         # colour on a terminal...
        status, out = self.run_pty(argv, until=lambda o: o.count(b"KEY") >= 2, interrupt=True,
                                   env=dict(self.env, TERM="xterm", NO_COLOR="1"))
        self.assertEqual(os.waitstatus_to_exitcode(status), 0, out)
        self.assertNotRegex(out.decode(), r"\x1b\[[\d;]*m(?<!\x1b\[0m)")  # ...but not with NO_COLOR
        self.assertIn(b"m:w1", out)

    # Issue 20: a running watch must not tax writers: its totals are the
    # store's running ones (exact), its keys come from a bounded slice per
    # refresh, and it holds no read transaction between refreshes.

    WATCH_TOTALS = re.compile(rb"keys (\d+) .*\(totals (\d+) admitted, (\d+) refused\)")
    WATCH_READ = re.compile(rb"read (\d+) keys in (\d+) transactions; pass (\d+): (\d+) keys(, done| so far)")

    def test_watch_totals_match_stats(self):
        # writers in parallel, some refused, then stopped
        procs = [subprocess.Popen([RLCTL, "--db", self.db, "allow", "--cost", str(1 + i % 3),
                                   f"m:t{i % 4}"], env=self.env, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL) for i in range(24)]
        for p in procs:
            p.wait()
        d = self.json_of("stats", "--json")["totals"]
        self.assertGreater(d["refused"], 0)
        argv = [RLCTL, "--db", self.db, "watch", "--interval", "100ms"]
        status, out = self.run_pty(argv, until=lambda o: self.WATCH_TOTALS.search(o) is not None,
                                   interrupt=True, env=dict(self.env, TERM="xterm", NO_COLOR="1"))
        self.assertEqual(os.waitstatus_to_exitcode(status), 0, out)
        keys, allowed, refused = (int(x) for x in self.WATCH_TOTALS.search(out).groups())
        self.assertEqual((keys, allowed, refused), (d["keys"], d["allowed"], d["refused"]))

    def test_watch_totals_follow_a_reset(self):
        # a key reset (its row removed) while watch runs leaves its totals
        for i in range(6):
            self.allow(f"m:r{i % 3}")
        argv = [RLCTL, "--db", self.db, "watch", "--interval", "100ms"]
        state = {}

        def until(out):
            found = [tuple(int(x) for x in m.groups()) for m in self.WATCH_TOTALS.finditer(out)]
            if found and "after" not in state:
                self.ok("reset", "m:r0")
                state["after"] = self.json_of("stats", "--json")["totals"]
                state["seen"] = len(found)
                return False
            a = state.get("after")
            return a is not None and (a["keys"], a["allowed"], a["refused"]) in found[state["seen"]:]
        status, out = self.run_pty(argv, until=until, interrupt=True,
                                   env=dict(self.env, TERM="xterm", NO_COLOR="1"))
        self.assertEqual(os.waitstatus_to_exitcode(status), 0, out)
        self.assertEqual((state["after"]["keys"], state["after"]["allowed"]), (2, 4))
        self.assertRegex(out.decode(), r"keys 2 +admitted [\d.]+/s .*\(totals 4 admitted, 0 refused\)")

    def fill(self, n):
        fill_keys = os.path.join(os.path.dirname(RLCTL), "tests", "fill_keys")
        if not os.path.exists(fill_keys):
            self.skipTest("needs tests/fill_keys (built with the tests)")
        db = self.db + ".big"
        subprocess.run([fill_keys, db, str(n)], check=True, stdout=subprocess.DEVNULL, timeout=60)
        return db

    def test_watch_reads_a_bounded_slice(self):
        # 3000 keys at 100 ms: 1000 keys per refresh at most (10000 a second,
        # pages of 256 in as many short read transactions), so a pass takes
        # three refreshes and the first frames cannot have read them all
        db = self.fill(3000)
        stats = self.json_of("--db", db, "stats", "--json")["totals"]
        argv = [RLCTL, "--db", db, "watch", "--interval", "100ms"]

        def passes(out):
            return sum(1 for m in self.WATCH_READ.finditer(out) if m.group(5) == b", done")
        status, out = self.run_pty(argv, until=lambda o: passes(o) >= 2, interrupt=True,
                                   env=dict(self.env, TERM="xterm", NO_COLOR="1"))
        self.assertEqual(os.waitstatus_to_exitcode(status), 0, out)
        frames = [(int(m.group(1)), int(m.group(2)), int(m.group(3)), int(m.group(4)), m.group(5))
                  for m in self.WATCH_READ.finditer(out)]
        self.assertEqual(frames[0], (1000, 4, 1, 1000, b" so far"))
        for rows, txns, _, _, _ in frames:
            self.assertLessEqual(rows, 1000)
            self.assertLessEqual(txns, 4)
        # every key is read once per pass
        done = [f for f in frames if f[4] == b", done"]
        self.assertEqual([f[2:4] for f in done[:2]], [(1, 3000), (2, 3000)])
        keys, allowed, refused = (int(x) for x in self.WATCH_TOTALS.search(out).groups())
        self.assertEqual((keys, allowed, refused),
                         (stats["keys"], stats["allowed"], stats["refused"]))

    def test_watch_holds_no_read_transaction_between_refreshes(self):
        import sqlite3
        self.allow("m:x")
        argv = [RLCTL, "--db", self.db, "watch", "--interval", "1h"]
        result = []

        def check(out):
            if b"KEY" not in out or result:
                return bool(result)
            # watch drew its frame and sleeps until the next: a write, then a
            # checkpoint that must copy and truncate the whole WAL, which a
            # reader holding a snapshot would prevent (busy = 1)
            self.assertEqual(self.allow("m:y"), 0)
            con = sqlite3.connect(self.db)
            try:
                result.append(con.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone())
            finally:
                con.close()
            return True
        status, out = self.run_pty(argv, until=check, interrupt=True,
                                   env=dict(self.env, TERM="xterm", NO_COLOR="1"))
        self.assertEqual(os.waitstatus_to_exitcode(status), 0, out)
        self.assertEqual(result, [(0, 0, 0)])
        self.assertEqual(os.path.getsize(self.db + "-wal"), 0)

    def test_no_color_when_not_a_terminal(self):
        self.allow("m:c")
        for args in (["stats"], ["keys"], ["doctor"], ["tiers", "list"]):
            self.assertNotIn("\x1b", self.ok(*args))
