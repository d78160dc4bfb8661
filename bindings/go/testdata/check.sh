#!/bin/sh
# check.sh - the Go binding's ctest entries (tests/CMakeLists.txt sets the
# environment: GOCACHE, GOPATH, GOPROXY=off, CGO_CFLAGS, CGO_LDFLAGS, ...).
#   check.sh test       go vet, gofmt and go test -race
#   check.sh examples   build and run the six examples; each checks itself
set -eu
cd "$(dirname "$0")/.."
case "${1:-}" in
test)
    go vet ./...
    bad=$(gofmt -l .)
    if [ -n "$bad" ]; then echo "gofmt -l: $bad" >&2; exit 1; fi
    go test -race -count=1 ./...
    ;;
examples)
    bin=$(mktemp -d)
    trap 'rm -rf "$bin"' EXIT
    for ex in basic per_user graceful_degradation multi_tier metrics statistics; do
        go build -o "$bin/$ex" "./examples/$ex"
        echo "== $ex"
        "$bin/$ex"
    done
    ;;
*)
    echo "usage: check.sh test|examples" >&2
    exit 2
    ;;
esac
