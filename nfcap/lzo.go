package nfcap

import (
	"errors"

	lzo "github.com/anchore/go-lzo"
)

// lzoDecompress decodes one raw LZO1X stream, as written by nfdump's
// lzo1x_1_compress, into dst.
func lzoDecompress(dst, src []byte) ([]byte, error) {
	dst = blockBuffer(dst)
	n, err := lzo.Decompress(src, dst)
	if err != nil {
		if errors.Is(err, lzo.ErrOutputOverrun) {
			return nil, errf(ErrTooLarge, "lzo: plain payload over %d bytes", MaxBlockSize)
		}
		return nil, err
	}
	return dst[:n], nil
}
