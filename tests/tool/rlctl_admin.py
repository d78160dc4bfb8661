"""rlctl_admin.py - administration: doctor, export and import."""
import json
import os
import re
import subprocess

from rlctl_common import ERROR, USAGE

RLCTL = None  # the binary under test: set by test_rlctl.main()


class AdminTests:
    """Tests of doctor, export and import: mixed into test_rlctl.RlctlTest."""

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
        p = subprocess.run([RLCTL, "--db", other, "import", "--yes", backup], capture_output=True,
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

    def test_import_asks_as_reset_all_does(self):
        # It replaces everything: --yes, or a question on a terminal; without
        # a terminal and without --yes, refused before FILE is read.
        self.allow("m:i1")
        backup = self.write("backup.json", self.ok("export"))
        self.allow("m:i2")
        p = self.fails(USAGE, "import", backup)
        self.assertEqual(p.stdout, "")
        self.assertEqual(p.stderr, "rlctl: import: needs --yes when stdin is not a terminal "
                                   "(see 'rlctl import --help')\n")
        p = self.fails(USAGE, "import", os.path.join(self.dir, "missing.json"))
        self.assertIn("--yes", p.stderr)
        self.assertEqual(len(self.json_of("keys", "--json")["keys"]), 2)
        argv = [RLCTL, "--db", self.db, "import", backup]
        status, out = self.run_pty(argv, b"n\n", until=lambda o: b"[y/N]" in o)
        self.assertEqual(os.waitstatus_to_exitcode(status), 1, out)
        self.assertIn(b"replace the whole state of " + self.db.encode() + b" (2 key(s), 3 tier(s))"
                      b" with that of " + backup.encode() + b"? [y/N]", out)
        self.assertIn(b"rlctl: import: not confirmed; nothing was imported", out)
        self.assertEqual(len(self.json_of("keys", "--json")["keys"]), 2)
        status, out = self.run_pty(argv, b"y\n", until=lambda o: b"[y/N]" in o)
        self.assertEqual(os.waitstatus_to_exitcode(status), 0, out)
        self.assertIn(b"imported " + backup.encode(), out)
        self.assertEqual([k["key"] for k in self.json_of("keys", "--json")["keys"]], ["m:i1"])

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
            p = self.fails(1, "import", "--yes", f)
            self.assertEqual(p.stdout, "")
            self.assertRegex(p.stderr, rf"^rlctl: {re.escape(f)}: import: .*{re.escape(msg)}")
        after = json.loads(self.ok("export"))
        del before["exported_at_ns"], after["exported_at_ns"]
        self.assertEqual(before, after)
        p = self.fails(ERROR, "import", "--yes", os.path.join(self.dir, "missing.json"))
        self.assertRegex(p.stderr, r"^rlctl: .*missing\.json: No such file")
        # stdin
        p = subprocess.run([RLCTL, "--db", self.db, "import", "--yes", "-"], input=json.dumps(good),
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
                 (("import", "--yes", fifo), True, "not a regular file"),
                 (("import", "--yes", "/dev/zero"), True, "not a regular file"))
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
            p = subprocess.run([RLCTL, "--db", self.db, "import", "--yes", "-"], stdin=zero,
                               capture_output=True, encoding="utf-8", env=self.env, timeout=10)
        self.assertEqual(p.returncode, 1)
        self.assertEqual(p.stderr, "rlctl: -: import: document: not JSON text (it contains a "
                                   "NUL byte)\n")
        # larger than an import reads (1 GB, SQLite's longest text): refused
        # at once, from its size (a sparse file: it takes no disk)
        big = os.path.join(self.dir, "big.json")
        with open(big, "wb") as f:
            f.truncate(10**9 + 1)
        p = self.fails(1, "import", "--yes", big)
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
            p = self.fails(1, "import", "--yes", f)
            self.assertRegex(p.stderr, rf"^rlctl: {re.escape(f)}: import: document: a string "
                                       r"holds \\u0000 \(byte \d+\): no name or key can hold a NUL\n$")
        after = json.loads(self.ok("export"))
        del before["exported_at_ns"], after["exported_at_ns"]
        self.assertEqual(before, after)
        # an escaped backslash before "u0000" is no NUL: a key may hold it
        doc = dict(good, keys=good["keys"] + [dict(good["keys"][0], key="m:\\u0000")])
        self.ok("import", "--yes", self.write("ok.json", json.dumps(doc)))
        self.assertEqual(json.loads(self.ok("inspect", "--json", "m:\\u0000"))["key"],
                         "m:\\u0000")
