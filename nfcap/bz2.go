package nfcap

import (
	"bytes"
	"compress/bzip2"
	"io"
)

// bz2Decompress decodes one complete bzip2 stream. Output beyond
// MaxBlockSize is an error, which also bounds decompression bombs.
func bz2Decompress(dst, src []byte) ([]byte, error) {
	zr := bzip2.NewReader(bytes.NewReader(src))
	want := min(MaxBlockSize, max(64<<10, 8*len(src)))
	if cap(dst) < want {
		dst = make([]byte, 0, want)
	}
	dst = dst[:0]
	for {
		if len(dst) == cap(dst) {
			if len(dst) >= MaxBlockSize {
				var one [1]byte
				if n, _ := zr.Read(one[:]); n > 0 {
					return nil, errf(ErrTooLarge, "bz2: plain payload over %d bytes", MaxBlockSize)
				}
				return dst, nil
			}
			grown := make([]byte, len(dst), min(MaxBlockSize, 2*cap(dst)))
			copy(grown, dst)
			dst = grown
		}
		n, err := zr.Read(dst[len(dst):cap(dst)])
		dst = dst[:len(dst)+n]
		if err == io.EOF {
			return dst, nil
		}
		if err != nil {
			return nil, err
		}
	}
}
