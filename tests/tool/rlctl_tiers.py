"""rlctl_tiers.py - policy: tiers of keys (assign, which, unassign), tiers
files (validate, load, list, show), and the default limits that programs
store in the database (which and inspect show them)."""
import os
import subprocess
import sys

from rlctl_common import BAD_TIERS, ERROR, SOURCE_DIR, TIERS, TIERS2

RLCTL = None  # the binary under test: set by test_rlctl.main()


class TiersTests:
    """Tests of assign/which/unassign and tiers: mixed into test_rlctl.RlctlTest."""

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
        self.assertEqual(out, f"loaded {self.tiers}: 3 tier(s), 2 key rule(s)\nno tier changed\n")
        bad = self.write("bad.yaml", BAD_TIERS)
        p = self.fails(1, "tiers", "load", bad)
        self.assertTrue(p.stderr.startswith(f"rlctl: {bad}:6:"), p.stderr)
        # Nothing of the bad file was applied.
        self.assertEqual(self.ok("which", "m:x"), "metered (rule 'm:*')\n")


    # ---- tiers list, show, load ---------------------------------------------

    def test_tiers_list_and_show(self):
        out = self.ok("tiers", "list")
        self.assertRegex(out, r"(?m)^TIER +DEFAULT +RULES +LIMITS$")
        self.assertRegex(out, r"(?m)^free +yes +1 +rps 5/s burst 10$")
        self.assertRegex(out, r"(?m)^metered +1 +hourly 10/h(our)?$")
        self.assertRegex(out, r"(?m)^pro +0 +rpm 600/min burst 50$")
        self.assertEqual(self.ok("tiers", "list", "--names"), "free\nmetered\npro\n")
        d = self.json_of("tiers", "list", "--json")
        self.assertEqual(d["default_tier"], "free")
        self.assertEqual([t["name"] for t in d["tiers"]], ["free", "metered", "pro"])
        free = d["tiers"][0]
        self.assertEqual((free["default"], free["unlimited"], free["rules"]), (True, False, ["ip:*"]))
        self.assertEqual(free["limits"], [{"name": "rps", "resource": "requests", "kind": "rate",
                                           "rate": "5/s", "count": 5, "period_ns": 10**9,
                                           "burst": 10}])
        self.assertEqual(d["rules"], [{"match": "ip:*", "tier": "free"},
                                      {"match": "m:*", "tier": "metered"}])
        out = self.ok("tiers", "show", "metered")
        self.assertRegex(out, r"(?m)^tier +metered$")
        self.assertRegex(out, r"(?m)^default +no$")
        self.assertRegex(out, r"(?m)^rules +'m:\*'$")
        self.assertRegex(out, r"(?m)^LIMIT +RESOURCE +KIND +RATE +BURST$")
        self.assertRegex(out, r"(?m)^hourly +requests +rate +10/h(our)? +10$")
        d = self.json_of("tiers", "show", "--json", "free")
        self.assertEqual((d["name"], d["default"], d["rules"]), ("free", True, ["ip:*"]))
        p = self.fails(ERROR, "tiers", "show", "gold")
        self.assertEqual((p.stdout, p.stderr), ("", "rlctl: no such tier: 'gold'\n"))
        empty = os.path.join(self.dir, "empty.db")
        subprocess.run([RLCTL, "--db", empty, "tiers", "load",
                        self.write("none.yaml", "version: 1\n")], check=True, env=self.env,
                       capture_output=True)
        p = subprocess.run([RLCTL, "--db", empty, "tiers", "list"], capture_output=True,
                           encoding="utf-8", env=self.env, timeout=60)
        self.assertIn("no tiers", p.stdout)

    def test_sliding_window_shown(self):
        self.ok("tiers", "load", self.write("win.yaml", """\
version: 1
tiers:
  win:
    limits:
      - { name: rpm, rate: 3/min, algorithm: sliding_window }
      - { name: rps, rate: 5/h, burst: 10 }
keys:
  - { match: "w:*", tier: win }
"""))
        out = self.ok("tiers", "list")
        self.assertRegex(out, r"(?m)^win +1 +rpm 3/min sliding window, rps 5/h burst 10$")
        out = self.ok("tiers", "show", "win")
        self.assertRegex(out, r"(?m)^rpm +requests +sliding_window +3/min +-$")
        self.assertRegex(out, r"(?m)^rps +requests +rate +5/h +10$")
        d = self.json_of("tiers", "show", "--json", "win")
        self.assertEqual([l["kind"] for l in d["limits"]], ["sliding_window", "rate"])
        # 5/h: no unit refills between the two commands, however slow the
        # machine (at 5/s a busy one refilled it and showed 10)
        self.ok("allow", "w:ann")
        d = self.json_of("inspect", "--json", "w:ann")
        self.assertEqual([(l["kind"], l["remaining"]) for l in d["limits"]],
                         [("sliding_window", 2), ("rate", 9)])
        self.assertRegex(self.ok("inspect", "w:ann"), r"(?m)^rpm +requests +3/min +- \(window\) +2 ")

    def test_load_says_what_changed(self):
        out = self.ok("tiers", "load", self.write("tiers2.yaml", TIERS2))
        lines = out.splitlines()
        self.assertEqual(lines[0], f"loaded {self.dir}/tiers2.yaml: 3 tier(s), 1 key rule(s)")
        self.assertEqual(sorted(lines[1:]), sorted([
            "added tier 'gold': unlimited",
            "changed tier 'pro': rpm 600/min burst 50 -> rpm 1200/min burst 100",
            "removed tier 'metered'",
            "default tier: free -> pro",
            "key rules changed: 2 before, 1 now"]))
        self.assertEqual(self.ok("tiers", "load", self.write("tiers2.yaml", TIERS2)).splitlines()[1:],
                         ["no tier changed"])

    # ---- default limits stored by programs -----------------------------

    # A program that opens the database with default limits (rate, burst)
    # through the Python binding over the librl next to rlctl, decides
    # once on KEY and prints what rl_open said.
    PROGRAM = """if True:
        import sys
        sys.path.insert(0, sys.argv[1])
        import pyrl
        try:
            with pyrl.Limiter(sys.argv[2], default_limits=[{"rate": sys.argv[3],
                              "burst": int(sys.argv[4])}]) as lim:
                lim.allow(sys.argv[5])
            print("ok")
        except pyrl.RLError as e:
            print(type(e).__name__, e.code)
    """

    def program(self, rate, burst, key):
        if os.environ.get("RL_TEST_NO_PYRL"):
            self.skipTest("librl is built with a sanitizer, which Python cannot load")
        lib = os.path.join(os.path.dirname(RLCTL), "librl.so")
        if not os.path.exists(lib):
            self.skipTest("no librl.so next to rlctl for the program")
        p = subprocess.run([sys.executable, "-c", self.PROGRAM,
                            os.path.join(SOURCE_DIR, "bindings", "python"), self.db, rate,
                            str(burst), key], capture_output=True, encoding="utf-8",
                           env=dict(self.env, RL_LIBRARY=lib), timeout=60)
        self.assertEqual(p.stderr, "")
        return p.stdout.strip()

    def test_program_defaults_shown(self):
        # no default_tier: keys that no rule matches get the default limits
        self.ok("tiers", "load", self.write("nodefault.yaml",
                                            TIERS.replace("default_tier: free\n", "")))
        self.assertEqual(self.ok("which", "user:carol"),
                         "none (no rule, default tier or default limits applies)\n")
        p = self.fails(ERROR, "inspect", "user:carol")
        self.assertEqual((p.stdout, p.stderr), ("", "rlctl: no such key: 'user:carol' (never "
                                                    "seen, and no tier or default limits "
                                                    "cover it)\n"))
        self.assertEqual(self.program("60/min", 10, "user:carol"), "ok")
        self.assertEqual(self.ok("which", "user:carol"),
                         "default (default limits: limit1 60/min burst 10)\n")
        self.assertEqual(self.json_of("which", "--json", "user:carol"),
                         {"key": "user:carol", "tier": "default",
                          "tier_source": "default_limits", "rule": None})
        d = self.json_of("inspect", "--json", "user:carol")
        self.assertEqual((d["tier"], d["tier_source"], d["allowed"]),
                         ("default", "default_limits", 1))
        self.assertEqual([(l["name"], l["rate"], l["burst"], l["remaining"])
                          for l in d["limits"]], [("limit1", "60/min", 10, 9)])
        out = self.ok("inspect", "user:carol")
        self.assertRegex(out, r"(?m)^tier +default \(default limits\)$")
        self.assertRegex(out, r"(?m)^limit1 +requests +60/min +10 +9 ")
        # a never-seen key they cover is shown, with full buckets
        self.assertEqual(self.json_of("inspect", "--json", "user:dave")["limits"][0]["remaining"],
                         10)
        # a program with other defaults is refused, and changes nothing
        self.assertEqual(self.program("60/min", 60, "user:carol"), "DefaultsMismatch -19")
        self.assertEqual(self.ok("which", "user:carol"),
                         "default (default limits: limit1 60/min burst 10)\n")
        # the stored ones are a tier like any other: rlctl lists them
        self.assertRegex(self.ok("tiers", "list"), r"(?m)^default +")

    def test_default_tier_limits_without_program(self):
        # a tiers file's own tier "default" is the default limits too
        self.ok("tiers", "load", self.write("deftier.yaml", TIERS.replace(
            "default_tier: free\n", "").replace(
            "tiers:\n", "tiers:\n  default:\n    limits:\n"
            "      - { name: rpm, rate: 30/min, burst: 3 }\n", 1)))
        self.assertEqual(self.ok("which", "user:erin"),
                         "default (default limits: rpm 30/min burst 3)\n")
        self.assertEqual(self.ok("which", "ip:1.2.3.4"), "free (rule 'ip:*')\n")
