#!/usr/bin/env bash
# tracker-scan.sh: the tracker's system scanner against `ss -tunap` on the
# same sockets. For each size it starts bench/sockload (N sockets across
# PROCS processes: loopback TCP listeners, accepted TCP pairs, bound UDP,
# IPv4 and IPv6), runs bench/scanbench beside it, then stops sockload by
# pid.
#
#   bench/tracker-scan.sh                 # 1000 and 10000 sockets, 100 processes
#   SIZES="1000" RUNS=9 INTERVAL=5 bench/tracker-scan.sh
#
# Goals (issue 4): full scan <= 0.5x ss -tunap, steady-state rescan <= 0.1x,
# under 1 % of one core at a 1 s interval with 1,000 sockets.
# Needs root to see every process (as ss does); RLIMIT_NOFILE must allow
# N/PROCS + 20 fds per process.
set -euo pipefail

cd "$(dirname "$0")/.."
SIZES=${SIZES:-"1000 10000"}
PROCS=${PROCS:-100}
RUNS=${RUNS:-15}
WARM_RUNS=${WARM_RUNS:-100}
INTERVAL=${INTERVAL:-10}
SOURCE=${SOURCE:-auto}

tmp=$(mktemp -d)
loadpid=""
cleanup() {
	exec 3>&- 2>/dev/null || true
	if [ -n "$loadpid" ]; then
		kill "$loadpid" 2>/dev/null || true
		wait "$loadpid" 2>/dev/null || true
	fi
	rm -rf "$tmp"
}
trap cleanup EXIT

go build -o "$tmp/sockload" ./bench/sockload
go build -o "$tmp/scanbench" ./bench/scanbench

echo "# $(uname -r), $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg), $(ss -V 2>&1 | head -1)"
echo "# sockload: $PROCS processes; medians of $RUNS runs ($WARM_RUNS for rescans); source $SOURCE"
for n in $SIZES; do
	mkfifo "$tmp/ctl"
	"$tmp/sockload" -sockets "$n" -procs "$PROCS" <"$tmp/ctl" >"$tmp/load.out" 2>&1 &
	loadpid=$!
	exec 3>"$tmp/ctl" # holds sockload's stdin open; closing it stops sockload
	for _ in $(seq 600); do
		grep -q READY "$tmp/load.out" 2>/dev/null && break
		kill -0 "$loadpid" 2>/dev/null || { cat "$tmp/load.out"; exit 1; }
		sleep 0.1
	done
	grep -q READY "$tmp/load.out" || { echo "sockload not ready after 60s"; exit 1; }
	"$tmp/scanbench" -label "$n" -source "$SOURCE" -runs "$RUNS" -warm-runs "$WARM_RUNS" -interval-seconds "$INTERVAL"
	exec 3>&-
	kill "$loadpid" 2>/dev/null || true
	wait "$loadpid" 2>/dev/null || true
	loadpid=""
	rm -f "$tmp/ctl"
	echo
done
