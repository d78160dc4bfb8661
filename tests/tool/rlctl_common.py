"""rlctl_common.py - what every module of test_rlctl shares: the tiers files,
the exit codes and command lists, a checker of the Prometheus exposition
format, a raw Redis client, and RlctlCase, the base class: a temporary
directory with a database, and the helpers that run rlctl in it."""
import errno
import json
import math
import os
import pty
import re
import select
import signal
import subprocess
import tempfile
import time
import unittest

SOURCE_DIR = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

RLCTL = None  # the binary under test: set by test_rlctl.main()

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


class RlctlCase(unittest.TestCase):
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
