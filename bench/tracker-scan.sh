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
# As root, the measurement runs in fresh network and pid namespaces
# (unshare --net --pid --mount-proc) so that only sockload's sockets and
# processes are there: other work on the machine then changes the CPU
# time available, not the amount of work. ISOLATE=0 measures the host
# as it is.
#
# Goals (issue 4): full scan <= 0.5x ss -tunap, steady-state rescan <= 0.1x,
# under 1 % of one core at a 1 s interval with 1,000 sockets.
# RLIMIT_NOFILE must allow N/PROCS + 20 fds per process.
set -euo pipefail

SIZES=${SIZES:-"1000 10000"}
PROCS=${PROCS:-100}
RUNS=${RUNS:-15}
WARM_RUNS=${WARM_RUNS:-100}
INTERVAL=${INTERVAL:-10}
SOURCE=${SOURCE:-auto}
ISOLATE=${ISOLATE:-1}

measure() { # $1: directory with sockload and scanbench
	local bin=$1 n loadpid
	for n in $SIZES; do
		rm -f "$bin/ctl"
		mkfifo "$bin/ctl"
		"$bin/sockload" -sockets "$n" -procs "$PROCS" <"$bin/ctl" >"$bin/load.out" 2>&1 &
		loadpid=$!
		exec 3>"$bin/ctl" # holds sockload's stdin open; closing it stops sockload
		for _ in $(seq 600); do
			grep -q READY "$bin/load.out" 2>/dev/null && break
			kill -0 "$loadpid" 2>/dev/null || { cat "$bin/load.out"; return 1; }
			sleep 0.1
		done
		grep -q READY "$bin/load.out" || { echo "sockload not ready after 60s"; kill "$loadpid"; return 1; }
		"$bin/scanbench" -label "$n" -source "$SOURCE" -runs "$RUNS" -warm-runs "$WARM_RUNS" -interval-seconds "$INTERVAL" || { kill "$loadpid"; return 1; }
		exec 3>&-
		kill "$loadpid" 2>/dev/null || true
		wait "$loadpid" 2>/dev/null || true
		echo
	done
}

if [ -n "${ND_BENCH_BIN:-}" ]; then # inside the namespaces
	ip link set lo up
	measure "$ND_BENCH_BIN"
	exit
fi

cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
go build -o "$tmp/sockload" ./bench/sockload
go build -o "$tmp/scanbench" ./bench/scanbench

echo "# $(uname -r), $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg), $(ss -V 2>&1 | head -1)"
echo "# sockload: $PROCS processes; medians of $RUNS runs ($WARM_RUNS for rescans); source $SOURCE"
if [ "$ISOLATE" = 1 ] && [ "$(id -u)" = 0 ]; then
	echo "# isolated: own network and pid namespaces"
	ND_BENCH_BIN=$tmp unshare --net --pid --fork --mount-proc "$0"
else
	echo "# not isolated: every socket and process of the host"
	measure "$tmp"
fi
