package enrich

import (
	"math/rand/v2"
	"testing"
)

// TestHeavyHitters streams a few heavy keys among many distinct light ones
// and checks the heavy ones are kept, with counts within the bound.
func TestHeavyHitters(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	h := newHeavyHitters(64)
	truth := map[endpointKey]int64{}
	heavy := []endpointKey{{port: 22}, {port: 53}, {port: 443}}
	n := 0
	for i := 0; i < 200000; i++ {
		k := endpointKey{port: uint16(1024 + rng.IntN(60000)), proto: 6}
		if i%10 < 3 {
			k = heavy[i%10]
		}
		h.add(k)
		truth[k]++
		n++
	}
	if len(h.counts) > 64 {
		t.Fatalf("%d counters kept, want at most 64", len(h.counts))
	}
	bound := int64(n / 65)
	for _, k := range heavy {
		got := h.counts[k]
		if got > truth[k] || truth[k]-got > bound {
			t.Errorf("key %v: count %d, true %d (bound %d)", k, got, truth[k], bound)
		}
	}
	// Merging two halves keeps the heavy keys too.
	a, b := newHeavyHitters(64), newHeavyHitters(64)
	for i := 0; i < 10000; i++ {
		k := endpointKey{port: uint16(1024 + rng.IntN(60000))}
		if i%4 == 0 {
			k = heavy[0]
		}
		if i%2 == 0 {
			a.add(k)
		} else {
			b.add(k)
		}
	}
	a.merge(&b)
	if a.counts[heavy[0]] < 2500-10000/65 {
		t.Errorf("merged heavy count %d", a.counts[heavy[0]])
	}
}
