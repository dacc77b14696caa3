package enrich

// heavyHitters counts the most frequent keys of a stream in bounded
// memory (the Misra-Gries summary): it keeps at most k counters; a new key
// when all are taken decrements every counter instead, dropping those that
// reach zero. Every key seen more than n/(k+1) times in n adds is kept, and
// each kept count is short of the true one by at most n/(k+1). Unmatched
// endpoints of a file are counted this way, so that millions of distinct
// ephemeral ports neither grow memory nor slow every flow down.
type heavyHitters struct {
	k      int
	counts map[endpointKey]int64
}

func newHeavyHitters(k int) heavyHitters {
	return heavyHitters{k: k, counts: make(map[endpointKey]int64, k)}
}

func (h *heavyHitters) add(key endpointKey) { h.addN(key, 1) }

func (h *heavyHitters) addN(key endpointKey, n int64) {
	if _, ok := h.counts[key]; ok || len(h.counts) < h.k {
		h.counts[key] += n
		return
	}
	// Take n from the new key and from every counter, as far as it goes.
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

// merge adds the counters of o (the summaries of parallel labellers).
func (h *heavyHitters) merge(o *heavyHitters) {
	for k, c := range o.counts {
		h.addN(k, c)
	}
}
