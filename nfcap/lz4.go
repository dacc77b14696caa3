package nfcap

import (
	"github.com/pierrec/lz4/v4"
)

// lz4Decompress decodes one raw LZ4 block (no frame, no size prefix).
func lz4Decompress(dst, src []byte) ([]byte, error) {
	dst = blockBuffer(dst)
	n, err := lz4.UncompressBlock(src, dst)
	if err != nil {
		return nil, err
	}
	return dst[:n], nil
}
