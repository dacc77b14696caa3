package nfcap

import (
	"encoding/binary"
	"math/bits"
	"slices"
)

// LZO1X compressor, written from the public description of the stream
// format (nfdump-format.md section 10.2; the Linux kernel's
// Documentation/staging/lzo.rst describes the same format). It is not a
// port of minilzo/liblzo.
//
// The output is a raw LZO1X stream, as nfdump 1.7.1 stores in each block of
// an LZO file and reads back with lzo1x_decompress_safe. It is a greedy
// single-pass matcher in the spirit of LZO1X-1: a hash table of earlier
// 6-byte sequences, one candidate per position, matches of 4 bytes or more
// extended forwards and backwards, and a step that grows over long literal
// runs so incompressible input is skipped quickly. On nfdump flow blocks its
// output is about 7 % smaller than nfdump's own LZO1X-1 (`nfdump -z`), at
// roughly 75 % of minilzo's speed (see BenchmarkLZOCompress).
//
// The encoder uses only these instructions, which are valid whatever the
// decoder state:
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
	// lzoHashLog sizes the hash table. A bigger table finds more matches,
	// which makes the encoder faster as well as better on 1 MiB flow blocks:
	// 2^16 entries were about 10 % faster than 2^14 (LZO1X-1's size) and
	// no slower than 2^17 or 2^18.
	lzoHashLog  = 16
	lzoHashSize = 1 << lzoHashLog

	// lzoHashBytes is how many bytes the hash covers. Matches still need
	// only lzoMinMatch equal bytes, but hashing 6 finds longer matches for
	// the same table: on flow blocks it gives about 4 % smaller output than
	// hashing 4, at the same speed.
	lzoHashBytes = 6

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

// lzoState is the reusable work memory of lzoCompress: a 256 KiB hash
// table of earlier input positions, cleared at the start of each call
// (a few microseconds; output never depends on earlier calls). Reusing one
// state makes compression allocation free. A state must not be used by two
// goroutines at once. The zero value is ready to use.
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
// nil allocates a fresh one. It grows dst at most once, to hold
// lzoCompressBound(len(src)) more bytes, so a dst with that capacity to
// spare and a reused st make it allocation free.
func lzoCompress(dst, src []byte, st *lzoState) []byte {
	if st == nil {
		st = new(lzoState)
	}
	start, bound := len(dst), lzoCompressBound(len(src))
	dst = slices.Grow(dst, bound)
	n := st.compress(dst[start:start+bound], src)
	return dst[:start+n]
}

// lzoLoad32 and lzoLoad64 read little-endian words at b[i:]. Slicing with
// an explicit end compiles to one bounds check and no pointer masking.
func lzoLoad32(b []byte, i int) uint32 { return binary.LittleEndian.Uint32(b[i : i+4]) }
func lzoLoad64(b []byte, i int) uint64 { return binary.LittleEndian.Uint64(b[i : i+8]) }

// lzoHash hashes the lzoHashBytes low bytes of v (the little-endian load
// of the next 8 input bytes) to a table index.
func lzoHash(v uint64) uint32 {
	return uint32((v << (64 - 8*lzoHashBytes)) * 0x9E3779B97F4A7C15 >> (64 - lzoHashLog))
}

// compress writes the stream for src into out, which must hold
// lzoCompressBound(len(src)) bytes, and returns the number of bytes
// written.
//
// The loop makes no calls (Go would spill every live register around
// them): literal copies and length extensions are written out inline.
func (st *lzoState) compress(out, src []byte) int {
	n := len(src)
	src = src[:n:n] // the loads check against cap: make it len
	op := 0
	anchor := 0 // first source byte not yet emitted
	sPos := -1  // index in out of the byte holding the last match's SS bits; -1 before the first instruction
	if n >= lzoMinInput {
		clear(st.table[:])
		table := &st.table
		ip := 1
		for ip+8 <= len(src) {
			v := lzoLoad64(src, ip)
			cur := uint32(v)
			h := lzoHash(v)
			cand := int(table[h])
			table[h] = uint32(ip)
			if uint(ip-cand-1) >= lzoM4MaxDist || lzoLoad32(src, cand) != cur {
				ip += 1 + (ip-anchor)>>lzoSkipLog
				continue
			}
			// Extend backwards into the pending literals.
			for ip > anchor && cand > 0 && src[ip-1] == src[cand-1] {
				ip--
				cand--
			}
			// Extend forwards. Most matches end within 16 bytes, so look at
			// two words without a data-dependent branch first.
			var mlen int
			if ip+lzoMinMatch+16 <= n {
				x1 := lzoLoad64(src, ip+4) ^ lzoLoad64(src, cand+4)
				x2 := lzoLoad64(src, ip+12) ^ lzoLoad64(src, cand+12)
				l1 := bits.TrailingZeros64(x1) >> 3
				l2 := bits.TrailingZeros64(x2) >> 3
				if x1 != 0 {
					l2 = 0
				}
				mlen = lzoMinMatch + l1 + l2
				if x1|x2 == 0 {
					mlen = lzoMinMatch + 16
					for {
						if ip+mlen+8 > n {
							for ip+mlen < n && src[ip+mlen] == src[cand+mlen] {
								mlen++
							}
							break
						}
						if x := lzoLoad64(src, ip+mlen) ^ lzoLoad64(src, cand+mlen); x != 0 {
							mlen += bits.TrailingZeros64(x) >> 3
							break
						}
						mlen += 8
					}
				}
			} else {
				mlen = lzoMinMatch
				for ip+mlen < n && src[ip+mlen] == src[cand+mlen] {
					mlen++
				}
			}

			// Literals before the match.
			lit := ip - anchor
			if lit <= 3 && sPos >= 0 && op+4 <= len(out) {
				// 0..3 literals: count in the previous match's SS bits.
				out[sPos] |= byte(lit)
				binary.LittleEndian.PutUint32(out[op:op+4], lzoLoad32(src, anchor))
				op += lit
			} else if lit > 0 {
				switch {
				case sPos < 0 && lit <= 238:
					out[op] = byte(17 + lit)
					op++
				case sPos >= 0 && lit <= 3:
					out[sPos] |= byte(lit)
				case lit <= 18:
					out[op] = byte(lit - 3)
					op++
				default:
					out[op] = 0
					op = lzoPutExt(out, op+1, lit-18)
				}
				op = lzoCopyLiterals(out, op, src, anchor, ip)
			}

			// The match. M2 or a short M3 is one 4-byte store.
			dist := ip - cand
			if dist <= lzoM3MaxDist && mlen <= 33 && op+4 <= len(out) {
				d := dist - 1
				w := uint32(32|(mlen-2)) | uint32(d<<2&0xff)<<8 | uint32(d>>6)<<16
				sp, adv := op+1, 3
				if dist <= lzoM2MaxDist && mlen <= lzoM2MaxLen {
					w = uint32((mlen-1)<<5|(d&7)<<2) | uint32(d>>3)<<8
					sp, adv = op, 2
				}
				binary.LittleEndian.PutUint32(out[op:op+4], w)
				sPos = sp
				op += adv
			} else if dist <= lzoM3MaxDist {
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
				sPos = op
				op += 2
			} else {
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
				sPos = op
				op += 2
			}
			ip += mlen
			anchor = ip
		}
	}
	if anchor < n {
		op = lzoEmitLiterals(out, op, sPos, src[anchor:])
	}
	// End of stream: M4 with distance 16384.
	out[op] = 0x11
	out[op+1] = 0
	out[op+2] = 0
	return op + 3
}

// lzoCopyLiterals copies src[from:to] to out[op:] and returns the new op.
// It moves 8 bytes at a time, and may write up to 7 bytes past the run
// (later output overwrites them) when out has room for that.
func lzoCopyLiterals(out []byte, op int, src []byte, from, to int) int {
	end := op + to - from
	if to+8 <= len(src) && end+8 <= len(out) {
		for from < to {
			binary.LittleEndian.PutUint64(out[op:op+8], lzoLoad64(src, from))
			op += 8
			from += 8
		}
		return end
	}
	for from < to {
		out[op] = src[from]
		op++
		from++
	}
	return end
}

// lzoEmitLiterals writes the non-empty literal run lit at out[op:] and
// returns the new op. sPos is the index of the previous match's SS byte, or
// -1 at the start of the stream.
func lzoEmitLiterals(out []byte, op, sPos int, lit []byte) int {
	n := len(lit)
	if n == 0 {
		return op
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
	return op + copy(out[op:], lit)
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
