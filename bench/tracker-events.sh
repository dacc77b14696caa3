#!/usr/bin/env bash
# tracker-events.sh: what `netdumper serve` costs under a load of new TCP
# connections (RATE per second, 1,000 by default), with the eBPF event
# source (--source ebpf, scans every 1 s) side by side with polling every
# 100 ms (--source poll --interval 100ms), and polling every second for
# reference.
#
# For each configuration and repetition it makes a fresh network namespace
# (so that the TIME-WAIT sockets of one run do not weigh on the next),
# starts serve in it on a fresh state directory, lets it settle, measures
# its CPU time (user+system, from /proc/<pid>/stat) over DUR seconds idle,
# then starts tracker/ebpf/internal/ebpfbench making RATE loopback
# connections a second (connect, 1-byte request and reply, close) and
# measures over DUR seconds after WARM seconds of that load, then stops
# serve by pid and deletes the namespace. The scanner still walks every
# process of the host, as it would on a real one. A host at 1,000
# connections a second keeps ~60,000 sockets in TIME-WAIT, which the scans
# list: WARM=60 shows that steady state.
# The medians are printed, with the load generator's own CPU per
# connection (on loopback it includes the kernel's network work, and the
# BPF programs that run in its context) and, for the eBPF source, the
# event counters from /metrics (drops must be 0).
#
# Needs root (eBPF, and serve's scanner sees every process); skips
# otherwise (and without ip(8) netns). About 2 minutes with the defaults.
#   DUR=5 WARM=5 REPS=3 RATE=1000 bench/tracker-events.sh
# CONFIGS="ebpf-1s poll-100ms" picks configurations.
# With BPFSTATS=1 one more eBPF run measures the kernel run time of the
# programs (kernel.bpf_stats_enabled, which itself adds ~30 ns a run).
# Raw output goes to bench/out/tracker-events.txt.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" != 0 ] || ! command -v ip >/dev/null; then
	echo "tracker-events: skipped (the eBPF source and a full scanner need root, and ip(8) for network namespaces)"
	exit 0
fi
DUR=${DUR:-5}
WARM=${WARM:-5}
REPS=${REPS:-3}
RATE=${RATE:-1000}
SETTLE=${SETTLE:-3}
BPFSTATS=${BPFSTATS:-0}

work=$(mktemp -d)
spid=""
lpid=""
ns=""
cleanup() {
	if [ -n "$lpid" ]; then kill -INT "$lpid" 2>/dev/null || true; wait "$lpid" 2>/dev/null || true; fi
	if [ -n "$spid" ]; then kill -INT "$spid" 2>/dev/null || true; wait "$spid" 2>/dev/null || true; fi
	if [ -n "$ns" ]; then ip netns del "$ns" 2>/dev/null || true; fi
	rm -rf "$work"
}
trap cleanup EXIT
go build -o "$work/netdumper" ./cmd/netdumper
go build -o "$work/ebpfbench" ./tracker/ebpf/internal/ebpfbench
mkdir -p bench/out
raw=bench/out/tracker-events.txt
: >"$raw"
hz=$(getconf CLK_TCK)

# ticks PID: user+system CPU ticks of PID (comm "netdumper" has no spaces).
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
port=""
in_ns() { ip netns exec "$ns" "$@"; }
start_serve() { # start_serve ARGS...
	local state=$work/state.$RANDOM
	ns=ndbench-$$-$RANDOM
	ip netns add "$ns"
	in_ns ip link set lo up
	port=7701
	# ip netns exec execs serve: $! is serve's pid.
	ip netns exec "$ns" "$work/netdumper" serve --state "$state" --listen "127.0.0.1:$port" --log-level warn "$@" 2>>"$work/serve.log" &
	spid=$!
	for _ in $(seq 200); do
		[ -e "$state/serve.json" ] && break
		kill -0 "$spid" 2>/dev/null || { cat "$work/serve.log" >&2; exit 1; }
		sleep 0.1
	done
	sleep "$SETTLE"
}
stop_serve() {
	kill -INT "$spid"
	wait "$spid" || true
	spid=""
	ip netns del "$ns"
	ns=""
}
# metric NAME: the sum of a metric's samples on serve's /metrics.
metric() {
	in_ns curl -s "http://127.0.0.1:$port/metrics" | awk -v m="$1" '$1 ~ "^"m"({|$)" {s += $2} END {print s + 0}'
}
median() { sort -g | awk '{v[NR]=$1} END {print (NR%2) ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2}'; }

# run NAME ARGS...: one repetition; appends "idle load gen_us rate drops" to $work/NAME.
run() {
	local name=$1 c0 i1 c1 c2 line rate us
	shift
	start_serve "$@"
	c0=$(ticks "$spid")
	sleep "$DUR"
	i1=$(ticks "$spid")
	ip netns exec "$ns" "$work/ebpfbench" tcp-rr -rate "$RATE" -duration "$((WARM + DUR))s" >"$work/load.out" &
	lpid=$!
	sleep "$WARM"
	c1=$(ticks "$spid")
	sleep "$DUR"
	c2=$(ticks "$spid")
	wait "$lpid"
	lpid=""
	line=$(cat "$work/load.out")
	rate=$(sed -n 's/.* rate=\([0-9.]*\)\/s.*/\1/p' <<<"$line")
	us=$(sed -n 's/.*cpu_per_conn_us=\([0-9.]*\).*/\1/p' <<<"$line")
	local drops=0 delivered=0 applied=0
	if [ "$name" != "${name#ebpf}" ]; then
		drops=$(metric netdumper_source_drops_total)
		delivered=$(metric netdumper_source_events_total)
		applied=$(metric netdumper_source_applied_total)
	fi
	stop_serve
	local idle load
	idle=$(awk -v a="$c0" -v b="$i1" -v hz="$hz" -v d="$DUR" 'BEGIN {printf "%.2f", 100 * (b - a) / hz / d}')
	load=$(awk -v a="$c1" -v b="$c2" -v hz="$hz" -v d="$DUR" 'BEGIN {printf "%.2f", 100 * (b - a) / hz / d}')
	echo "$name rep: serve idle ${idle}% under load ${load}% | $line | source events=$delivered applied=$applied drops=$drops" >>"$raw"
	echo "$idle $load $us $rate $drops" >>"$work/$name"
}
col() { awk -v c="$2" '{print $c}' "$work/$1" | median; }

configs=("ebpf-1s:--source ebpf --interval 1s" "poll-100ms:--source poll --interval 100ms" "poll-1s:--source poll --interval 1s")
if [ -n "${CONFIGS:-}" ]; then # e.g. CONFIGS="ebpf-1s poll-100ms"
	keep=()
	for c in "${configs[@]}"; do
		case " $CONFIGS " in *" ${c%%:*} "*) keep+=("$c") ;; esac
	done
	configs=("${keep[@]}")
fi
for rep in $(seq "$REPS"); do
	for c in "${configs[@]}"; do
		# shellcheck disable=SC2086
		run "${c%%:*}" ${c#*:}
	done
	echo "   rep $rep/$REPS done"
done

echo "== netdumper serve under $RATE new TCP connections/s on loopback (medians of $REPS x ${DUR}s after ${WARM}s of load; CPU in % of one core)"
printf '%-12s %10s %12s %14s %12s %7s\n' config "idle CPU" "loaded CPU" "load gen us/c" "achieved/s" drops
for c in "${configs[@]}"; do
	n=${c%%:*}
	printf '%-12s %9s%% %11s%% %14s %12s %7s\n' "$n" "$(col "$n" 1)" "$(col "$n" 2)" "$(col "$n" 3)" "$(col "$n" 4)" "$(col "$n" 5)"
done

if [ "$BPFSTATS" = 1 ]; then
	old=$(sysctl -n kernel.bpf_stats_enabled)
	sysctl -qw kernel.bpf_stats_enabled=1
	start_serve --source ebpf --interval 1s
	before=$(bpftool prog show --json | jq '[.[] | select(.name | startswith("nd_")) | .run_time_ns // 0] | add // 0')
	in_ns "$work/ebpfbench" tcp-rr -rate "$RATE" -duration "${DUR}s" >>"$raw"
	after=$(bpftool prog show --json | jq '[.[] | select(.name | startswith("nd_")) | .run_time_ns // 0] | add // 0')
	stop_serve
	sysctl -qw kernel.bpf_stats_enabled="$old"
	awk -v a="$before" -v b="$after" -v d="$DUR" 'BEGIN {printf "BPF programs (kernel side, every nd_* program of every source loaded): %.2f%% of one core\n", 100 * (b - a) / 1e9 / d}'
fi
echo "raw results: $raw"
