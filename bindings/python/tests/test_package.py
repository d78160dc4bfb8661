#!/usr/bin/env python3
"""test_package.py - pyrl as a package: built by its in-tree PEP 517
backend (build_backend/pyrl_build.py, standard library only) and installed
by pip offline, then imported from where it was installed:

    RL_LIBRARY=build/librl.so python3 bindings/python/tests/test_package.py

pip runs with --no-index (no network) and its ordinary build isolation:
the backend needs nothing from an index (requires = []). Without pip, the
wheel built by the backend is unpacked by hand instead.
"""
import base64
import csv
import hashlib
import importlib
import io
import os
import subprocess
import sys
import tarfile
import tempfile
import unittest
import zipfile

HERE = os.path.dirname(os.path.abspath(__file__))
PKG = os.path.dirname(HERE)  # bindings/python

USE = r"""
import asyncio, os, sys, tempfile
import pyrl
assert os.path.dirname(pyrl.__file__) == os.path.join(sys.argv[1], "pyrl"), pyrl.__file__
assert os.path.exists(os.path.join(sys.argv[1], "pyrl", "py.typed"))
db = os.path.join(tempfile.mkdtemp(), "rl.db")
with pyrl.Limiter(db, default_limits=["3/min", {"rate": "1000/h", "resource": "tokens"}]) as lim:
    assert [bool(lim.allow("k")) for _ in range(4)] == [True, True, True, False]
    async def main():
        async with lim.aio.lease("t", requests=None, tokens=600) as lease:
            lease.settle(tokens=100)
        return (await lim.aio.stats("t")).limits[1].remaining
    assert asyncio.run(main()) == 900
print("ok", pyrl.version())
"""


def build_backend():
    sys.path.insert(0, os.path.join(PKG, "build_backend"))
    try:
        return importlib.import_module("pyrl_build")
    finally:
        sys.path.pop(0)


class TestPackage(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="pyrl-pkg.")

    def tearDown(self):
        self.tmp.cleanup()

    def run_use(self, where):
        env = dict(os.environ, PYTHONPATH=where)
        env.pop("PYTHONHOME", None)
        out = subprocess.run([sys.executable, "-c", USE, where], env=env, cwd=self.tmp.name,
                             capture_output=True, text=True, timeout=60)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertTrue(out.stdout.startswith("ok "), out.stdout)

    def test_wheel_by_backend(self):
        be = build_backend()
        self.assertEqual(be.get_requires_for_build_wheel(), [])
        name = be.build_wheel(self.tmp.name)
        self.assertEqual(name, "pyrl-0.1.0-py3-none-any.whl")
        with zipfile.ZipFile(os.path.join(self.tmp.name, name)) as z:
            names = z.namelist()
            for f in ("pyrl/__init__.py", "pyrl/_aio.py", "pyrl/py.typed",
                      "pyrl-0.1.0.dist-info/METADATA", "pyrl-0.1.0.dist-info/WHEEL"):
                self.assertIn(f, names)
            meta = z.read("pyrl-0.1.0.dist-info/METADATA").decode()
            self.assertIn("Name: pyrl\n", meta)
            self.assertIn("Version: 0.1.0\n", meta)
            rows = list(csv.reader(io.StringIO(z.read("pyrl-0.1.0.dist-info/RECORD").decode())))
            self.assertEqual(sorted(r[0] for r in rows), sorted(names))
            for path, digest, size in rows:
                if path.endswith("RECORD"):
                    self.assertEqual((digest, size), ("", ""))
                    continue
                data = z.read(path)
                want = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
                self.assertEqual(digest, "sha256=" + want.decode(), path)
                self.assertEqual(int(size), len(data))
            site = os.path.join(self.tmp.name, "site")
            z.extractall(site)
        self.run_use(site)

    def test_sdist_by_backend(self):
        be = build_backend()
        name = be.build_sdist(self.tmp.name)
        with tarfile.open(os.path.join(self.tmp.name, name)) as t:
            names = t.getnames()
        for f in ("PKG-INFO", "pyproject.toml", "build_backend/pyrl_build.py",
                  "pyrl/__init__.py", "pyrl/py.typed"):
            self.assertIn("pyrl-0.1.0/" + f, names)

    def test_pip_install_offline(self):
        if subprocess.run([sys.executable, "-m", "pip", "--version"],
                          capture_output=True).returncode != 0:
            self.skipTest("no pip for %s (the backend test covers the wheel)" % sys.executable)
        target = os.path.join(self.tmp.name, "target")
        env = dict(os.environ, PIP_NO_INDEX="1", PIP_DISABLE_PIP_VERSION_CHECK="1",
                   PIP_NO_CACHE_DIR="1", PIP_CONFIG_FILE=os.devnull)
        out = subprocess.run([sys.executable, "-m", "pip", "install", "--no-index",
                              "--target", target, PKG], env=env, capture_output=True,
                             text=True, timeout=120)
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
        self.run_use(target)


if __name__ == "__main__":
    unittest.main(verbosity=2)
