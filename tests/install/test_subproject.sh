#!/bin/sh
# rl as another CMake project's subdirectory: add_subdirectory() builds its
# libraries and rlctl, none of its tests, examples or bench, and leaves the
# parent's build type alone; the README's example links rl::rl and
# rl::rl_static from it and runs. Arguments: SOURCE_DIR C_COMPILER RL_REDIS.
set -eu
src=$(realpath "$1")
compiler=$2
redis=$3
tmp=$(mktemp -d /tmp/rl_subproject.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/app"
cp "$src/examples/quickstart.c" "$tmp/app/"
cat > "$tmp/app/CMakeLists.txt" <<CM
cmake_minimum_required(VERSION 3.18)
project(app C)
add_subdirectory("$src" rl)
add_executable(qs quickstart.c)
target_link_libraries(qs PRIVATE rl::rl)
add_executable(qs_static quickstart.c)
target_link_libraries(qs_static PRIVATE rl::rl_static)
CM
cmake -S "$tmp/app" -B "$tmp/build" -DCMAKE_C_COMPILER="$compiler" -DRL_REDIS="$redis" >/dev/null

# what the parent gets: rl's libraries and rlctl, nothing of its own suite
targets=$(cmake --build "$tmp/build" --target help)
for t in rl_shared rl_static rlctl qs qs_static; do
  echo "$targets" | grep -q "^\.\.\. $t\$" || { echo "no target $t in the parent" >&2; exit 1; }
done
if echo "$targets" | grep -E '^\.\.\. (test_|example_|fuzz_|rl_bench$|hammer$|fill_keys$)'; then
  echo "rl's own tests, examples or bench are built in the parent (above)" >&2; exit 1
fi
grep -q '^CMAKE_BUILD_TYPE:STRING=$' "$tmp/build/CMakeCache.txt" ||
  { echo "rl changed the parent's CMAKE_BUILD_TYPE:" >&2; grep CMAKE_BUILD_TYPE "$tmp/build/CMakeCache.txt" >&2; exit 1; }
[ ! -e "$tmp/build/rl/CTestTestfile.cmake" ] || { echo "rl registered tests in the parent" >&2; exit 1; }

cmake --build "$tmp/build" -j2 >/dev/null
"$tmp/build/qs" "$tmp/a.db" | grep -q '^go: 9 left$'
"$tmp/build/qs_static" "$tmp/b.db" | grep -q '^go: 9 left$'
if ldd "$tmp/build/qs_static" | grep -q 'librl\.so'; then
  echo "qs_static needs librl.so" >&2; exit 1
fi
echo "subproject test: add_subdirectory(rl) builds the libraries and rlctl only, and the README"
echo "  example links rl::rl and rl::rl_static from it"
