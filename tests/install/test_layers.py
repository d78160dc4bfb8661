#!/usr/bin/env python3
"""test_layers.py - the library's layers, checked on its object files.

usage: test_layers.py NM OBJDIR SRCDIR [--print]

OBJDIR is rl_obj's object directory (CMakeFiles/rl_obj.dir), SRCDIR the
source tree (an object whose source is gone, left by an older build, is
not counted). Each object's
defined and undefined symbols (nm) give the calls between source files, so
this sees what the linker sees, whatever a file includes. It fails when

  - a file calls into a higher layer than its own (see LAYERS), or
  - files call each other in a circle, unless all of them are in one
    folder (a store's private files, which share a private header).

--print lists every file's calls into other files, for a reader.
"""
import os
import subprocess
import sys

# Lowest first. A file may use its own layer and those below. Patterns are
# matched against the path relative to the source tree (the object's path
# without ".o"); the first match wins.
LAYERS = [
    # 0: the pure engine: limit math, state encoding, names and keys; no I/O
    # (CMakeLists.txt's RL_ENGINE_SOURCES, built and linked alone as rl_engine)
    ("engine", ["core/gcra.c", "core/window.c", "core/state.c", "core/policy.c",
                "core/parse.c", "core/keys.c", "core/lease.c", "core/headers.c",
                "core/err.c", "core/eval.c"]),
    # 1: YAML tier files to policy structs (knows no handle, no store)
    ("config", ["config/"]),
    # 2: the stores behind core/store.h and their registry
    ("store", ["store/", "rl_schema.c"]),
    # 3: the handle and the public API
    ("handle", ["core/"]),
    # 4: through the handle's narrow interface (core/rl_int.h)
    ("export", ["export/"]),
]


def layer_of(path):
    for rank, (name, patterns) in enumerate(LAYERS):
        for p in patterns:
            if path == p or (p.endswith("/") and path.startswith(p)):
                return rank, name
    raise SystemExit("test_layers: no layer for %s: add it to LAYERS" % path)


def symbols(nm, obj):
    out = subprocess.run([nm, obj], capture_output=True, text=True, check=True).stdout
    defined, undefined = set(), set()
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] == "U":
            undefined.add(parts[1])
        elif len(parts) == 3 and parts[1] in "TDBRCVW" and parts[1].isupper():
            defined.add(parts[2])
    return defined, undefined


def sccs(nodes, edges):
    """Tarjan's strongly connected components."""
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in sorted(nodes):
        if v not in index:
            visit(v)
    return out


def main():
    if len(sys.argv) < 4:
        raise SystemExit(__doc__)
    nm, objdir, srcdir = sys.argv[1], sys.argv[2], sys.argv[3]
    objs = {}
    for root, _, files in os.walk(objdir):
        for f in files:
            if f.endswith(".c.o"):
                full = os.path.join(root, f)
                src = os.path.relpath(full, objdir)[:-2]
                if src == "rl_schema.c" or os.path.exists(os.path.join(srcdir, src)):
                    objs[src] = full
    if not objs:
        raise SystemExit("test_layers: no objects under %s" % objdir)
    owner, undef = {}, {}
    for src, obj in objs.items():
        d, u = symbols(nm, obj)
        undef[src] = u
        for s in d:
            owner[s] = src
    edges = {}
    for src, u in undef.items():
        edges[src] = sorted({owner[s] for s in u if s in owner and owner[s] != src})
    bad = []
    for src, targets in sorted(edges.items()):
        rank, name = layer_of(src)
        for t in targets:
            trank, tname = layer_of(t)
            if trank > rank:
                calls = sorted(s for s in undef[src] if owner.get(s) == t)
                bad.append("%s (%s) calls up into %s (%s): %s"
                           % (src, name, t, tname, ", ".join(calls[:5])))
    for comp in sccs(objs.keys(), edges):
        if len(comp) > 1 and len({os.path.dirname(c) for c in comp}) > 1:
            bad.append("a circle across folders: " + " <-> ".join(comp))
    if "--print" in sys.argv:
        for src, targets in sorted(edges.items()):
            print("%-28s %-7s -> %s" % (src, layer_of(src)[1], " ".join(targets)))
    for b in bad:
        print("test_layers: " + b)
    if bad:
        return 1
    print("test_layers: %d files in %d layers, every call goes down or sideways in a folder"
          % (len(objs), len(LAYERS)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
