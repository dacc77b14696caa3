package nfcap

import (
	"bytes"
	"compress/bzip2"
	"io"
)

// bz2Decompress decodes one complete bzip2 stream. Output beyond
// MaxBlockSize is an error, which also bounds decompression bombs.
func bz2Decompress(dst, src []byte) ([]byte, error) {
	dst = blockBuffer(dst)
	zr := bzip2.NewReader(bytes.NewReader(src))
	n, err := io.ReadFull(zr, dst)
	switch err {
	case io.EOF, io.ErrUnexpectedEOF:
		return dst[:n], nil
	case nil:
		// The buffer is full: the stream must end here.
		var one [1]byte
		if m, _ := zr.Read(one[:]); m > 0 {
			return nil, errf(ErrTooLarge, "bz2: plain payload over %d bytes", MaxBlockSize)
		}
		return dst[:n], nil
	default:
		return nil, err
	}
}
