package nfcap

import (
	"encoding/binary"
	"math/bits"
)

// LZO1X compressor, written from the public description of the stream
// format (nfdump-format.md section 10.2; the Linux kernel's
// Documentation/staging/lzo.rst describes the same format). It is not a
// port of minilzo/liblzo.
//
// The output is a raw LZO1X stream, as nfdump 1.7.1 stores in each block of
// an LZO file and reads back with lzo1x_decompress_safe. It is a greedy
// single-pass matcher in the spirit of LZO1X-1: a hash table of earlier
// 4-byte sequences, one candidate per position, matches of 4 bytes or more
// extended forwards and backwards, and a step that grows over long literal
// runs so incompressible input is skipped quickly. The encoder uses only
// these instructions, which are valid whatever the decoder state:
//
//	first literal run  byte 17+n (n = 1..238) at the very start
//	long literal run   0000LLLL: n = L+3 (4..18), or L=0 then ext: n = 18+ext
//	M2                 LLLDDDSS HHHHHHHH: length 3..8, distance 1..2048
//	M3                 001LLLLL [ext] DDDDDDDDDDDDDDSS (LE16): length
//	                   L+2 (3..33) or L=0 then ext: 33+ext; distance 1..16384
//	M4                 0001HLLL [ext] DDDDDDDDDDDDDDSS (LE16): length L+2
//	                   (3..9) or L=0 then ext: 9+ext; distance
//	                   16384+(H<<14)+D, 16385..49151
//	end of stream      11 00 00 (M4 with distance 16384)
//
// "ext" is a run of zero bytes worth 255 each, closed by one non-zero byte
// that adds its value. SS is the number (0..3) of literals that follow a
// match; runs of 4 or more literals after a match leave SS at 0 and use a
// long literal run instead. M1 (opcodes 0..15 after literals) is never
// emitted.

const (
	lzoHashLog  = 14
	lzoHashSize = 1 << lzoHashLog

	lzoMinMatch  = 4     // shortest match the encoder looks for
	lzoM2MaxLen  = 8     // longest match M2 encodes
	lzoM2MaxDist = 2048  // farthest match M2 encodes
	lzoM3MaxDist = 16384 // farthest match M3 encodes
	lzoM4MaxDist = 49151 // farthest match M4 (and LZO1X) encodes

	// lzoSkipLog sets how fast the search step grows over a literal run:
	// after 1<<lzoSkipLog literals it is 2, then 3, and so on.
	lzoSkipLog = 5

	// lzoMinInput is the smallest input the matcher runs on; shorter input
	// is stored as literals.
	lzoMinInput = 16
)

// lzoState is the reusable work memory of lzoCompress: a hash table of
// earlier input positions. Reusing one state makes compression allocation
// free. A state must not be used by two goroutines at once. The zero value
// is ready to use.
type lzoState struct {
	table [lzoHashSize]uint32
}

// lzoCompressBound returns the largest size lzoCompress can produce for n
// bytes of input (the same bound liblzo documents for LZO1X-1).
func lzoCompressBound(n int) int {
	return n + n/16 + 64 + 3
}

// lzoCompress appends the raw LZO1X stream (no header, no length prefix)
// for src to dst and returns the extended slice. st holds the hash table;
// nil allocates a fresh one. It grows dst at most once, to
// len(dst)+lzoCompressBound(len(src)), so a dst with that capacity to spare
// and a reused st make it allocation free.
func lzoCompress(dst, src []byte, st *lzoState) []byte {
	if st == nil {
		st = new(lzoState)
	}
	start := len(dst)
	need := start + lzoCompressBound(len(src))
	if cap(dst) < need {
		grown := make([]byte, start, need)
		copy(grown, dst)
		dst = grown
	}
	out := dst[start:need]
	n := st.compress(out, src)
	return dst[:start+n]
}

func lzoHash(v uint32) uint32 {
	return (v * 2654435761) >> (32 - lzoHashLog)
}

// compress writes the stream for src into out, which must hold
// lzoCompressBound(len(src)) bytes, and returns the number of bytes
// written.
func (st *lzoState) compress(out, src []byte) int {
	op := 0
	anchor := 0 // first source byte not yet emitted
	sPos := -1  // index in out of the byte holding the last match's SS bits; -1 before the first instruction
	n := len(src)

	if n >= lzoMinInput {
		clear(st.table[:])
		table := &st.table
		limit := n - lzoMinMatch // last position a 4-byte load may start at
		ip := 1
		for ip <= limit {
			cur := binary.LittleEndian.Uint32(src[ip:])
			h := lzoHash(cur)
			cand := int(table[h])
			table[h] = uint32(ip)
			if uint(ip-cand-1) >= lzoM4MaxDist || binary.LittleEndian.Uint32(src[cand:]) != cur {
				ip += 1 + (ip-anchor)>>lzoSkipLog
				continue
			}
			// Extend backwards into the pending literals.
			for ip > anchor && cand > 0 && src[ip-1] == src[cand-1] {
				ip--
				cand--
			}
			// Extend forwards.
			mlen := lzoMinMatch + lzoMatchLen(src[ip+lzoMinMatch:], src[cand+lzoMinMatch:])

			op, sPos = lzoEmitLiterals(out, op, sPos, src[anchor:ip])
			op, sPos = lzoEmitMatch(out, op, ip-cand, mlen)
			ip += mlen
			anchor = ip
			if ip <= limit {
				// Remember a position inside the match, which helps on
				// records that repeat with small changes.
				p := ip - 2
				table[lzoHash(binary.LittleEndian.Uint32(src[p:]))] = uint32(p)
			}
		}
	}
	op, _ = lzoEmitLiterals(out, op, sPos, src[anchor:])
	// End of stream: M4 with distance 16384.
	out[op] = 0x11
	out[op+1] = 0
	out[op+2] = 0
	return op + 3
}

// lzoMatchLen returns how many leading bytes a and b share; b may be
// longer than a (it starts earlier in the same buffer).
func lzoMatchLen(a, b []byte) int {
	b = b[:len(a)]
	n := 0
	for len(a)-n >= 8 {
		x := binary.LittleEndian.Uint64(a[n:]) ^ binary.LittleEndian.Uint64(b[n:])
		if x != 0 {
			return n + bits.TrailingZeros64(x)>>3
		}
		n += 8
	}
	for n < len(a) && a[n] == b[n] {
		n++
	}
	return n
}

// lzoEmitLiterals writes the literal run lit at out[op:] and returns the new
// op and sPos.
func lzoEmitLiterals(out []byte, op, sPos int, lit []byte) (int, int) {
	n := len(lit)
	if n == 0 {
		return op, sPos
	}
	switch {
	case sPos < 0 && n <= 238:
		out[op] = byte(17 + n)
		op++
	case sPos >= 0 && n <= 3:
		out[sPos] |= byte(n)
	case n <= 18:
		out[op] = byte(n - 3)
		op++
	default:
		out[op] = 0
		op = lzoPutExt(out, op+1, n-18)
	}
	op += copy(out[op:], lit)
	return op, -1
}

// lzoEmitMatch writes a match of mlen >= 3 bytes at distance dist
// (1..lzoM4MaxDist) at out[op:] and returns the new op and the index of the
// byte that holds its SS bits.
func lzoEmitMatch(out []byte, op, dist, mlen int) (int, int) {
	switch {
	case dist <= lzoM2MaxDist && mlen <= lzoM2MaxLen:
		d := dist - 1
		out[op] = byte((mlen-1)<<5 | (d&7)<<2)
		out[op+1] = byte(d >> 3)
		return op + 2, op
	case dist <= lzoM3MaxDist:
		d := dist - 1
		if mlen <= 33 {
			out[op] = byte(32 | (mlen - 2))
			op++
		} else {
			out[op] = 32
			op = lzoPutExt(out, op+1, mlen-33)
		}
		out[op] = byte(d << 2)
		out[op+1] = byte(d >> 6)
		return op + 2, op
	default:
		d := dist - lzoM3MaxDist
		h := byte(d>>11) & 8
		if mlen <= 9 {
			out[op] = 16 | h | byte(mlen-2)
			op++
		} else {
			out[op] = 16 | h
			op = lzoPutExt(out, op+1, mlen-9)
		}
		out[op] = byte(d << 2)
		out[op+1] = byte(d >> 6 & 0xff)
		return op + 2, op
	}
}

// lzoPutExt writes the length extension for t >= 1: t/255 zero bytes (one
// fewer when t is a multiple of 255) and the remainder.
func lzoPutExt(out []byte, op, t int) int {
	for t > 255 {
		out[op] = 0
		op++
		t -= 255
	}
	out[op] = byte(t)
	return op + 1
}
