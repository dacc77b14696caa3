#!/usr/bin/env bash
# bench/enrich.sh - time `netdumper enrich` (a bindings file of 10,000
# bindings, every flow looked up) against nfdump's plain copy
# (`nfdump -r IN -w OUT`, same compression), side by side in one run; print
# the time ratio, both peak RSS and enrich's match rate. enrich syncs its
# output before replacing the original and nfdump does not, so the copy is
# also timed followed by `sync -f OUT` (ratio_d: equally durable). The
# writer alone (bench/rewrite: the same rewrite with one constant label for
# every flow, no lookups, no sync) runs in the same loop, so its ratio
# (writer) and enrich's come from one sitting: their difference is what the
# lookups, the summary and the sync cost.
#
# Usage: bench/enrich.sh [SIZES] [COMPRESSIONS]
#   SIZES         default "5000000"; COMPRESSIONS default "none lzo lz4 bz2"
# Environment: BENCH_DATA (default bench/data), RUNS (default 3, median),
# BINDINGS (number of bindings, default 10000).
set -euo pipefail
cd "$(dirname "$0")/.."
BENCH_DATA=${BENCH_DATA:-bench/data}
RUNS=${RUNS:-3}
SIZES=${1:-"5000000"}
COMPS=${2:-"none lzo lz4 bz2"}
BINDINGS=${BINDINGS:-10000}
command -v /usr/bin/time >/dev/null || { echo "needs /usr/bin/time (apt-get install time)"; exit 1; }
OUT=$(mktemp -d "$BENCH_DATA/enrich.XXXXXX")
trap 'rm -rf "$OUT"' EXIT
go build -o "$OUT/netdumper" ./cmd/netdumper
go build -o "$OUT/mkbindings" ./bench/mkbindings
go build -o "$OUT/rewrite" ./bench/rewrite

flag() { case $1 in none) echo "";; lzo) echo -z;; lz4) echo -y;; bz2) echo -j;; esac; }
median() { sort -n | sed -n "$(( (RUNS + 1) / 2 ))p"; }

printf '%-9s %-5s %10s %10s %7s %13s %8s %9s %7s %12s %12s %8s\n' records comp nfdump_s enrich_s ratio nfdump+sync_s ratio_d writer_s writer nfdump_rss enrich_rss matched
for n in $SIZES; do
	src="$BENCH_DATA/v9-bench-$n.lz4.nf"
	[ -f "$src" ] || { echo "missing $src: run make bench-data"; exit 1; }
	"$OUT/mkbindings" -n "$BINDINGS" "$src" "$OUT/bindings.json" 2>/dev/null
	for c in $COMPS; do
		in="$BENCH_DATA/v9-bench-$n.$c.nf"
		[ -f "$in" ] || nfdump -r "$src" $(flag "$c") -w "$in"
		nt=() st=() et=() wt=() nm=0 em=0
		for ((i = 0; i < RUNS; i++)); do
			# Each timed command starts with no dirty pages: what one left
			# to the kernel would otherwise slow the next one's writes.
			rm -f "$OUT/nfdump.nf"; sync
			line=$(/usr/bin/time -f '%e %M' nfdump -r "$in" $(flag "$c") -w "$OUT/nfdump.nf" 2>&1 >/dev/null | tail -1)
			nt+=("${line% *}"); (( ${line#* } > nm )) && nm=${line#* }
			# The same copy made as durable as enrich makes its output
			# (enrich fsyncs before it renames; nfdump never syncs).
			rm -f "$OUT/nfdump.nf"; sync
			line=$(/usr/bin/time -f '%e %M' sh -c 'nfdump -r "$1" $2 -w "$3" && sync -f "$3"' sh "$in" "$(flag "$c")" "$OUT/nfdump.nf" 2>&1 >/dev/null | tail -1)
			st+=("${line% *}")
			rm -f "$OUT/nfdump.nf"; sync
			line=$(/usr/bin/time -f '%e %M' "$OUT/rewrite" "$in" "$OUT/nfdump.nf" 2>&1 >/dev/null | tail -1)
			wt+=("${line% *}")
			rm -f "$OUT/nfdump.nf"
			cp "$in" "$OUT/nfcapd.202311142210"   # enrich rewrites in place: a fresh copy, not timed
			sync
			line=$(/usr/bin/time -f '%e %M' "$OUT/netdumper" enrich --yes --json --overwrite --bindings "$OUT/bindings.json" \
				"$OUT/nfcapd.202311142210" 2>&1 >"$OUT/summary.json" | tail -1)
			et+=("${line% *}"); (( ${line#* } > em )) && em=${line#* }
		done
		matched=$(python3 -c 'import json,sys; s=json.load(open(sys.argv[1])); print("%.1f%%" % (100.0*(s["matched_exact"]+s["matched_listener"]+s["matched_wildcard"])/max(1,s["flows"])))' "$OUT/summary.json")
		nmed=$(printf '%s\n' "${nt[@]}" | median); emed=$(printf '%s\n' "${et[@]}" | median)
		smed=$(printf '%s\n' "${st[@]}" | median); wmed=$(printf '%s\n' "${wt[@]}" | median)
		ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b < 0.01) b = 0.01; print a / b }'; }
		printf '%-9s %-5s %10s %10s %7.2f %13s %8.2f %9s %7.2f %10sKB %10sKB %8s\n' "$n" "$c" "$nmed" "$emed" \
			"$(ratio "$emed" "$nmed")" "$smed" "$(ratio "$emed" "$smed")" "$wmed" "$(ratio "$wmed" "$nmed")" \
			"$nm" "$em" "$matched"
		rm -f "$OUT"/nfdump.nf
	done
done
