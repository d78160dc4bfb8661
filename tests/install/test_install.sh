#!/bin/sh
# Installs the build into a temporary prefix (not /usr/local, as
# `cmake --install build --prefix ~/.local` does) and builds the README's
# example from it twice, as a user would: through pkg-config and through
# find_package(rl); runs the installed rlctl, which must find the librl
# installed with it; then moves the whole tree and checks rlctl and rl.pc
# again (both are relocatable). Arguments: BUILD_DIR SOURCE_DIR.
set -eu
build=$1
src=$2
tmp=$(mktemp -d /tmp/rl_install.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
cmake --install "$build" --prefix "$tmp/prefix" >/dev/null
libdir=$(ls -d "$tmp"/prefix/lib*/ | head -n1)
test -f "$tmp/prefix/include/rl.h"
test -f "$libdir/pkgconfig/rl.pc"

# pkg-config, as it reads rl.pc (no --define-prefix): its paths are the
# prefix's, not /usr/local's
pc() { PKG_CONFIG_PATH="$1/pkgconfig" pkg-config "$2" rl; }
check_pc() { # LIBDIR PREFIX: rl.pc's libdir and includedir are in PREFIX
  test "$(realpath "$(pc "$1" --variable=libdir)")" = "$(realpath "$1")" ||
    { echo "rl.pc: libdir is $(pc "$1" --variable=libdir), not $1" >&2; exit 1; }
  test "$(realpath "$(pc "$1" --variable=includedir)")" = "$(realpath "$2/include")" ||
    { echo "rl.pc: includedir is $(pc "$1" --variable=includedir), not $2/include" >&2; exit 1; }
}
check_pc "$libdir" "$tmp/prefix"
cc -std=c11 -Wall -Werror -o "$tmp/qs" "$src/examples/quickstart.c" \
  $(pc "$libdir" --cflags) $(pc "$libdir" --libs)
LD_LIBRARY_PATH="$libdir" "$tmp/qs" "$tmp/a.db" | grep -q '^go: 9 left$'

# the installed rlctl starts with nothing set, on the librl beside it
check_rlctl() { # PREFIX LIBDIR
  env -u LD_LIBRARY_PATH "$1/bin/rlctl" --version | grep -q '^rlctl ' ||
    { echo "the installed rlctl does not start" >&2; exit 1; }
  loaded=$(env -u LD_LIBRARY_PATH ldd "$1/bin/rlctl" | awk '$1 == "librl.so.0" { print $3 }')
  test -n "$loaded" && test "$(realpath "$loaded")" = "$(realpath "$2/librl.so.0")" ||
    { echo "the installed rlctl does not load $2/librl.so.0:" >&2; ldd "$1/bin/rlctl" >&2; exit 1; }
}
check_rlctl "$tmp/prefix" "$libdir"

# find_package
mkdir -p "$tmp/proj"
cp "$src/examples/quickstart.c" "$tmp/proj/"
cat > "$tmp/proj/CMakeLists.txt" <<'CM'
cmake_minimum_required(VERSION 3.18)
project(qs C)
find_package(rl REQUIRED)
add_executable(qs quickstart.c)
target_link_libraries(qs rl::rl)
CM
cmake -S "$tmp/proj" -B "$tmp/proj/build" -DCMAKE_PREFIX_PATH="$tmp/prefix" >/dev/null
cmake --build "$tmp/proj/build" >/dev/null
LD_LIBRARY_PATH="$libdir" "$tmp/proj/build/qs" "$tmp/b.db" | grep -q '^go: 9 left$'
test -x "$tmp/prefix/bin/rlctl"

# the whole tree moved elsewhere: still whole
mv "$tmp/prefix" "$tmp/moved"
moved_libdir="$tmp/moved/${libdir#"$tmp/prefix/"}"
check_rlctl "$tmp/moved" "$moved_libdir"
check_pc "$moved_libdir" "$tmp/moved"
echo "install test: pkg-config and find_package(rl) both build and run the README example;"
echo "  the installed rlctl runs, and rlctl and rl.pc still work once the tree is moved"
