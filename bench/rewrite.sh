#!/usr/bin/env bash
# bench/rewrite.sh - time a labelled netdumper rewrite against nfdump's
# plain copy (`nfdump -r IN -w OUT` with the same compression), side by side
# in one run, and print the time ratio and both peak RSS.
#
# Usage: bench/rewrite.sh [SIZES] [COMPRESSIONS]
#   SIZES         record counts of the benchmark files (default "1000000 5000000")
#   COMPRESSIONS  default "none lzo lz4 bz2"
# Environment: BENCH_DATA (default bench/data; make bench-data builds the
# LZ4 originals there), RUNS (default 3; the median is reported), OUT_DIR
# (where outputs go; default a temp dir on the same disk as BENCH_DATA).
set -euo pipefail
cd "$(dirname "$0")/.."
BENCH_DATA=${BENCH_DATA:-bench/data}
RUNS=${RUNS:-3}
SIZES=${1:-"1000000 5000000"}
COMPS=${2:-"none lzo lz4 bz2"}
command -v /usr/bin/time >/dev/null || { echo "needs /usr/bin/time (apt-get install time)"; exit 1; }
OUT_DIR=${OUT_DIR:-$(mktemp -d "$BENCH_DATA/out.XXXXXX")}
trap 'rm -rf "$OUT_DIR"' EXIT
go build -o "$OUT_DIR/rewrite" ./bench/rewrite

flag() { case $1 in none) echo "";; lzo) echo -z;; lz4) echo -y;; bz2) echo -j;; esac; }

# measure CMD...: prints "median_seconds max_rss_kb" over RUNS runs.
measure() {
	local i t=() m=0 line
	for ((i = 0; i < RUNS; i++)); do
		# Start with no dirty pages: what one run leaves to the kernel would
		# otherwise slow the next one's writes.
		rm -f "$OUT_DIR"/*.nf; sync
		line=$(/usr/bin/time -f '%e %M' "$@" 2>&1 >/dev/null | tail -1)
		t+=("${line% *}")
		(( ${line#* } > m )) && m=${line#* }
	done
	printf '%s %s\n' "$(printf '%s\n' "${t[@]}" | sort -n | sed -n "$(( (RUNS + 1) / 2 ))p")" "$m"
}

printf '%-9s %-5s %10s %10s %7s %12s %12s\n' records comp nfdump_s netdump_s ratio nfdump_rss netdump_rss
for n in $SIZES; do
	src="$BENCH_DATA/v9-bench-$n.lz4.nf"
	[ -f "$src" ] || { echo "missing $src: run make bench-data"; exit 1; }
	for c in $COMPS; do
		in="$BENCH_DATA/v9-bench-$n.$c.nf"
		[ -f "$in" ] || nfdump -r "$src" $(flag "$c") -w "$in"
		read -r nt nm < <(measure nfdump -r "$in" $(flag "$c") -w "$OUT_DIR/nfdump.nf")
		read -r ot om < <(measure "$OUT_DIR/rewrite" "$in" "$OUT_DIR/netdumper.nf")
		# Check the output with the real nfdump before trusting the figure.
		nfdump -v "$OUT_DIR/netdumper.nf" | grep -q "Records" || { echo "bad output for $c"; exit 1; }
		printf '%-9s %-5s %10s %10s %7.2f %10sKB %10sKB\n' "$n" "$c" "$nt" "$ot" "$(awk -v a="$ot" -v b="$nt" 'BEGIN { if (b < 0.01) b = 0.01; print a / b }')" "$nm" "$om"
		rm -f "$OUT_DIR"/*.nf
	done
done
