package nfcap

import (
	"errors"

	"github.com/pierrec/lz4/v4"
)

// lz4Decompress decodes one raw LZ4 block (no frame, no size prefix).
func lz4Decompress(dst, src []byte) ([]byte, error) {
	return growDecode(dst, src, func(dst, src []byte) (int, error) {
		n, err := lz4.UncompressBlock(src, dst)
		if errors.Is(err, lz4.ErrInvalidSourceShortBuffer) && len(dst) < MaxBlockSize {
			// The library reports a too-small dst this way too; a larger
			// buffer tells the two cases apart.
			return 0, errShortBuffer
		}
		return n, err
	})
}
