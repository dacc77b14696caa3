package nfcap

import (
	"errors"

	"github.com/pierrec/lz4/v4"
)

// lz4Decompress decodes one raw LZ4 block (no frame, no size prefix).
func lz4Decompress(dst, src []byte) ([]byte, error) {
	return growDecode(dst, src, func(dst, src []byte) (int, error) {
		n, err := lz4.UncompressBlock(src, dst)
		if errors.Is(err, lz4.ErrInvalidSourceShortBuffer) {
			if len(dst) < MaxBlockSize {
				// The library reports a too-small dst this way too; a
				// larger buffer tells the two cases apart.
				return 0, errShortBuffer
			}
			// At the limit, the sequences say which it is: a block that
			// would expand past it, or a damaged one.
			if size, ok := lz4PlainSize(src); ok && size > MaxBlockSize {
				return 0, errf(ErrTooLarge, "lz4: plain payload of %d bytes, over %d", size, MaxBlockSize)
			}
		}
		return n, err
	})
}

// lz4PlainSize returns the size an LZ4 block decodes to, from the lengths
// in its sequences (nothing is decoded), and whether the sequences are
// well formed as far as lengths go: each one's literals within src, and
// each but the last followed by an offset. Offsets are not checked.
func lz4PlainSize(src []byte) (int, bool) {
	// readLen adds the extension bytes of a length whose nibble was 15.
	readLen := func(i, n int) (int, int, bool) {
		for {
			if i >= len(src) {
				return i, n, false
			}
			b := src[i]
			i++
			n += int(b)
			if b != 255 {
				return i, n, true
			}
		}
	}
	size, i := 0, 0
	for i < len(src) {
		tok := src[i]
		i++
		lit := int(tok >> 4)
		ok := true
		if lit == 15 {
			if i, lit, ok = readLen(i, lit); !ok {
				return size, false
			}
		}
		if lit > len(src)-i {
			return size, false
		}
		i += lit
		size += lit
		if i == len(src) {
			return size, true // the last sequence has literals only
		}
		if len(src)-i < 2 {
			return size, false
		}
		i += 2 // the offset
		ml := int(tok&15) + 4
		if tok&15 == 15 {
			if i, ml, ok = readLen(i, ml); !ok {
				return size, false
			}
		}
		size += ml
	}
	// Ended after a match: the format wants a last sequence of literals
	// only, but decoders (pierrec/lz4 among them) accept this too.
	return size, len(src) > 0
}
