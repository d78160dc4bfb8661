#!/bin/sh
# Links the README's example against the installed librl.a, as a user would:
# by the archive's path with the dependencies `pkg-config --static` lists, and
# through find_package(rl) with rl::rl_static; both programs must run without
# librl.so. A third program also defines every internal name librl.a holds
# (rl_*, rd_*: local symbols there now) and must link and run all the same.
# Arguments: BUILD_DIR SOURCE_DIR.
set -eu
build=$1
src=$2
tmp=$(mktemp -d /tmp/rl_static.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
cmake --install "$build" --prefix "$tmp/prefix" >/dev/null
libdir=$(ls -d "$tmp"/prefix/lib*/ | head -n1)
libdir=${libdir%/}
test -f "$libdir/librl.a"

no_librl_so() { # PROGRAM: runs the example, and not on librl.so
  if ldd "$1" | grep -q 'librl\.so'; then
    echo "$1 needs librl.so:" >&2; ldd "$1" >&2; exit 1
  fi
  env -u LD_LIBRARY_PATH "$1" "$tmp/$(basename "$1").db" | grep -q '^go: 9 left$' ||
    { echo "$1 does not run the example" >&2; exit 1; }
}

# pkg-config: librl.a by its path, then what rl.pc needs for a static link
deps=$(PKG_CONFIG_PATH="$libdir/pkgconfig" pkg-config --static --libs rl | sed 's/\(^\| \)-lrl\( \|$\)/ /')
cflags=$(PKG_CONFIG_PATH="$libdir/pkgconfig" pkg-config --cflags rl)
cc -std=c11 -Wall -Werror -o "$tmp/qs_pc" "$src/examples/quickstart.c" $cflags "$libdir/librl.a" $deps
no_librl_so "$tmp/qs_pc"

# a program with its own functions and objects under librl's internal names
nm "$libdir/librl.a" | awk '$2 ~ /^[tdbr]$/ && $3 ~ /^r[ld]_[A-Za-z0-9_]*$/ { print $2, $3 }' |
  sort -u -k2,2 | awk '
    $1 == "t" { printf "int %s(void);\nint %s(void) { return 0; }\n", $2, $2 }
    $1 != "t" { printf "extern int %s;\nint %s = 1;\n", $2, $2 }' > "$tmp/mine.c"
test -s "$tmp/mine.c" || { echo "no internal rl_/rd_ name found in librl.a" >&2; exit 1; }
cc -std=c11 -Wall -Werror -c -o "$tmp/mine.o" "$tmp/mine.c"
cc -std=c11 -Wall -Werror -o "$tmp/qs_mine" "$src/examples/quickstart.c" "$tmp/mine.o" $cflags \
  "$libdir/librl.a" $deps
no_librl_so "$tmp/qs_mine"

# find_package(rl): rl::rl_static
mkdir -p "$tmp/proj"
cp "$src/examples/quickstart.c" "$tmp/proj/"
cat > "$tmp/proj/CMakeLists.txt" <<'CM'
cmake_minimum_required(VERSION 3.18)
project(qs C)
find_package(rl REQUIRED)
add_executable(qs_cmake quickstart.c)
target_link_libraries(qs_cmake rl::rl_static)
CM
cmake -S "$tmp/proj" -B "$tmp/proj/build" -DCMAKE_PREFIX_PATH="$tmp/prefix" >/dev/null
cmake --build "$tmp/proj/build" >/dev/null
no_librl_so "$tmp/proj/build/qs_cmake"
echo "static test: the installed librl.a links the README example through pkg-config and"
echo "  find_package(rl), and beside a program that defines $(grep -c '^int [a-z_0-9]*(void) {\|^int [a-z_0-9]* = 1;' "$tmp/mine.c") of its internal names"
