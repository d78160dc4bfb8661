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
"""
import errno
import json
import math
import os
import pty
import pwd
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

SOURCE_DIR = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

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

USAGE, ERROR, PERM = 2, 3, 4

COMMANDS = ("stats", "keys", "inspect", "watch", "allow", "reset", "prune", "penalize", "leases",
            "assign", "unassign", "which", "tiers", "doctor", "export", "import", "version")
TIERS_SUBS = ("list", "show", "validate", "load")

# tiers.yaml changed: pro faster, metered gone, gold new, default pro.
TIERS2 = """\
version: 1
default_tier: pro
tiers:
  free:
    limits:
      - { name: rps, rate: 5/s, burst: 10 }
  pro:
    limits:
      - { name: rpm, rate: 1200/min, burst: 100 }
  gold: { unlimited: true }
keys:
  - { match: "ip:*", tier: free }
"""

# ---- the Prometheus text exposition format (0.0.4), line by line ---------

METRIC = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
LABEL = r"[a-zA-Z_][a-zA-Z0-9_]*"
# A label value: any character but backslash, double quote and line feed,
# which only appear escaped (\\, \", \n).
LABEL_VALUE = r'"(?:[^"\\\n]|\\[\\"n])*"'
SAMPLE = re.compile(rf"^({METRIC})(?:\{{((?:{LABEL}={LABEL_VALUE})(?:,{LABEL}={LABEL_VALUE})*)?\}})?"
                    rf" (\S+)(?: (-?\d+))?$")
PAIR = re.compile(rf"({LABEL})=({LABEL_VALUE})")


def unescape_label(v):
    return re.sub(r'\\(.)', lambda m: {"n": "\n"}.get(m.group(1), m.group(1)), v[1:-1])


def parse_prometheus(text):
    """Checks text against the exposition format and returns
    {(name, ((label, value), ...)): float} and {name: type}. Raises
    AssertionError with the line number on the first violation."""
    assert text.endswith("\n"), "the last line must end with a line feed"
    samples, types, helps, done, current = {}, {}, set(), set(), None
    for n, line in enumerate(text[:-1].split("\n"), 1):
        where = f"line {n}: {line!r}"
        if line.startswith("#"):
            m = re.match(rf"^# (HELP|TYPE) ({METRIC}) (.*)$", line)
            if not m:
                continue  # any other comment is allowed
            kind, name, rest = m.groups()
            assert name not in done, f"{where}: family {name} seen before, not contiguous"
            if kind == "HELP":
                assert name not in helps, f"{where}: second HELP"
                assert not re.search(r"\\[^\\n]", rest), f"{where}: bad escape in HELP"
                helps.add(name)
            else:
                assert name not in types, f"{where}: second TYPE"
                assert rest in ("counter", "gauge", "histogram", "summary", "untyped"), where
                assert not any(k[0] == name for k in samples), f"{where}: TYPE after samples"
                types[name] = rest
            if current and current != name:
                done.add(current)
            current = name
            continue
        assert line.strip(), f"{where}: empty line inside the output"
        m = SAMPLE.match(line)
        assert m, f"{where}: not a sample"
        name, labels, value, _ = m.groups()
        family = name
        assert family not in done, f"{where}: family {family} is not contiguous"
        if current and current != family:
            done.add(current)
        current = family
        pairs = tuple(PAIR.findall(labels or ""))
        names = [k for k, _ in pairs]
        assert len(names) == len(set(names)), f"{where}: label given twice"
        key = (name, tuple((k, unescape_label(v)) for k, v in pairs))
        assert key not in samples, f"{where}: duplicate series"
        if value in ("+Inf", "-Inf", "NaN"):
            v = float(value.replace("Inf", "inf"))
        else:
            assert re.match(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$", value), where
            v = float(value)
        if types.get(name) == "counter":
            assert name.endswith("_total"), f"{where}: a counter's name ends in _total"
            assert v >= 0 or math.isnan(v), f"{where}: negative counter"
        samples[key] = v
    return samples, types


def redis_call(url, *args):
    """One command to the Redis server of a redis:// or unix:// address (its
    database, RL_REDIS_PASSWORD), for tests that write what rl never would;
    returns the first line of the reply. Standard library only."""
    import socket
    import urllib.parse
    u = urllib.parse.urlsplit(url)
    query = urllib.parse.parse_qs(u.query)
    if u.scheme == "unix":
        sock = socket.socket(socket.AF_UNIX)
        sock.connect(u.path)
        db = query.get("db", ["0"])[0]
    else:
        sock = socket.create_connection((u.hostname, u.port or 6379))
        db = u.path.strip("/") or "0"
    cmds = []
    if os.environ.get("RL_REDIS_PASSWORD"):
        cmds.append(["AUTH"] + ([u.username] if u.username else []) +
                    [os.environ["RL_REDIS_PASSWORD"]])
    cmds += [["SELECT", db], list(args)]
    with sock, sock.makefile("rb") as f:
        for cmd in cmds:
            parts = [a if isinstance(a, bytes) else str(a).encode() for a in cmd]
            sock.sendall(b"*%d\r\n" % len(parts) +
                         b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in parts))
            line = f.readline()
            assert not line.startswith(b"-"), line
            if line.startswith(b"$") and int(line[1:]) >= 0:
                f.read(int(line[1:]) + 2)
    return line


class RlctlTest(unittest.TestCase):
    REDIS = False

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
        for cmd in COMMANDS:
            self.assertRegex(out, rf"(?m)^  {cmd} ")
        for code in range(5):
            self.assertRegex(out, rf"(?m)^  {code}  \S")
        self.assertIn("NO_COLOR", out)

    def test_command_help(self):
        for cmd in [[c] for c in COMMANDS] + [["tiers", s] for s in TIERS_SUBS]:
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
        for typo, meant in (("doctr", "doctor"), ("exprot", "export"), ("kyes", "keys"),
                            ("prnue", "prune")):
            p = self.fails(USAGE, typo)
            self.assertEqual(p.stderr, f"rlctl: unknown command '{typo}' (did you mean '{meant}'?)\n")
        p = self.fails(USAGE, "tiers", "lst")
        self.assertEqual(p.stderr, "rlctl: unknown command 'tiers lst' (did you mean 'tiers list'?)\n")

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
        for cmd in COMMANDS:
            if cmd in ("tiers",):
                continue
            p = self.fails(USAGE, cmd, "--no-such-flag")
            self.assertEqual(p.stderr, f"rlctl: {cmd}: unknown option '--no-such-flag' "
                                       f"(see 'rlctl {cmd} --help')\n")

    def test_bad_arguments_are_usage_errors(self):
        for args in (["allow", "--cost", "x", "k"], ["allow", "--cost", "-1", "k"],
                     ["allow", "--wait", "5x", "k"], ["allow"], ["allow", "a", "b"],
                     ["allow", "--cost"], ["stats", "--sort", "size"], ["stats", "--top", "-1"],
                     ["stats", "--top", "3", "ip:1"], ["inspect"], ["which"], ["assign", "k"],
                     ["unassign"], ["reset"], ["tiers", "load"], ["stats", "--json=yes"],
                     ["allow", "--quiet", "--json", "k"], ["stats", "--tier"],
                     ["stats", "--format", "xml"], ["stats", "--format", "prometheus", "k"],
                     ["stats", "--json", "--format", "json"], ["stats", "--tier", "free", "k"],
                     ["keys", "k"], ["keys", "--json", "--all-limits"], ["keys", "--match="],
                     ["prune"], ["prune", "--idle", "5x"], ["prune", "--idle", "1h", "k"],
                     ["reset", "--all", "--match", "x"], ["reset", "k", "--tier", "free"],
                     ["reset", "--all"], ["watch", "--interval", "1ms"], ["watch", "--top", "0"],
                     ["watch", "k"], ["doctor", "k"], ["export", "a", "b"], ["import"],
                     ["import", "a", "b"], ["tiers", "show"], ["tiers", "show", "a", "b"],
                     ["tiers", "list", "k"], ["tiers", "list", "--json", "--names"]):
            p = self.fails(USAGE, *args)
            self.assertEqual(p.stdout, "", args)
            self.assertRegex(p.stderr, r"^rlctl: [^\n]+ \(see 'rlctl [a-z ]+ --help'\)\n$")
        p = self.fails(USAGE, "--db", db=False)
        self.assertEqual(p.stderr, "rlctl: option '--db' needs a value (see 'rlctl --help')\n")
        p = self.fails(USAGE, "tiers")
        self.assertIn("usage: rlctl tiers", p.stderr)

    def test_man_page_covers_every_command_and_flag(self):
        with open(os.path.join(SOURCE_DIR, "docs", "rlctl.1"), encoding="utf-8") as f:
            page = f.read()
        for cmd in [[c] for c in COMMANDS] + [["tiers", s] for s in TIERS_SUBS]:
            self.assertRegex(page, rf'(?m)^\.SS "{" ".join(cmd)}\b', cmd)
            for flag in set(re.findall(r"--[a-z][a-z-]*", self.ok(*cmd, "--help", db=False))):
                self.assertIn(flag.replace("-", r"\-"), page, f"{cmd}: {flag}")
        for code in range(5):
            self.assertIn(f".B {code}\n", page)
        if shutil.which("man"):
            p = subprocess.run(["man", "--warnings", "-l", os.path.join(SOURCE_DIR, "docs", "rlctl.1")],
                               capture_output=True, encoding="utf-8", timeout=60,
                               env=dict(self.env, MANWIDTH="80", LC_ALL="C.UTF-8", MANPAGER="cat",
                                        PAGER="cat"))
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertEqual(p.stderr, "")
            self.assertIn("EXIT STATUS", p.stdout)

    @unittest.skipUnless(shutil.which("bash"), "no bash")
    def test_bash_completion(self):
        self.allow("m:x")
        script = f"""
source {os.path.join(SOURCE_DIR, "tool", "rlctl.bash")}
c() {{ COMP_WORDS=("$@"); COMP_CWORD=$((${{#COMP_WORDS[@]}} - 1)); COMPREPLY=(); _rlctl
      echo "${{COMPREPLY[*]}}"; }}
c rlctl ''
c rlctl do
c rlctl --db {self.db} stats --tier ''
c rlctl --db = {self.db} tiers show m
c rlctl --db {self.db} assign user : bob ''
c rlctl stats --s
c rlctl stats --sort l
c rlctl stats --format p
c rlctl tiers ''
c rlctl reset --
c rlctl --d
"""
        # the completion runs `rlctl` by name: whatever RLCTL is (a valgrind
        # wrapper, say), it answers under that name
        bindir = os.path.join(self.dir, "bin")
        os.mkdir(bindir)
        os.symlink(RLCTL, os.path.join(bindir, "rlctl"))
        env = dict(self.env, PATH=bindir + os.pathsep + self.env.get("PATH", ""))
        p = subprocess.run(["bash", "--norc", "--noprofile", "-c", script], capture_output=True,
                           encoding="utf-8", env=env, timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(p.stdout.split("\n")[:-1], [
            " ".join(COMMANDS), "doctor", "free metered pro", "metered",
            "free metered pro", "--sort", "last-seen", "prometheus",
            "list show validate load", "--match --tier --all --yes --dry-run --help", "--db"])

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

    # ---- a database written by someone else (issue 15) -------------------

    def plant_key(self, key, allowed):
        """A key row written behind rl's back, as a tampered file holds it."""
        import sqlite3
        db = sqlite3.connect(self.db)
        db.execute("INSERT INTO rl_keys (key, allowed, units, first_seen, last_seen)"
                   " VALUES (?, ?, ?, 1, 1)", (key, allowed, allowed))
        db.commit()
        db.close()

    def damage_policy(self):
        """A stored policy that rl refuses to read (RL_ECORRUPT)."""
        import sqlite3
        db = sqlite3.connect(self.db)
        db.execute("UPDATE rl_limits SET count = -1 WHERE tier = 'free'")
        db.commit()
        db.close()

    def test_tampered_keys_are_refused_not_printed(self):
        # A newline and an escape sequence in a stored key forged table rows
        # ("fake-key 999999" on a line of its own) and drove the terminal.
        self.allow("m:ok")
        self.plant_key("m:x\n\x1b[2Kfake-key 999999", 999999)
        for args in (["stats"], ["stats", "--top", "0"], ["stats", "--json"],
                     ["stats", "--format", "prometheus"], ["keys"], ["keys", "--json"],
                     ["reset", "--dry-run", "--match", "m:*"]):
            p = self.fails(ERROR, *args)
            self.assertNotIn("fake-key", p.stdout, args)  # (a dry run lists m:ok first)
            self.assertRegex(p.stderr, r"^rlctl: stored key 'm:x\?\?\[2Kfake-key 999999' is not "
                                       r"a valid key \(tampered\?\)\n$", args)
        p = self.fails(1, "doctor")
        self.assertNotIn("\x1b", p.stdout)
        self.assertRegex(p.stdout, r"(?m)^bucket states +FAIL +1 of 2 key\(s\) stored under a "
                                   r"name that is not a valid key \(first: 'm:x\?\?\[2Kfake-key")
        self.assertRegex(self.ok("reset", "--all", "--yes"), r"^reset 2 key\(s\)\n$")
        self.assertIn("no keys", self.ok("stats"))

    def test_invisible_characters_are_escaped(self):
        # U+202E (right-to-left override) is valid UTF-8 and may be in a key,
        # but shows the text after it reversed ("m:<U+202E>gnp.exe" reads
        # "m:exe.png"); U+200B is invisible. Both are escaped in text and in
        # Prometheus lines, and are \u escapes in JSON, which decode to them.
        key = "m:\u202egnp.exe\u200b"
        shown = "m:\\u202egnp.exe\\u200b"
        self.assertEqual(self.allow(key), 0)
        for args in (["stats"], ["stats", key], ["keys"], ["keys", "--all-limits"],
                     ["inspect", key], ["reset", "--dry-run", "--match", "m:*"],
                     ["assign", key, "pro"], ["unassign", key]):
            out = self.ok(*args)
            self.assertNotIn("\u202e", out, args)
            self.assertIn(shown, out, args)
        out = self.ok("stats", "--format", "prometheus")
        self.assertNotIn("\u202e", out)
        samples, _ = parse_prometheus(out)
        self.assertIn(("rl_key_units_total", (("key", shown), ("tier", "metered"))), samples)
        for args, keys_of in ((["stats", "--json"], lambda d: [k["key"] for k in d["keys"]]),
                              (["keys", "--json"], lambda d: [k["key"] for k in d["keys"]]),
                              (["inspect", "--json", key], lambda d: [d["key"]])):
            p = self.run_raw(*args)
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertNotIn("\u202e", p.stdout, args)
            self.assertIn('"m:\\u202egnp.exe\\u200b"', p.stdout, args)
            self.assertEqual(keys_of(json.loads(p.stdout)), [key], args)
        p = self.fails(ERROR, "stats", "m:\u202eno")
        self.assertEqual(p.stderr, "rlctl: no such key: 'm:\\u202eno'\n")

    def test_tampered_names_are_refused(self):
        # Tier names from the file are checked as names (A-Z a-z 0-9 _ . : -)
        # when read, as the Redis store's decoder does.
        if self.REDIS:
            self.skipTest("a Redis policy is one blob, checked whole by its decoder")
        import sqlite3
        db = sqlite3.connect(self.db)
        db.execute("UPDATE rl_tiers SET name = 'pro\n\x1b[31mfree' WHERE name = 'pro'")
        db.execute("UPDATE rl_limits SET tier = 'pro\n\x1b[31mfree' WHERE tier = 'pro'")
        db.commit()
        db.close()
        for args in (["tiers", "list"], ["tiers", "list", "--names"], ["tiers", "show", "free"],
                     ["stats"], ["inspect", "m:1"], ["stats", "--format", "prometheus"]):
            p = self.fails(ERROR, *args)
            self.assertEqual(p.stdout, "", args)
            self.assertEqual(p.stderr, "rlctl: stored tier name 'pro??[31mfree' is not valid "
                                       "(tampered?)\n", args)

    def test_load_replaces_a_damaged_policy(self):
        # A policy rl cannot read is replaced by a whole new one: tiers load
        # and import (on Redis, both failed with "damaged policy"; on SQLite,
        # tiers load exited 3 reading the old one to say what changed).
        self.assertEqual(self.allow("ip:1"), 0)
        export = self.write("backup.json", self.ok("export"))
        for replace in (["tiers", "load", self.tiers], ["import", export]):
            self.damage_policy()
            p = self.fails(ERROR, "tiers", "list")
            self.assertRegex(p.stderr, r"^rlctl: .*(damaged|stored).*\n$")
            self.fails(ERROR, "allow", "ip:1")
            out = self.ok(*replace)
            if replace[0] == "tiers":
                self.assertRegex(out, r"(?m)^replaced a damaged policy \(.+\)$")
            self.assertRegex(self.ok("tiers", "list"), r"(?m)^free +yes +1 +rps 5/s burst 10$")
            self.assertEqual(self.allow("ip:1"), 0)

    def test_symlinked_database_is_not_followed(self):
        # `ln -s victim.txt e.db; rlctl --db e.db tiers load t.yaml` turned an
        # empty victim.txt into a database, with -wal and -shm beside it.
        if self.REDIS:
            self.skipTest("no file on Redis")
        victim = self.write("victim.txt", "")
        link = os.path.join(self.dir, "e.db")
        os.symlink("victim.txt", link)
        for args in (["tiers", "load", self.tiers], ["allow", "k"], ["stats"], ["tiers", "list"]):
            p = self.fails(PERM, "--db", link, *args, db=False)
            self.assertEqual(p.stderr, f"rlctl: {link}: is a symbolic link, which rl does not "
                                       f"follow: remove it, or name the file it points to\n")
        self.assertEqual(os.path.getsize(victim), 0)
        for side in ("-wal", "-shm", "-rlshm"):
            self.assertFalse(os.path.lexists(link + side), side)
            self.assertFalse(os.path.lexists(victim + side), side)
        os.unlink(victim)  # a dangling link: nothing is created at its target either
        self.fails(PERM, "--db", link, "tiers", "load", self.tiers, db=False)
        self.assertFalse(os.path.lexists(victim))
        # a linked directory is fine
        os.symlink(self.dir, os.path.join(self.dir, "dirlink"))
        self.ok("--db", os.path.join(self.dir, "dirlink", "rl.db"), "stats", db=False)

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
        self.assertEqual(out, f"loaded {self.tiers}: 3 tier(s), 2 key rule(s)\nno tier changed\n")
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

    def many_keys(self, n=3000):
        """n keys m:00000... (by import: quicker than n rlctl runs), so that
        keys and export write far more than a pipe holds (64 KiB)."""
        self.allow("m:00000")
        doc = json.loads(self.ok("export"))
        k = doc["keys"][0]
        doc["keys"] = [dict(k, key=f"m:{i:05d}") for i in range(n)]
        self.ok("import", self.write("many.json", json.dumps(doc)))

    def test_closed_pipe_is_an_error_not_sigpipe(self):
        # `rlctl keys | head -1`: the reader leaves early. rlctl must not die
        # of SIGPIPE (status 141 in a shell) but exit 3, quietly: a closed
        # pipe is no news to the one who closed it.
        self.many_keys()
        for args, take in ((["keys"], "line"), (["export"], 10), (["stats", "--top", "0"], "line"),
                           (["keys", "--json"], 10)):
            p = subprocess.Popen([RLCTL, "--db", self.db] + args, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, env=self.env)
            first = p.stdout.readline() if take == "line" else p.stdout.read(take)
            p.stdout.close()
            err = p.stderr.read()
            p.stderr.close()
            self.assertEqual(p.wait(timeout=60), ERROR, args)
            self.assertTrue(first, args)
            self.assertEqual(err, b"", args)

    @unittest.skipUnless(os.path.exists("/dev/full"), "no /dev/full")
    def test_write_error_says_why(self):
        # The errno of the write that failed, not that of a later call
        # ("Input/output error" for a full disk).
        self.many_keys()
        for args in (["export"], ["export", "-"], ["keys"], ["keys", "--json"],
                     ["stats", "--top", "0"]):
            with open("/dev/full", "w") as full:
                p = self.run_raw(*args, stdout=full)
            self.assertEqual(p.returncode, ERROR, args)
            self.assertEqual(p.stderr, "rlctl: write error: No space left on device\n", args)
        # export FILE: a file size limit stands in for a full disk
        backup = os.path.join(self.dir, "backup.json")

        def small_files():
            import resource
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (100 * 1024, 100 * 1024))
        p = subprocess.run([RLCTL, "--db", self.db, "export", backup], capture_output=True,
                           encoding="utf-8", env=self.env, timeout=60, preexec_fn=small_files)
        self.assertEqual(p.returncode, ERROR)
        self.assertEqual(p.stderr, f"rlctl: {backup}: {os.strerror(errno.EFBIG)}\n")
        self.assertFalse(os.path.exists(backup))
        self.assertEqual([f for f in os.listdir(self.dir) if ".tmp." in f], [])

    def test_missing_database_is_not_created_by_reading(self):
        missing = os.path.join(self.dir, "missing.db")
        for args in (["stats"], ["inspect", "k"], ["which", "k"]):
            p = subprocess.run([RLCTL, "--db", missing] + args, capture_output=True,
                               encoding="utf-8", env=self.env, timeout=60)
            self.assertEqual(p.returncode, ERROR, args)
            self.assertRegex(p.stderr, r"^rlctl: .*missing\.db")
        self.assertFalse(os.path.exists(missing))

    def test_default_database_paths(self):
        base = {k: v for k, v in self.env.items() if k != "HOME"}
        state = os.path.join(self.dir, "state")
        cases = (
            (dict(base, HOME=self.dir, XDG_STATE_HOME=state), os.path.join(state, "rl", "rl.db")),
            # a relative XDG_STATE_HOME is ignored, as the XDG spec says
            (dict(base, HOME=self.dir, XDG_STATE_HOME="rel"),
             os.path.join(self.dir, ".local", "state", "rl", "rl.db")),
            (dict(base, HOME=self.dir, RL_DB=""),
             os.path.join(self.dir, ".local", "state", "rl", "rl.db")),
        )
        for env, path in cases:
            self.assertIn(f"(here: {path})", self.ok("--help", db=False, env=env))
            # read-only commands never create it
            p = self.run_raw("stats", db=False, env=env)
            self.assertEqual(p.returncode, ERROR)
            self.assertFalse(os.path.exists(path))
            self.ok("tiers", "load", self.tiers, db=False, env=env)
            self.assertTrue(os.path.isfile(path), path)
            self.assertEqual(self.run_raw("allow", "m:path", db=False, env=env).returncode, 0)
            d = json.loads(self.ok("stats", "--json", db=False, env=env))
            self.assertEqual([k["key"] for k in d["keys"]], ["m:path"])
            self.assertEqual(os.stat(path).st_mode & 0o777, 0o600)
            os.remove(path)

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

    def run_pty(self, argv, answer=None, env=None, until=None, timeout=30, interrupt=False):
        """Runs argv with a pseudo-terminal as its controlling terminal,
        stdin and stdout; writes `answer` once `until` (bytes) shows, or
        sends SIGINT if interrupt. Returns (status, output bytes)."""
        pid, fd = pty.fork()
        if pid == 0:
            try:
                os.execve(argv[0], argv, env or self.env)
            finally:
                os._exit(127)
        out, sent, deadline = b"", False, time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                r, _, _ = select.select([fd], [], [], 0.1)
                if r:
                    try:
                        chunk = os.read(fd, 65536)
                    except OSError as e:  # EIO: the child closed the terminal
                        if e.errno != errno.EIO:
                            raise
                        break
                    if not chunk:
                        break
                    out += chunk
                if not sent and until is not None and until(out):
                    sent = True
                    if interrupt:
                        os.kill(pid, signal.SIGINT)
                    else:
                        os.write(fd, answer)
            else:
                os.kill(pid, signal.SIGKILL)
                self.fail(f"{argv} did not finish: {out!r}")
            _, status = os.waitpid(pid, 0)
        finally:
            os.close(fd)
        return status, out

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

    # ---- doctor ---------------------------------------------------------------

    def test_doctor(self):
        self.allow("m:d")
        out = self.ok("doctor")
        self.assertRegex(out, r"(?m)^CHECK +STATUS +DETAIL$")
        for check in ("journal mode", "synchronous", "busy timeout", "schema", "integrity",
                      "permissions", "side files", "filesystem", "policy", "bucket states",
                      "assignments"):
            self.assertRegex(out, rf"(?m)^{check} +(ok|warn) +\S")
        self.assertRegex(out, r"(?m)^journal mode +ok +wal$")
        self.assertRegex(out, r"(?m)^\d+ check\(s\): 0 failed, \d+ warning\(s\)$")
        d = self.json_of("doctor", "--json")
        self.assertTrue(d["ok"])
        self.assertEqual(d["failed"], 0)
        self.assertEqual(d["database"], self.db)
        self.assertEqual({c["check"]: c["status"] for c in d["checks"]}["integrity"], "ok")
        # a database every user may read fails
        os.chmod(self.db, 0o644)
        p = self.fails(1, "doctor")
        self.assertRegex(p.stdout, r"(?m)^permissions +FAIL +mode 0644")
        self.assertRegex(p.stdout, r"(?m)^side files +FAIL ")
        d = self.json_of("doctor", "--json", code=1)
        self.assertFalse(d["ok"])
        self.assertEqual({c["check"]: c["status"] for c in d["checks"]}["permissions"], "fail")
        # not an rl database: a failed check, not a crash
        other = self.write("other.db", "this is not a database, just text" * 100)
        p = subprocess.run([RLCTL, "--db", other, "doctor"], capture_output=True,
                           encoding="utf-8", env=self.env, timeout=60)
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertRegex(p.stdout, r"(?m)^open +FAIL +\S")
        p = subprocess.run([RLCTL, "--db", os.path.join(self.dir, "missing.db"), "doctor"],
                           capture_output=True, encoding="utf-8", env=self.env, timeout=60)
        self.assertEqual(p.returncode, ERROR)
        self.assertRegex(p.stderr, r"^rlctl: .*missing\.db: No such file")

    # ---- export and import --------------------------------------------------

    def test_export_import(self):
        self.allow("m:e1", "--cost", "4")
        self.allow("ip:e2")
        self.ok("assign", "user:e3", "pro")
        backup = os.path.join(self.dir, "backup.json")
        self.assertEqual(self.ok("export", backup), f"exported to {backup}\n")
        self.assertEqual(os.stat(backup).st_mode & 0o777, 0o600)
        self.assertEqual([f for f in os.listdir(self.dir) if ".tmp." in f], [])
        with open(backup, encoding="utf-8") as f:
            doc = json.load(f)
        self.assertEqual((doc["format"], doc["version"]), ("rl-export", 1))
        self.assertEqual(doc["settings"], {"default_tier": "free", "fail_mode": None})
        self.assertEqual([t["name"] for t in doc["tiers"]], ["free", "metered", "pro"])
        self.assertEqual(doc["rules"], [{"match": "ip:*", "tier": "free"},
                                        {"match": "m:*", "tier": "metered"}])
        keys = {k["key"]: k for k in doc["keys"]}
        self.assertEqual(sorted(keys), ["ip:e2", "m:e1", "user:e3"])
        self.assertEqual((keys["m:e1"]["allowed"], keys["m:e1"]["units"]), (1, 4))
        slot = keys["m:e1"]["slots"][0]
        self.assertEqual((slot["kind"], slot["count"], slot["period_ns"], slot["burst"]),
                         ("gcra", 10, 3600 * 10**9, 10))
        self.assertRegex(slot["id"], r"^[0-9a-f]{16}$")
        self.assertEqual((keys["user:e3"]["tier"], keys["user:e3"]["slots"]), ("pro", []))
        # stdout, and the same document
        streamed = json.loads(self.ok("export"))
        del streamed["exported_at_ns"], doc["exported_at_ns"]
        self.assertEqual(streamed, doc)
        # into another database
        other = os.path.join(self.dir, "other.db")
        p = subprocess.run([RLCTL, "--db", other, "import", backup], capture_output=True,
                           encoding="utf-8", env=self.env, timeout=60)
        self.assertEqual((p.returncode, p.stderr), (0, ""))
        self.assertEqual(p.stdout, f"imported {backup}: 3 tier(s), 2 key rule(s), 3 key(s)\n")
        p = subprocess.run([RLCTL, "--db", other, "inspect", "--json", "m:e1"], capture_output=True,
                           encoding="utf-8", env=self.env, timeout=60)
        self.assertEqual(json.loads(p.stdout)["limits"][0]["remaining"], 6)
        p = subprocess.run([RLCTL, "--db", other, "export"], capture_output=True,
                           encoding="utf-8", env=self.env, timeout=60)
        again = json.loads(p.stdout)
        del again["exported_at_ns"]
        self.assertEqual(again, doc)

    def test_import_refuses_invalid_files_and_changes_nothing(self):
        self.allow("m:keep")
        before = json.loads(self.ok("export"))
        good = json.loads(self.ok("export"))
        cases = [
            ("not json {", "not valid JSON"),
            (json.dumps({"format": "rl-export", "version": 9}), "not supported"),
            (json.dumps(dict(good, extra=1)), "unknown member 'extra'"),
            (json.dumps(dict(good, keys=[dict(good["keys"][0], key="bad\u0001key")])),
             "not a valid key"),
            (json.dumps(dict(good, tiers=[dict(good["tiers"][0], name="no spaces")])),
             "not a valid tier name"),
            (json.dumps(dict(good, keys=good["keys"] * 2)), "given twice"),
        ]
        for text, msg in cases:
            f = self.write("bad.json", text)
            p = self.fails(1, "import", f)
            self.assertEqual(p.stdout, "")
            self.assertRegex(p.stderr, rf"^rlctl: {re.escape(f)}: import: .*{re.escape(msg)}")
        after = json.loads(self.ok("export"))
        del before["exported_at_ns"], after["exported_at_ns"]
        self.assertEqual(before, after)
        p = self.fails(ERROR, "import", os.path.join(self.dir, "missing.json"))
        self.assertRegex(p.stderr, r"^rlctl: .*missing\.json: No such file")
        # stdin
        p = subprocess.run([RLCTL, "--db", self.db, "import", "-"], input=json.dumps(good),
                           capture_output=True, encoding="utf-8", env=self.env, timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr)

    def test_files_that_are_not_regular_or_too_large(self):
        # A FIFO blocked `tiers validate` and `tiers load` (and rl_open)
        # until some process wrote to it; a device may never end. Both are
        # refused before a byte is read.
        fifo = os.path.join(self.dir, "fifo")
        os.mkfifo(fifo)
        cases = ((("tiers", "validate", fifo), False, "cannot read: not a regular file (a FIFO)"),
                 (("tiers", "load", fifo), True, "cannot read: not a regular file (a FIFO)"),
                 (("tiers", "validate", "/dev/zero"), False,
                  "cannot read: not a regular file (a character device)"),
                 (("import", fifo), True, "not a regular file"),
                 (("import", "/dev/zero"), True, "not a regular file"))
        for args, db, msg in cases:
            argv = [RLCTL] + (["--db", self.db] if db else []) + list(args)
            try:
                p = subprocess.run(argv, capture_output=True, encoding="utf-8", env=self.env,
                                   timeout=10)
            except subprocess.TimeoutExpired:
                self.fail(f"rlctl {args} hangs")
            self.assertEqual(p.returncode, ERROR, args)
            self.assertEqual(p.stdout, "")
            self.assertRegex(p.stderr, rf"^rlctl: {re.escape(args[-1])}: {re.escape(msg)}[^\n]*\n$")
        # /dev/zero on stdin: refused at its first byte, not read forever
        with open("/dev/zero", "rb") as zero:
            p = subprocess.run([RLCTL, "--db", self.db, "import", "-"], stdin=zero,
                               capture_output=True, encoding="utf-8", env=self.env, timeout=10)
        self.assertEqual(p.returncode, 1)
        self.assertEqual(p.stderr, "rlctl: -: import: document: not JSON text (it contains a "
                                   "NUL byte)\n")
        # larger than an import reads (1 GB, SQLite's longest text): refused
        # at once, from its size (a sparse file: it takes no disk)
        big = os.path.join(self.dir, "big.json")
        with open(big, "wb") as f:
            f.truncate(10**9 + 1)
        p = self.fails(1, "import", big)
        self.assertEqual(p.stderr, f"rlctl: {big}: too large: 1000000001 bytes, more than the "
                                   "1000000000 an import reads\n")
        self.ok("which", "m:x")  # the database is untouched, and usable

    def test_import_refuses_nul_characters(self):
        # SQLite's JSON reader ends a string at \u0000: "t\u0000x" would be
        # imported as "t". No name or key holds a NUL: the file is refused.
        self.allow("m:keep")
        good = json.loads(self.ok("export"))
        before = dict(good)
        cases = [dict(good, settings=dict(good["settings"], default_tier="pro\u0000x")),
                 dict(good, keys=[dict(good["keys"][0], key="m:a\u0000b")]),
                 dict(good, rules=[{"match": "ip:*\u0000", "tier": "free"}])]
        for doc in cases:
            f = self.write("nul.json", json.dumps(doc))
            with open(f, encoding="utf-8") as fh:
                self.assertIn("\\u0000", fh.read())
            p = self.fails(1, "import", f)
            self.assertRegex(p.stderr, rf"^rlctl: {re.escape(f)}: import: document: a string "
                                       r"holds \\u0000 \(byte \d+\): no name or key can hold a NUL\n$")
        after = json.loads(self.ok("export"))
        del before["exported_at_ns"], after["exported_at_ns"]
        self.assertEqual(before, after)
        # an escaped backslash before "u0000" is no NUL: a key may hold it
        doc = dict(good, keys=good["keys"] + [dict(good["keys"][0], key="m:\\u0000")])
        self.ok("import", self.write("ok.json", json.dumps(doc)))
        self.assertEqual(json.loads(self.ok("inspect", "--json", "m:\\u0000"))["key"],
                         "m:\\u0000")

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
      - { name: rps, rate: 5/s, burst: 10 }
keys:
  - { match: "w:*", tier: win }
"""))
        out = self.ok("tiers", "list")
        self.assertRegex(out, r"(?m)^win +1 +rpm 3/min sliding window, rps 5/s burst 10$")
        out = self.ok("tiers", "show", "win")
        self.assertRegex(out, r"(?m)^rpm +requests +sliding_window +3/min +-$")
        self.assertRegex(out, r"(?m)^rps +requests +rate +5/s +10$")
        d = self.json_of("tiers", "show", "--json", "win")
        self.assertEqual([l["kind"] for l in d["limits"]], ["sliding_window", "rate"])
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

    def test_no_color_when_not_a_terminal(self):
        self.allow("m:c")
        for args in (["stats"], ["keys"], ["doctor"], ["tiers", "list"]):
            self.assertNotIn("\x1b", self.ok(*args))

    # ---- a database the user may only read ----------------------------------

    def copy_rlctl(self, dest):
        """Copies rlctl and the librl it loads (as ldd finds it) into dest,
        readable and runnable by all; returns the copy's path and an
        environment that makes it load the copied librl."""
        p = subprocess.run(["ldd", RLCTL], capture_output=True, encoding="utf-8", timeout=60)
        m = re.search(r"^\s*(librl\.so\S*) => (/\S+)", p.stdout, re.M)
        if not m:
            self.skipTest(f"cannot tell which librl {RLCTL} loads: {p.stdout}{p.stderr}")
        os.makedirs(dest, mode=0o755, exist_ok=True)
        shutil.copy(RLCTL, os.path.join(dest, "rlctl"))
        shutil.copy(m.group(2), os.path.join(dest, m.group(1)))
        for f in os.listdir(dest):
            os.chmod(os.path.join(dest, f), 0o755)
        return os.path.join(dest, "rlctl"), dict(self.env, LD_LIBRARY_PATH=dest)

    def test_reading_commands_on_a_read_only_database(self):
        self.allow("m:ro", "--cost", "2")
        self.allow("ip:ro")  # full again 200 ms later: prune would take it
        self.ok("assign", "user:ro", "pro")
        time.sleep(0.3)
        rlctl, env = RLCTL, self.env
        if os.geteuid() == 0:
            # root reads everything: run as another user, who may only read
            nobody = pwd.getpwnam("nobody")
            os.chmod(self.dir, 0o755)
            for f in os.listdir(self.dir):
                os.chmod(os.path.join(self.dir, f), 0o644)

            def demote():
                os.setgroups([])
                os.setgid(nobody.pw_gid)
                os.setuid(nobody.pw_uid)
            pre = demote
            # The build tree may be out of nobody's reach (a clone in a 0700
            # directory, or in /root): nobody runs copies of rlctl and librl.
            rlctl, env = self.copy_rlctl(os.path.join(self.dir, "bin"))
            try:
                p = subprocess.run([rlctl, "--version"], capture_output=True, encoding="utf-8",
                                   env=env, timeout=60, preexec_fn=pre)
                reason = p.stderr if p.returncode else None
            except OSError as e:
                reason = str(e)
            if reason:
                self.skipTest(f"nobody cannot run {rlctl} (is {self.dir} out of its reach? "
                              f"set TMPDIR): {reason.strip()}")
        else:
            for f in os.listdir(self.dir):
                if f.startswith("rl.db"):
                    os.chmod(os.path.join(self.dir, f), 0o444)
            pre = None

        def run(*args):
            return subprocess.run([rlctl, "--db", self.db] + list(args), capture_output=True,
                                  encoding="utf-8", env=env, timeout=60, preexec_fn=pre)
        for args in (["stats", "--json"], ["keys", "--json"], ["inspect", "--json", "m:ro"],
                     ["which", "--json", "user:ro"], ["tiers", "list", "--json"],
                     ["tiers", "show", "--json", "pro"], ["stats", "--format", "prometheus"],
                     ["export"], ["reset", "--dry-run", "--all"], ["prune", "--dry-run", "--idle", "0s"]):
            p = run(*args)
            self.assertEqual(p.returncode, 0, f"{args}: {p.stderr}")
            if "--json" in args or args == ["export"]:
                json.loads(p.stdout)
        self.assertEqual(json.loads(run("stats", "--json").stdout)["totals"]["units"], 3)
        self.assertEqual(run("prune", "--dry-run", "--idle", "0s").stdout, "would prune 1 key(s)\n")
        p = run("doctor", "--json")  # world-readable files fail the permissions check
        self.assertIn(p.returncode, (0, 1), p.stderr)
        self.assertEqual({c["check"]: c["status"] for c in json.loads(p.stdout)["checks"]}
                         ["journal mode"], "ok")
        for args in (["reset", "m:ro"], ["allow", "m:ro"], ["prune", "--idle", "0s"]):
            p = run(*args)
            self.assertEqual(p.returncode, ERROR, args)
            self.assertRegex(p.stderr, r"read-only")

    # ---- files another user could have planted ------------------------------

    def test_refused_file(self):
        self.allow("m:p")
        wal = self.db + "-wal"
        os.chmod(wal, 0o666)  # ours, but every user may write it
        for args in (["stats"], ["allow", "m:p"], ["reset", "m:p"], ["tiers", "list"]):
            p = self.fails(PERM, *args)
            self.assertEqual(p.stdout, "", args)
            self.assertRegex(p.stderr, rf"^rlctl: {re.escape(wal)}: mode 0666 [^\n]+\n$", args)
        p = self.fails(1, "doctor")  # a failed check, with the fix
        self.assertRegex(p.stdout, rf"(?m)^open +FAIL +{re.escape(wal)}: mode 0666 .*: chmod o-w it$")
        # a group's mode: refused unless the group set-up is chosen
        os.chmod(wal, 0o660)
        p = self.fails(PERM, "stats")
        self.assertIn("group set-up is not chosen", p.stderr)
        p = self.fails(PERM, "allow", "m:p")
        self.assertIn(f"{wal}: mode 0660 is wider than file_mode 0600", p.stderr)
        p = self.fails(1, "doctor")  # a reader cannot open it either: said so
        self.assertRegex(p.stdout, r"(?m)^open +FAIL +.*group set-up is not chosen")
        self.ok("--shared-group", "stats")
        self.ok("--shared-group", "reset", "m:p")  # (SQLite gives the empty -wal 0600 again)
        # what a writer would refuse, a reader accepts: the doctor says it
        os.chmod(self.db, 0o640)
        self.ok("stats")
        self.fails(PERM, "allow", "m:p")
        p = self.fails(1, "doctor")
        self.assertRegex(p.stdout, rf"(?m)^permissions +FAIL +rl_open refuses it \(RL_EPERM\): "
                                   rf"{re.escape(self.db)}: mode 0640 is wider than file_mode "
                                   rf"0600: chmod 0600 it")
        for f in (self.db, wal):  # SQLite gave the empty -wal the database's 0640
            os.chmod(f, 0o600)
        self.assertEqual(self.allow("m:p"), 0)
        # a new database created with --shared-group is the group's
        new = os.path.join(self.dir, "group.db")
        self.ok("--shared-group", "--db", new, "tiers", "load", self.tiers, db=False)
        self.assertEqual(os.stat(new).st_mode & 0o777, 0o660)


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

    def plant_key(self, key, allowed):
        import struct
        row = b"\x01\x00" + struct.pack("<5q", allowed, 0, allowed, 1, 1)
        redis_call(self.db, "HSET", f"{self.prefix()}k:{{{key}}}", "v", "planted", "r", row)
        redis_call(self.db, "ZADD", f"{self.prefix()}keys", "0", key)

    def damage_policy(self):
        redis_call(self.db, "HSET", f"{self.prefix()}policy", "b", b"\x01garbage")

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
    unittest.main(argv=[sys.argv[0]] + args)


if __name__ == "__main__":
    main()
