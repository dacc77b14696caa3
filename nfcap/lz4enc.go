package nfcap

import (
	"encoding/binary"
	"math/bits"
	"slices"
)

// LZ4 block compressor, written from the public description of the LZ4
// block format (lz4_Block_format.md in the LZ4 repository; nfdump 1.7.1
// stores one such block, without frame, in each data block of an LZ4 file
// and reads it back with LZ4_decompress_safe). It is not a port of liblz4.
//
// It is a greedy single-pass matcher like LZ4's fast mode: a hash table of
// earlier 5-byte sequences, one candidate per position, matches of 4 bytes
// or more extended backwards and forwards (8 bytes at a time), and a search
// step that grows over long literal runs so incompressible input is
// skipped quickly. The rewrite compresses every block it writes, and on an
// LZ4 file this was the largest cost of labelling; see BenchmarkLZ4Compress
// for how it compares with github.com/pierrec/lz4, which it replaced there.
//
// The output respects the format's end-of-block rules: the last sequence
// is literals only, the last 5 bytes are literals, and the last match
// starts at least 12 bytes before the end.

const (
	// lz4HashLog sizes the hash table: 2^12 entries (16 KiB, LZ4's
	// default) stay in the L1 cache. On 1 MiB flow blocks it is 10 %
	// faster than 2^14 or 2^16 for 1-3 % larger output.
	lz4HashLog = 12

	lz4MinMatch     = 4
	lz4LastLiterals = 5     // the last 5 bytes are always literals
	lz4MFLimit      = 12    // a match must start this far before the end
	lz4MaxDist      = 65535 // farthest match an offset encodes
	// lz4SkipLog sets how fast the search step grows over a literal run:
	// after 1<<lz4SkipLog misses it is 2, then 3, and so on.
	lz4SkipLog = 6
)

// lz4State is the reusable work memory of lz4Compress: a hash table of
// earlier input positions, cleared at the start of each call (output
// never depends on earlier calls). A state must not be used by two
// goroutines at once. The zero value is ready to use.
type lz4State struct {
	table [1 << lz4HashLog]uint32
}

// lz4CompressBound returns the largest size lz4Compress can produce for n
// bytes of input (LZ4_compressBound).
func lz4CompressBound(n int) int { return n + n/255 + 16 }

// lz4Compress appends the LZ4 block for src to dst and returns the
// extended slice. It grows dst at most once, to hold
// lz4CompressBound(len(src)) more bytes, so a dst with that capacity to
// spare makes it allocation free.
func lz4Compress(dst, src []byte, st *lz4State) []byte {
	start, bound := len(dst), lz4CompressBound(len(src))
	dst = slices.Grow(dst, bound)
	n := st.compress(dst[start:start+bound], src)
	return dst[:start+n]
}

// lz4Hash hashes the 5 low bytes of v (the little-endian load of the next
// 8 input bytes) to a table index.
func lz4Hash(v uint64) uint32 {
	return uint32((v << 24) * 889523592379 >> (64 - lz4HashLog))
}

// lz4PutLen writes length n for a token: when n is 15 or more, its
// extension bytes go to out[op:] (255s, then the rest). It returns the
// token's 4-bit field for n and where the next byte goes.
func lz4PutLen(out []byte, op, n int) (byte, int) {
	if n < 15 {
		return byte(n), op
	}
	for n -= 15; n >= 255; n -= 255 {
		out[op] = 255
		op++
	}
	out[op] = byte(n)
	return 15, op + 1
}

// compress writes the block for src into out, which must hold
// lz4CompressBound(len(src)) bytes, and returns the number of bytes
// written. Like lzoState.compress, the loop makes no calls that are not
// inlined.
func (st *lz4State) compress(out, src []byte) int {
	n := len(src)
	src = src[:n:n]
	op, anchor := 0, 0
	if n > lz4MFLimit {
		clear(st.table[:])
		mfLimit := n - lz4MFLimit         // matches start before this
		matchLimit := n - lz4LastLiterals // and end at or before this
		// Position 0 is in the cleared table already; the search starts at
		// 1, so every candidate is before the position searched.
		si := 1
	sequences:
		for {
			// Find a match at si or after.
			ref := 0
			miss := 1 << lz4SkipLog
			for {
				if si >= mfLimit {
					break sequences
				}
				cur := binary.LittleEndian.Uint64(src[si : si+8])
				h := lz4Hash(cur)
				ref = int(st.table[h])
				st.table[h] = uint32(si)
				if si-ref <= lz4MaxDist && uint32(cur) == binary.LittleEndian.Uint32(src[ref:ref+4]) {
					break
				}
				si += miss >> lz4SkipLog
				miss++
			}
			// Extend it backwards over pending literals, then forwards.
			for si > anchor && ref > 0 && src[si-1] == src[ref-1] {
				si--
				ref--
			}
			ml := lz4MinMatch
			for si+ml+8 <= matchLimit {
				x := binary.LittleEndian.Uint64(src[si+ml:si+ml+8]) ^ binary.LittleEndian.Uint64(src[ref+ml:ref+ml+8])
				if x != 0 {
					ml += bits.TrailingZeros64(x) >> 3
					goto extended
				}
				ml += 8
			}
			for si+ml < matchLimit && src[si+ml] == src[ref+ml] {
				ml++
			}
		extended:
			// The sequence: token, literal length, literals, offset, match length.
			tok := op
			var litLen, matchLen byte
			litLen, op = lz4PutLen(out, op+1, si-anchor)
			op += copy(out[op:op+si-anchor], src[anchor:si])
			off := si - ref
			out[op], out[op+1] = byte(off), byte(off>>8)
			matchLen, op = lz4PutLen(out, op+2, ml-lz4MinMatch)
			out[tok] = litLen<<4 | matchLen
			si += ml
			anchor = si
			if si >= mfLimit {
				break
			}
			// Remember a position inside the match, as LZ4 does: repeats
			// of the matched data often start there.
			st.table[lz4Hash(binary.LittleEndian.Uint64(src[si-2:si+6]))] = uint32(si - 2)
		}
	}
	// The last literals.
	lit := n - anchor
	tok := op
	var litLen byte
	litLen, op = lz4PutLen(out, op+1, lit)
	out[tok] = litLen << 4
	op += copy(out[op:op+lit], src[anchor:])
	return op
}
