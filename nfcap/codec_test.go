package nfcap

import (
	"fmt"
	"math/rand/v2"
	"sort"
	"testing"
)

// codecCase is one input of an encoder's round-trip test.
type codecCase struct {
	name string
	src  []byte
}

// codecLimits are the lengths and distances where a codec's encoding
// changes form, for codecCases to try around.
type codecLimits struct {
	short   []int // input lengths (each random, zeros and period 3)
	periods []int // periods of repeating input
	dists   []int // distances of a single match
	lens    []int // lengths of that match
	maxDist int   // farthest repeat in the mixed inputs
}

// codecCases builds the round-trip inputs for a codec: random, constant
// and period-3 input of every short length; large random and constant
// input up to the 5 MiB block limit; repeats of each period; one match
// at each distance and length; mixed stretches of random text and repeats
// of earlier text (literal runs of every length between matches); and
// every real flow block of the fixtures. They are sorted by name.
func codecCases(tb testing.TB, rng *rand.Rand, lim codecLimits) []codecCase {
	var cases []codecCase
	for _, n := range lim.short {
		cases = append(cases,
			codecCase{fmt.Sprintf("random/%d", n), lzoRandom(rng, n)},
			codecCase{fmt.Sprintf("zeros/%d", n), make([]byte, n)},
			codecCase{fmt.Sprintf("period3/%d", n), lzoPattern(rng, n, 3)},
		)
	}
	for _, n := range []int{4096, 65536, 1 << 20, 5 << 20} {
		cases = append(cases,
			codecCase{fmt.Sprintf("random/%d", n), lzoRandom(rng, n)},
			codecCase{fmt.Sprintf("zeros/%d", n), make([]byte, n)},
		)
	}
	for _, p := range lim.periods {
		cases = append(cases, codecCase{fmt.Sprintf("period/%d", p), lzoPattern(rng, 3*p+1000, p)})
	}
	for _, d := range lim.dists {
		for _, l := range lim.lens {
			cases = append(cases, codecCase{fmt.Sprintf("dist%d/len%d", d, l), lzoAtDistance(rng, d, l)})
		}
	}
	for i := range 20 {
		var b []byte
		for len(b) < 200_000 {
			if len(b) > 64 && rng.IntN(2) == 0 {
				d := 1 + rng.IntN(min(len(b), lim.maxDist))
				for range 1 + rng.IntN(300) {
					b = append(b, b[len(b)-d])
				}
			} else {
				b = append(b, lzoRandom(rng, rng.IntN(300))...)
			}
		}
		cases = append(cases, codecCase{fmt.Sprintf("mixed/%d", i), b})
	}
	for name, p := range lzoRealPayloads(tb) {
		cases = append(cases, codecCase{"real/" + name, p})
	}
	sort.Slice(cases, func(i, j int) bool { return cases[i].name < cases[j].name })
	return cases
}
