#!/usr/bin/env python3
"""Both libraries export the public API and nothing else.

    test_symbols.py NM LIBRL_SO LIBRL_A HEADER...

Every global symbol defined in librl.so (nm -D) and in librl.a (nm -g) must
be a function or object declared RL_API in one of the public HEADERs, and
every RL_API name must be defined in both. librl.so gets there by
-fvisibility=hidden; librl.a by the partial link and objcopy --localize-hidden
of CMakeLists.txt. Exit 0 when both hold, 1 with the differences otherwise.
"""
import re
import subprocess
import sys


def api_names(headers):
    """The names declared RL_API in the headers."""
    names = set()
    for path in headers:
        with open(path, encoding="utf-8") as f:
            text = f.read()
        text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
        text = re.sub(r"//[^\n]*", " ", text)
        # preprocessor lines, with their continuations (#define RL_API ...)
        text = re.sub(r"^[ \t]*#(?:[^\n]*\\\n)*[^\n]*", " ", text, flags=re.M)
        for decl in re.split(r"[;{}]", text):
            if not re.search(r"\bRL_API\b", decl):
                continue
            # __attribute__((...)) and attribute-like macros (RL_DEPRECATED("..."))
            prev = None
            while prev != decl:
                prev = decl
                decl = re.sub(r"\b(?:__attribute__|[A-Z][A-Z0-9_]*)\s*"
                              r"\((?:[^()]|\((?:[^()]|\([^()]*\))*\))*\)", " ", decl)
            m = re.search(r"([A-Za-z_]\w*)\s*\(", decl)
            if m is None:  # an object: the last identifier, before any [...]
                ids = re.findall(r"[A-Za-z_]\w*", re.sub(r"\[[^\]]*\]", " ", decl))
                m = re.match(r"(.*)", ids[-1]) if ids else None
            if m is None:
                sys.exit(f"{path}: cannot read the name in: {' '.join(decl.split())}")
            names.add(m.group(1))
    return names


def defined_globals(nm, args, lib):
    out = subprocess.run([nm, *args, "--defined-only", lib], check=True,
                         capture_output=True, text=True).stdout
    syms = set()
    for line in out.splitlines():
        fields = line.split()
        if len(fields) == 3:  # "address type name"; not "member.o:" lines
            syms.add(fields[2])
    return syms


def main():
    if len(sys.argv) < 5:
        sys.exit(__doc__)
    nm, so, ar, headers = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
    api = api_names(headers)
    if not api:
        sys.exit(f"no RL_API declaration found in {' '.join(headers)}")
    ok = True
    for lib, args in ((so, ["-D"]), (ar, ["-g"])):
        syms = defined_globals(nm, args, lib)
        extra = sorted(syms - api)
        missing = sorted(api - syms)
        if extra:
            ok = False
            print(f"{lib}: {len(extra)} global symbol(s) not declared RL_API in "
                  f"{' '.join(headers)}:\n  " + "\n  ".join(extra))
        if missing:
            ok = False
            print(f"{lib}: {len(missing)} RL_API name(s) not defined:\n  " + "\n  ".join(missing))
        if not extra and not missing:
            print(f"{lib}: {len(syms)} global symbols, exactly the RL_API names")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
