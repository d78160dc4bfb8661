"""rlctl_trust.py - databases rlctl must not trust blindly: written by
someone else (tampered keys, names, policy; a symlink), one the user may
only read, files another user could have planted."""
import json
import os
import pwd
import re
import shutil
import subprocess
import time

from rlctl_common import ERROR, PERM, parse_prometheus

RLCTL = None  # the binary under test: set by test_rlctl.main()


class TrustTests:
    """Tests of foreign, read-only and planted databases: mixed into
    test_rlctl.RlctlTest."""

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
        for replace in (["tiers", "load", self.tiers], ["import", "--yes", export]):
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
