package enrich

import (
	"maps"
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
	if h.n > 64 {
		t.Fatalf("%d counters kept, want at most 64", h.n)
	}
	bound := int64(n / 65)
	for _, k := range heavy {
		got := h.get(k)
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
	if a.get(heavy[0]) < 2500-10000/65 {
		t.Errorf("merged heavy count %d", a.get(heavy[0]))
	}
}

// mapHeavyHitters is the Misra-Gries summary written plainly over a map:
// the reference heavyHitters must agree with, counter for counter.
type mapHeavyHitters struct {
	k      int
	counts map[endpointKey]int64
}

func (h *mapHeavyHitters) addN(key endpointKey, n int64) {
	if _, ok := h.counts[key]; ok || len(h.counts) < h.k {
		h.counts[key] += n
		return
	}
	dec := n
	for _, c := range h.counts {
		dec = min(dec, c)
	}
	for k, c := range h.counts {
		if c -= dec; c == 0 {
			delete(h.counts, k)
		} else {
			h.counts[k] = c
		}
	}
	if n > dec {
		h.counts[key] = n - dec
	}
}

// TestHeavyHittersMatchesMap feeds random streams (skewed, IPv4 and IPv6,
// both local flags, weighted adds) to the table and to the plain map
// version and wants the same counters after every step.
func TestHeavyHittersMatchesMap(t *testing.T) {
	for _, k := range []int{1, 3, 16, 100} {
		rng := rand.New(rand.NewPCG(uint64(k), 9))
		h := newHeavyHitters(k)
		ref := &mapHeavyHitters{k: k, counts: map[endpointKey]int64{}}
		for i := range 20000 {
			var key endpointKey
			key.addr[15] = byte(rng.IntN(4))
			if rng.IntN(3) == 0 {
				key.addr[0] = 0x20
			}
			key.port = uint16(rng.IntN(3 * k))
			if rng.IntN(2) == 0 {
				key.port = uint16(rng.IntN(4)) // heavy ones
			}
			key.proto = uint8(6 + 11*rng.IntN(2))
			key.local = rng.IntN(2) == 0
			n := int64(1)
			if rng.IntN(10) == 0 {
				n = int64(1 + rng.IntN(50))
			}
			h.addN(key, n)
			ref.addN(key, n)
			if i%97 != 0 {
				continue
			}
			got := map[endpointKey]int64{}
			h.each(func(k endpointKey, c int64) { got[k] = c })
			if !maps.Equal(got, ref.counts) || h.n != len(ref.counts) {
				t.Fatalf("k=%d after %d adds: table %v (n=%d), map %v", k, i+1, got, h.n, ref.counts)
			}
		}
	}
}
