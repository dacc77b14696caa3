#!/bin/sh
# remote-load.sh: 200 concurrent /v1/events streams plus /v1/bindings at a
# steady rate against one netdumper API server (in process, on loopback),
# reporting p99 latency of /v1/bindings and goroutines/heap before, during
# and after the clients. Extra arguments go to the program, e.g.
#   bench/remote-load.sh -duration 60s -rate 100 -bindings 10000
set -eu
cd "$(dirname "$0")/.."
exec go run ./bench/remoteload -streams 200 -rate 50 -bindings 1000 -duration 20s "$@"
