package nfcap

import (
	"errors"

	lzo "github.com/anchore/go-lzo"
)

// lzoDecompress decodes one raw LZO1X stream, as written by nfdump's
// lzo1x_1_compress, into dst.
func lzoDecompress(dst, src []byte) ([]byte, error) {
	return growDecode(dst, src, func(dst, src []byte) (int, error) {
		n, err := lzo.Decompress(src, dst)
		if errors.Is(err, lzo.ErrOutputOverrun) {
			return 0, errShortBuffer
		}
		return n, err
	})
}
