"""pyrl_build - pyrl's PEP 517 build backend: standard library only.

pip runs it from this directory (pyproject.toml's backend-path) in its
isolated build environment, into which it installs nothing (requires = []),
so building and installing pyrl never needs a package index:

    python3 -m pip install ./bindings/python          # offline
    python3 -m pip wheel --no-deps -w dist ./bindings/python

It builds a pure-Python wheel of the package `pyrl` (every .py file and
py.typed), an sdist, and an editable wheel (PEP 660: a .pth file naming
this source directory, so that pyrl found in the tree still finds the
tree's build/librl.so). The metadata comes from pyproject.toml's
[project] table: name, version, description, readme, requires-python,
license, classifiers.
"""

import base64
import hashlib
import io
import os
import re
import tarfile
import time
import zipfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)  # bindings/python: pyproject.toml, README.md, pyrl/
PACKAGE = "pyrl"
TAG = "py3-none-any"


# ---- pyproject.toml --------------------------------------------------------------

def _project():
    path = os.path.join(ROOT, "pyproject.toml")
    try:
        import tomllib  # Python 3.11+
        with open(path, "rb") as f:
            return tomllib.load(f)["project"]
    except ImportError:
        pass
    # older Pythons: the flat key = "string" lines of [project] are enough
    text = open(path, encoding="utf-8").read()
    section = text.split("[project]", 1)[1].split("\n[", 1)[0]
    proj = {}
    for m in re.finditer(r'^(\w[\w-]*)\s*=\s*"([^"]*)"\s*$', section, re.M):
        proj[m.group(1)] = m.group(2)
    lic = re.search(r'^license\s*=\s*\{\s*text\s*=\s*"([^"]*)"', section, re.M)
    if lic:
        proj["license"] = {"text": lic.group(1)}
    proj["classifiers"] = re.findall(r'^\s*"([^"]+ :: [^"]+)",?\s*$', section, re.M)
    return proj


def _name_version():
    p = _project()
    return p["name"], p["version"]


def _dist(name):
    return re.sub(r"[-_.]+", "_", name).lower()


def _metadata():
    p = _project()
    lines = ["Metadata-Version: 2.1", "Name: %s" % p["name"], "Version: %s" % p["version"]]
    if p.get("description"):
        lines.append("Summary: %s" % p["description"])
    if p.get("requires-python"):
        lines.append("Requires-Python: %s" % p["requires-python"])
    lic = p.get("license")
    if isinstance(lic, dict) and lic.get("text"):
        lines.append("License: %s" % lic["text"])
    for c in p.get("classifiers", []):
        lines.append("Classifier: %s" % c)
    body = ""
    readme = p.get("readme")
    if readme and os.path.exists(os.path.join(ROOT, readme)):
        lines.append("Description-Content-Type: text/markdown")
        with open(os.path.join(ROOT, readme), encoding="utf-8") as f:
            body = f.read()
    return ("\n".join(lines) + "\n\n" + body).encode("utf-8")


def _wheel_file(tag=TAG):
    return ("Wheel-Version: 1.0\nGenerator: pyrl_build\nRoot-Is-Purelib: true\nTag: %s\n"
            % tag).encode()


# ---- files -------------------------------------------------------------------------

def _package_files():
    """(path in the archive, absolute path) of the package's files."""
    out = []
    pkg = os.path.join(ROOT, PACKAGE)
    for name in sorted(os.listdir(pkg)):
        if name.endswith(".py") or name == "py.typed":
            out.append(("%s/%s" % (PACKAGE, name), os.path.join(pkg, name)))
    return out


def _record_line(arcname, data):
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return "%s,sha256=%s,%d" % (arcname, digest, len(data))


def _epoch():
    # reproducible archives when SOURCE_DATE_EPOCH is set (zip needs >= 1980)
    return max(int(os.environ.get("SOURCE_DATE_EPOCH", time.time())), 315532800)


def _write_wheel(directory, files):
    """files: [(arcname, bytes)] without the dist-info; returns the name."""
    name, version = _name_version()
    dist = _dist(name)
    info = "%s-%s.dist-info" % (dist, version)
    files = list(files) + [("%s/METADATA" % info, _metadata()),
                           ("%s/WHEEL" % info, _wheel_file())]
    record = [_record_line(a, d) for a, d in files] + ["%s/RECORD,," % info]
    files.append(("%s/RECORD" % info, ("\n".join(record) + "\n").encode()))
    wheel = "%s-%s-%s.whl" % (dist, version, TAG)
    stamp = time.gmtime(_epoch())[:6]
    with zipfile.ZipFile(os.path.join(directory, wheel), "w", zipfile.ZIP_DEFLATED) as z:
        for arcname, data in files:
            zi = zipfile.ZipInfo(arcname, stamp)
            zi.external_attr = 0o644 << 16
            zi.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(zi, data)
    return wheel


def _read(path):
    with open(path, "rb") as f:
        return f.read()


# ---- PEP 517 hooks -----------------------------------------------------------------

def get_requires_for_build_wheel(config_settings=None):
    return []


def get_requires_for_build_sdist(config_settings=None):
    return []


def get_requires_for_build_editable(config_settings=None):
    return []


def prepare_metadata_for_build_wheel(metadata_directory, config_settings=None):
    name, version = _name_version()
    info = "%s-%s.dist-info" % (_dist(name), version)
    os.makedirs(os.path.join(metadata_directory, info), exist_ok=True)
    with open(os.path.join(metadata_directory, info, "METADATA"), "wb") as f:
        f.write(_metadata())
    with open(os.path.join(metadata_directory, info, "WHEEL"), "wb") as f:
        f.write(_wheel_file())
    return info


prepare_metadata_for_build_editable = prepare_metadata_for_build_wheel


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    return _write_wheel(wheel_directory, [(a, _read(p)) for a, p in _package_files()])


def build_editable(wheel_directory, config_settings=None, metadata_directory=None):
    # a .pth naming this directory: imports pyrl from the source tree
    return _write_wheel(wheel_directory, [("__editable__.%s.pth" % PACKAGE,
                                           (ROOT + "\n").encode())])


def build_sdist(sdist_directory, config_settings=None):
    name, version = _name_version()
    base = "%s-%s" % (_dist(name), version)
    members = [("pyproject.toml", os.path.join(ROOT, "pyproject.toml")),
               ("README.md", os.path.join(ROOT, "README.md")),
               ("build_backend/pyrl_build.py", os.path.join(HERE, "pyrl_build.py"))]
    members += _package_files()
    out = "%s.tar.gz" % base
    mtime = _epoch()
    with tarfile.open(os.path.join(sdist_directory, out), "w:gz", format=tarfile.PAX_FORMAT) as t:
        pkg_info = _metadata()
        for arcname, data in [("PKG-INFO", pkg_info)] + [(a, _read(p)) for a, p in members]:
            ti = tarfile.TarInfo("%s/%s" % (base, arcname))
            ti.size, ti.mtime, ti.mode = len(data), mtime, 0o644
            t.addfile(ti, io.BytesIO(data))
    return out
