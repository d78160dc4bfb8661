"""rlctl_usage.py - rlctl's help, usage errors, version, man page and bash
completion; errors of output (a full disk, a closed pipe) and of choosing
the database."""
import errno
import json
import os
import re
import shutil
import signal
import subprocess
import unittest

from rlctl_common import COMMANDS, ERROR, SOURCE_DIR, TIERS_SUBS, USAGE

RLCTL = None  # the binary under test: set by test_rlctl.main()


class UsageTests:
    """Tests of rlctl as a command line: mixed into test_rlctl.RlctlTest."""

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
                     ["prune", "--idle", "5x"], ["prune", "--idle", "1h", "k"],
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
        self.ok("import", "--yes", self.write("many.json", json.dumps(doc)))

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
