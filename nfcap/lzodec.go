package nfcap

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// LZO1X decoder, written from the public description of the stream format
// (nfdump-format.md section 10.2, the Linux kernel's
// Documentation/staging/lzo.rst). It replaces
// anchore/go-lzo (now the tests' oracle), with the same results: every
// stream anchore/go-lzo decodes it decodes to the same bytes, and every
// stream anchore/go-lzo rejects it rejects (the tests check both
// directions). It never reads or writes outside src and dst whatever the
// input, and never panics.
//
// The decoder state is the number of literals the previous instruction
// copied: 0, 1..3, or 4 (meaning 4 or more, after a literal run).
//
//	first byte 18..255  literal run of byte-17 (1..238); state = min(n, 4)
//	0000LLLL, state 0   literal run of L+3 (4..18), or L=0: 18+ext; state 4
//	0000DDSS, state 1-3 M1: 2 bytes at distance (H<<2)+D+1 (H: next byte)
//	0000DDSS, state 4   M1: 3 bytes at distance (H<<2)+D+2049
//	LLLDDDSS (64..255)  M2: (op>>5)+1 bytes at distance (H<<3)+D+1
//	001LLLLL (32..63)   M3: L+2 bytes (L=0: 33+ext), LE16 v: distance (v>>2)+1
//	0001HLLL (16..31)   M4: L+2 bytes (L=0: 9+ext), LE16 v: distance
//	                    16384+(H<<14)+(v>>2); distance 16384 ends the stream
//	after M1..M4        SS (0..3) literals follow; state = SS
//
// As in anchore/go-lzo, the end-of-stream instruction must be the 3-byte
// form (length 3, no ext) and the stream must end right after it.

// Errors of lzoDecode. lzoDecompress wraps them with ErrTooLarge or
// passes them on (the caller adds ErrDecompress).
var (
	errLZOInputOverrun   = errors.New("lzo: input overrun")
	errLZOOutputOverrun  = errors.New("lzo: output overrun")
	errLZOLookbehind     = errors.New("lzo: lookbehind overrun")
	errLZOBadEnd         = errors.New("lzo: bad end-of-stream instruction")
	errLZOTrailingInput  = errors.New("lzo: input not fully consumed")
	errLZOLengthOverflow = errors.New("lzo: length longer than the output buffer")
)

// lzoDecompress decodes one raw LZO1X stream, as written by nfdump's
// lzo1x_1_compress, into dst (grown as needed up to MaxBlockSize) and
// returns the plain payload.
func lzoDecompress(dst, src []byte) ([]byte, error) {
	return growDecode(dst, src, func(dst, src []byte) (int, error) {
		n, err := lzoDecode(dst, src)
		if err == nil {
			return n, nil
		}
		if errors.Is(err, errLZOOutputOverrun) || errors.Is(err, errLZOLengthOverflow) {
			return 0, errShortBuffer
		}
		return 0, fmt.Errorf("%w at input offset %d", err, lzoErrOffset(err))
	})
}

// lzoDecodeError carries the input offset of a decoding error.
type lzoDecodeError struct {
	off int
	err error
}

func (e *lzoDecodeError) Error() string { return e.err.Error() }
func (e *lzoDecodeError) Unwrap() error { return e.err }

func lzoErrOffset(err error) int {
	var de *lzoDecodeError
	if errors.As(err, &de) {
		return de.off
	}
	return -1
}

// lzoDecode decodes the raw LZO1X stream src into dst and returns the
// number of bytes written. dst's length is the output limit; a stream that
// would write past it fails with errLZOOutputOverrun. On error the count of
// bytes written so far is returned as well.
func lzoDecode(dst, src []byte) (int, error) {
	src = src[:len(src):len(src)]
	dst = dst[:len(dst):len(dst)]
	ip, op := 0, 0
	if len(src) < 3 {
		return op, &lzoDecodeError{off: ip, err: errLZOInputOverrun}
	}

	state := 0
	if t := int(src[0]); t >= 18 {
		t -= 17
		ip = 1
		if ip+t > len(src) {
			return op, &lzoDecodeError{off: ip, err: errLZOInputOverrun}
		}
		if op+t > len(dst) {
			return op, &lzoDecodeError{off: ip, err: errLZOOutputOverrun}
		}
		op += copy(dst[op:], src[ip:ip+t])
		ip += t
		state = min(t, 4)
	}

	for {
		if ip >= len(src) {
			return op, &lzoDecodeError{off: ip, err: errLZOInputOverrun}
		}
		inst := int(src[ip])
		ip++
		var mlen, dist, lits int
		switch {
		case inst >= 64: // M2
			if ip >= len(src) {
				return op, &lzoDecodeError{off: ip, err: errLZOInputOverrun}
			}
			dist = int(src[ip])<<3 + (inst>>2)&7 + 1
			ip++
			mlen = inst>>5 + 1
			lits = inst & 3

		case inst >= 32: // M3
			mlen = inst & 31
			if mlen == 0 {
				var err error
				if mlen, ip, err = lzoExt(src, ip, 31, len(dst)); err != nil {
					return op, &lzoDecodeError{off: ip, err: err}
				}
			}
			mlen += 2
			if ip+2 > len(src) {
				return op, &lzoDecodeError{off: ip, err: errLZOInputOverrun}
			}
			v := int(binary.LittleEndian.Uint16(src[ip : ip+2]))
			ip += 2
			dist = v>>2 + 1
			lits = v & 3

		case inst >= 16: // M4, or the end of the stream
			mlen = inst & 7
			if mlen == 0 {
				var err error
				if mlen, ip, err = lzoExt(src, ip, 7, len(dst)); err != nil {
					return op, &lzoDecodeError{off: ip, err: err}
				}
			}
			mlen += 2
			if ip+2 > len(src) {
				return op, &lzoDecodeError{off: ip, err: errLZOInputOverrun}
			}
			v := int(binary.LittleEndian.Uint16(src[ip : ip+2]))
			ip += 2
			dist = (inst&8)<<11 + v>>2
			if dist == 0 {
				switch {
				case mlen != 3:
					return op, &lzoDecodeError{off: ip, err: errLZOBadEnd}
				case ip < len(src):
					return op, &lzoDecodeError{off: ip, err: errLZOTrailingInput}
				}
				return op, nil
			}
			dist += 16384
			lits = v & 3

		case state == 0: // long literal run
			t := inst + 3
			if inst == 0 {
				var err error
				if t, ip, err = lzoExt(src, ip, 18, len(dst)); err != nil {
					return op, &lzoDecodeError{off: ip, err: err}
				}
			}
			if ip+t > len(src) {
				return op, &lzoDecodeError{off: ip, err: errLZOInputOverrun}
			}
			if op+t > len(dst) {
				return op, &lzoDecodeError{off: ip, err: errLZOOutputOverrun}
			}
			op += copy(dst[op:], src[ip:ip+t])
			ip += t
			state = 4
			continue

		default: // M1: 2 bytes after 1..3 literals, 3 bytes after 4 or more
			if ip >= len(src) {
				return op, &lzoDecodeError{off: ip, err: errLZOInputOverrun}
			}
			dist = int(src[ip])<<2 + inst>>2 + 1
			ip++
			mlen = 2
			if state == 4 {
				dist += 2048
				mlen = 3
			}
			lits = inst & 3
		}

		// Copy the match.
		if dist > op {
			return op, &lzoDecodeError{off: ip, err: errLZOLookbehind}
		}
		if op+mlen > len(dst) {
			return op, &lzoDecodeError{off: ip, err: errLZOOutputOverrun}
		}
		m := op - dist
		switch {
		case dist >= 8 && op+mlen+8 <= len(dst):
			// Whole words; may write up to 7 bytes past the match, which
			// later output overwrites (or the caller ignores).
			for i := 0; i < mlen; i += 8 {
				binary.LittleEndian.PutUint64(dst[op+i:op+i+8], binary.LittleEndian.Uint64(dst[m+i:m+i+8]))
			}
		default:
			// Overlapping copy (a run) or near the end of dst: bytewise.
			for i := range mlen {
				dst[op+i] = dst[m+i]
			}
		}
		op += mlen

		// Then 0..3 literals, copied as one word when there is room.
		if ip+4 <= len(src) && op+4 <= len(dst) {
			binary.LittleEndian.PutUint32(dst[op:op+4], binary.LittleEndian.Uint32(src[ip:ip+4]))
		} else {
			if ip+lits > len(src) {
				return op, &lzoDecodeError{off: ip, err: errLZOInputOverrun}
			}
			if op+lits > len(dst) {
				return op, &lzoDecodeError{off: ip, err: errLZOOutputOverrun}
			}
			copy(dst[op:op+lits], src[ip:ip+lits])
		}
		op += lits
		ip += lits
		state = lits
	}
}

// lzoExt reads a length extension at src[ip:]: zero bytes worth 255 each,
// then a non-zero byte. It returns base plus their value and the new ip.
// It fails when the input ends inside the extension, or when the length
// exceeds limit (the output size: no stream that fits can have it).
func lzoExt(src []byte, ip, base, limit int) (n, next int, err error) {
	n = base
	for ip < len(src) && src[ip] == 0 {
		n += 255
		ip++
		if n > limit {
			return 0, ip, errLZOLengthOverflow
		}
	}
	if ip >= len(src) {
		return 0, ip, errLZOInputOverrun
	}
	n += int(src[ip])
	return n, ip + 1, nil
}
