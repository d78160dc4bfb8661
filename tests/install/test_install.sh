#!/bin/sh
# Installs the build into a temporary prefix and builds the README's example
# from it twice, as a user would: through pkg-config and through
# find_package(rl). Arguments: BUILD_DIR SOURCE_DIR.
set -eu
build=$1
src=$2
tmp=$(mktemp -d /tmp/rl_install.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
cmake --install "$build" --prefix "$tmp/prefix" >/dev/null
libdir=$(ls -d "$tmp"/prefix/lib*/ | head -n1)
test -f "$tmp/prefix/include/rl.h"
test -f "$libdir/pkgconfig/rl.pc"

# pkg-config
PKG_CONFIG_PATH="$libdir/pkgconfig" cc -std=c11 -Wall -Werror -o "$tmp/qs" \
  "$src/examples/quickstart.c" $(PKG_CONFIG_PATH="$libdir/pkgconfig" pkg-config --define-prefix --cflags --libs rl)
LD_LIBRARY_PATH="$libdir" "$tmp/qs" "$tmp/a.db" | grep -q '^go: 9 left$'

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
echo "install test: pkg-config and find_package(rl) both build and run the README example"
