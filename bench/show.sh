#!/usr/bin/env bash
# show.sh - netdumper show vs nfdump, side by side, on the same files.
#
# Usage: bench/show.sh [FILE...]
#
# For every FILE (default: $BENCH_DATA/v9-bench-1000000.lz4.nf, with
# BENCH_DATA defaulting to bench/data) the script also makes uncompressed,
# LZO and BZ2 copies with `nfdump -r IN -w OUT [-z|-j]` in a temporary
# directory (CONVERT=0 skips that), then runs
#
#   netdumper show -q -o "fmt:%line %uname" FILE > /dev/null
#   nfdump -q -r FILE -o "fmt:%line %uname"      > /dev/null
#
# REPS times each (default 3), alternating, and prints the best wall time,
# the CPU time (user+sys) of that run, the peak RSS of each and the ratio
# nfdump/netdumper (above 1 means netdumper is faster). Both run with the
# same TZ (default UTC: glibc's localtime() re-reads /etc/localtime on every
# call when TZ is unset, which slows nfdump down by half).
#
# Environment: BENCH_DATA, REPS, CONVERT, NETDUMPER (a prebuilt binary; by
# default the script builds ./cmd/netdumper), TZ.
set -euo pipefail

cd "$(dirname "$0")/.."
BENCH_DATA=${BENCH_DATA:-bench/data}
REPS=${REPS:-3}
CONVERT=${CONVERT:-1}
export TZ=${TZ:-UTC} LC_ALL=C
FMT='fmt:%line %uname'

if [ ! -x /usr/bin/time ]; then
    if [ "$(id -u)" = 0 ]; then
        apt-get install -y -qq time >/dev/null
    else
        echo "show.sh: /usr/bin/time is missing (apt-get install time)" >&2
        exit 1
    fi
fi
command -v nfdump >/dev/null || { echo "show.sh: nfdump is not installed (make deps)" >&2; exit 1; }

if [ $# -eq 0 ]; then
    set -- "$BENCH_DATA/v9-bench-1000000.lz4.nf"
fi
for f in "$@"; do
    [ -f "$f" ] || { echo "show.sh: $f not found (make bench-data, or set BENCH_DATA)" >&2; exit 1; }
done

TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

ND=${NETDUMPER:-}
if [ -z "$ND" ]; then
    ND=$TMP/netdumper
    go build -o "$ND" ./cmd/netdumper
fi

# measure CMD...: run once, print "wall cpu rss_kib"
measure() {
    /usr/bin/time -f '%e %U %S %M' -o "$TMP/time" "$@" >/dev/null
    awk '{ printf "%.2f %.2f %d\n", $1, $2 + $3, $4 }' "$TMP/time"
}

files=()
for f in "$@"; do
    files+=("$f")
    if [ "$CONVERT" = 1 ]; then
        base=$(basename "$f" .nf)
        base=${base%.lz4}
        for c in none lzo bz2; do
            case $c in none) flag= ;; lzo) flag=-z ;; bz2) flag=-j ;; esac
            out=$TMP/$base.$c.nf
            nfdump -r "$f" $flag -w "$out"
            files+=("$out")
        done
    fi
done

printf '%-34s %7s | %9s %9s %9s | %9s %9s %9s | %6s\n' file records \
    "nd wall" "nd cpu" "nd RSS" "nf wall" "nf cpu" "nf RSS" ratio
for f in "${files[@]}"; do
    records=$(nfdump -I -r "$f" | awk -F': ' '$1 == "Flows" { print $2 }')
    best_nd="" best_nf=""
    for _ in $(seq "$REPS"); do
        r=$(measure "$ND" show -q -o "$FMT" "$f")
        if [ -z "$best_nd" ] || awk -v a="$r" -v b="$best_nd" 'BEGIN { split(a, x, " "); split(b, y, " "); exit !(x[1] < y[1]) }'; then best_nd=$r; fi
        r=$(measure nfdump -q -r "$f" -o "$FMT")
        if [ -z "$best_nf" ] || awk -v a="$r" -v b="$best_nf" 'BEGIN { split(a, x, " "); split(b, y, " "); exit !(x[1] < y[1]) }'; then best_nf=$r; fi
    done
    read -r ndw ndc ndm <<<"$best_nd"
    read -r nfw nfc nfm <<<"$best_nf"
    ratio=$(awk -v a="$nfw" -v b="$ndw" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "inf" }')
    printf '%-34s %7s | %8ss %8ss %6d MiB | %8ss %8ss %6d MiB | %6s\n' "$(basename "$f")" "$records" \
        "$ndw" "$ndc" $((ndm / 1024)) "$nfw" "$nfc" $((nfm / 1024)) "$ratio"
done
