#!/bin/sh
# stats_1m.sh - how long rlctl takes on a database of a million keys.
#
#     bench/stats_1m.sh [BUILD_DIR] [KEYS]      (defaults: build, 1000000)
#
# Fills a fresh database with KEYS keys (tests/tool/fill_keys.c, built with
# the tests into BUILD_DIR/tests/fill_keys), then times, best of three runs
# each, with a warm page cache as on a server that uses its database:
#   rlctl stats --top 0 --match 'none*'   the totals alone (no key listed)
#   rlctl stats                           totals and the 10 busiest keys
#   rlctl stats --top 10 --sort refused   the same by another order
#   rlctl stats --format prometheus       what a textfile collector runs
# and, for scale, a full export. The goals: totals under 1 s, --top 10
# under 2 s. It is a benchmark, not a test: it prints times, and fails only
# if a command does.
set -eu
BUILD=${1:-build}
KEYS=${2:-1000000}
RLCTL=$BUILD/rlctl
FILL=$BUILD/tests/fill_keys
[ -x "$RLCTL" ] && [ -x "$FILL" ] || {
  echo "stats_1m: build first: cmake --build $BUILD (needs $RLCTL and $FILL)" >&2
  exit 2
}
DIR=$(mktemp -d /tmp/rl_stats_1m.XXXXXX)
trap 'rm -rf "$DIR"' EXIT
DB=$DIR/rl.db

now() { date +%s.%N; }

# best of three wall-clock times of a command, output discarded
best() {
  b=""
  for _ in 1 2 3; do
    t0=$(now)
    "$@" >/dev/null
    t=$(echo "$(now) - $t0" | bc)
    if [ -z "$b" ] || [ "$(echo "$t < $b" | bc)" = 1 ]; then b=$t; fi
  done
  printf '%6.3f s  %s\n' "$b" "$*" | sed "s|$DB|DB|; s|$BUILD/||"
}

t0=$(now)
"$FILL" "$DB" "$KEYS" >/dev/null
printf 'filled %s keys in %.1f s (%s MB)\n' "$KEYS" "$(echo "$(now) - $t0" | bc)" \
  "$(du -m "$DB" | cut -f1)"
"$RLCTL" --db "$DB" stats --top 3 | head -8
echo
best "$RLCTL" --db "$DB" stats --top 0 --match 'none*'
best "$RLCTL" --db "$DB" stats
best "$RLCTL" --db "$DB" stats --top 10 --sort refused
best "$RLCTL" --db "$DB" stats --format prometheus
best "$RLCTL" --db "$DB" stats --top 10 --tier pro
best "$RLCTL" --db "$DB" export "$DIR/export.json"
