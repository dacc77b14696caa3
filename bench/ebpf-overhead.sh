#!/usr/bin/env bash
# ebpf-overhead.sh: what the eBPF event source (tracker/ebpf) costs.
#
#  1. Loopback throughput with and without the programs attached:
#     tcp-rr     short TCP connections flat out (connect, 1-byte request and
#                reply, close), 2 client goroutines
#     tcp-stream one bulk TCP stream, 128 KiB writes
#     udp        unconnected sendto(2) of 64-byte datagrams to one peer
#                (also with Options.NoSendmsgHook)
#     Runs alternate off/on, REPS times each; the medians are printed.
#  2. The source's own CPU under ~1,000 new TCP connections per second: the
#     reader's CPU (user+system of the consuming process) and the kernel run
#     time of the BPF programs (kernel.bpf_stats_enabled, per program), plus
#     the load generator's CPU per connection with and without the source.
#
# Needs root; skips otherwise. About 1.5 minutes with the defaults.
#   DUR=3s REPS=3 bench/ebpf-overhead.sh
# Raw output goes to bench/out/ebpf-overhead.txt.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" != 0 ]; then
	echo "ebpf-overhead: skipped (loading eBPF programs needs root)"
	exit 0
fi
DUR=${DUR:-3s}
REPS=${REPS:-3}
RATE_DUR=${RATE_DUR:-5s}

work=$(mktemp -d)
apid=""
cleanup() {
	if [ -n "$apid" ]; then kill -INT "$apid" 2>/dev/null || true; wait "$apid" 2>/dev/null || true; fi
	rm -rf "$work"
}
trap cleanup EXIT
bin=$work/ebpfbench
go build -o "$bin" ./tracker/ebpf/internal/ebpfbench
mkdir -p bench/out
raw=bench/out/ebpf-overhead.txt
: >"$raw"

# start_attach ARGS...: run the source in the background until stop_attach.
start_attach() {
	"$bin" attach -duration 10m "$@" >"$work/attach.out" 2>&1 &
	apid=$!
	for _ in $(seq 200); do
		grep -q '^attached' "$work/attach.out" && return 0
		kill -0 "$apid" 2>/dev/null || break
		sleep 0.1
	done
	cat "$work/attach.out" >&2
	echo "ebpf-overhead: the source did not attach" >&2
	exit 1
}
stop_attach() {
	kill -INT "$apid"
	wait "$apid" || true
	apid=""
	cat "$work/attach.out" >>"$raw"
}

# field LINE KEY: the value of KEY=VALUE in LINE.
field() { tr ' ' '\n' <<<"$1" | sed -n "s/^$2=//p" | tr -d '%/s'; }
median() { sort -g | awk '{v[NR]=$1} END {print (NR%2) ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2}'; }

# Each run's output line is kept in $work/NAME.lines.
run_load() { # run_load NAME ARGS...
	local name=$1
	shift
	local line
	line=$("$bin" "$@")
	echo "$name: $line" >>"$raw"
	echo "$line" >>"$work/$name.lines"
}
# med NAME KEY: the median of KEY over NAME's runs.
med() { while read -r l; do field "$l" "$2"; done <"$work/$1.lines" | median; }
# row LABEL OFF ON KEY UNIT
row() {
	local off on
	off=$(med "$2" "$4")
	on=$(med "$3" "$4")
	printf '%-26s %12s %12s %7.1f%%  %s\n' "$1" "$off" "$on" "$(awk -v a="$off" -v b="$on" 'BEGIN {print 100*(b-a)/a}')" "$5"
}

echo "== loopback throughput, $REPS x $DUR each, off/on alternating"
for rep in $(seq "$REPS"); do
	for load in tcp-rr tcp-stream udp; do
		run_load "$load-off" "$load" -duration "$DUR"
		start_attach -bpfstats=false
		run_load "$load-on" "$load" -duration "$DUR"
		stop_attach
	done
	start_attach -bpfstats=false -nosendmsg
	run_load udp-nosendmsg "udp" -duration "$DUR"
	stop_attach
	echo "   rep $rep/$REPS done"
done
printf '%-26s %12s %12s %8s  %s\n' "medians" "without" "with source" change unit
row "tcp-rr" tcp-rr-off tcp-rr-on rate conn/s
row "tcp-rr CPU" tcp-rr-off tcp-rr-on cpu_per_conn_us "us/conn"
row "tcp-stream" tcp-stream-off tcp-stream-on gbit_per_s Gbit/s
row "udp" udp-off udp-on rate datagram/s
row "udp CPU" udp-off udp-on cpu_per_datagram_ns ns/datagram
row "udp, NoSendmsgHook" udp-off udp-nosendmsg rate datagram/s
row "udp CPU, NoSendmsgHook" udp-off udp-nosendmsg cpu_per_datagram_ns ns/datagram

echo
echo "== cost of the source at 1,000 new TCP connections/s ($RATE_DUR)"
for rep in $(seq "$REPS"); do
	run_load rate-off tcp-rr -rate 1000 -duration "$RATE_DUR"
	start_attach -bpfstats=false
	run_load rate-on tcp-rr -rate 1000 -duration "$RATE_DUR"
	stop_attach
done
echo "load generator (user+sys, includes the loopback softirq work), medians:"
row "tcp-rr at 1,000/s CPU" rate-off rate-on cpu_per_conn_us "us/conn"
start_attach -bpfstats=true
"$bin" tcp-rr -rate 1000 -duration "$RATE_DUR" >>"$raw"
stop_attach
echo "source (reader process + BPF programs, kernel.bpf_stats_enabled on):"
sed -n '/^mode=attach/,$p' "$work/attach.out" | sed 's/^/   /'
echo "raw results: $raw"
