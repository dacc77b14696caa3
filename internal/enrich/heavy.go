package enrich

import (
	"encoding/binary"
	"math/bits"
)

// heavyHitters counts the most frequent keys of a stream in bounded
// memory (the Misra-Gries summary): it keeps at most k counters; a new key
// when all are taken decrements every counter instead, dropping those that
// reach zero. Every key seen more than n/(k+1) times in n adds is kept, and
// each kept count is short of the true one by at most n/(k+1). Unmatched
// endpoints of a file are counted this way, so that millions of distinct
// ephemeral ports neither grow memory nor slow every flow down.
//
// The counters live in an open-addressing table of at least 2k slots
// hashed with a multiply-shift of the key's words: it is on the path of
// every unmatched flow, where a Go map's hashing of the 20-byte key
// cost more than the rest of the counting.
type heavyHitters struct {
	k     int
	n     int // counters in use
	shift uint
	slots []hhSlot
	spare []hhSlot // survivors of a decrement, reused
}

type hhSlot struct {
	key   endpointKey
	count int64 // 0: empty
}

func newHeavyHitters(k int) heavyHitters {
	size := 1 << bits.Len(uint(2*k-1)) // a power of two >= 2k
	return heavyHitters{k: k, shift: uint(64 - bits.Len(uint(size-1))), slots: make([]hhSlot, size)}
}

// slot returns the index of key's slot, or of the empty slot where it
// would go.
func (h *heavyHitters) slot(key *endpointKey) int {
	x := binary.LittleEndian.Uint64(key.addr[:8])*0x9e3779b97f4a7c15 ^
		binary.LittleEndian.Uint64(key.addr[8:])*0xc2b2ae3d27d4eb4f ^
		(uint64(key.port)|uint64(key.proto)<<16|uint64(b2u(key.local))<<24)*0x165667b19e3779f9
	mask := len(h.slots) - 1
	i := int((x * 0x94d049bb133111eb) >> h.shift)
	for {
		s := &h.slots[i]
		if s.count == 0 || s.key == *key {
			return i
		}
		i = (i + 1) & mask
	}
}

func b2u(b bool) uint8 {
	if b {
		return 1
	}
	return 0
}

func (h *heavyHitters) add(key endpointKey) { h.addN(key, 1) }

func (h *heavyHitters) addN(key endpointKey, n int64) {
	if n <= 0 {
		return
	}
	i := h.slot(&key)
	if s := &h.slots[i]; s.count > 0 || h.n < h.k {
		if s.count == 0 {
			s.key = key
			h.n++
		}
		s.count += n
		return
	}
	// Take n from the new key and from every counter, as far as it goes.
	dec := n
	for i := range h.slots {
		if c := h.slots[i].count; c > 0 {
			dec = min(dec, c)
		}
	}
	h.spare = h.spare[:0]
	for i := range h.slots {
		if s := &h.slots[i]; s.count > dec {
			h.spare = append(h.spare, hhSlot{s.key, s.count - dec})
		}
	}
	clear(h.slots)
	h.n = 0
	for _, s := range h.spare {
		h.slots[h.slot(&s.key)] = s
		h.n++
	}
	if n > dec {
		h.slots[h.slot(&key)] = hhSlot{key, n - dec}
		h.n++
	}
}

// each calls fn for every kept counter.
func (h *heavyHitters) each(fn func(endpointKey, int64)) {
	for _, s := range h.slots {
		if s.count > 0 {
			fn(s.key, s.count)
		}
	}
}

// get returns the kept count of key (0 when it is not kept).
func (h *heavyHitters) get(key endpointKey) int64 { return h.slots[h.slot(&key)].count }

// merge adds the counters of o (the summaries of parallel labellers).
func (h *heavyHitters) merge(o *heavyHitters) { o.each(h.addN) }
