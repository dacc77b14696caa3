package nfcap

import (
	"github.com/klauspost/compress/zstd"
)

// zstdDecoder decodes blocks of files written by nfdump 1.7.3 and later,
// where each block is one zstd frame.
type zstdDecoder struct {
	d *zstd.Decoder
}

func newZstdDecoder() (*zstdDecoder, error) {
	d, err := zstd.NewReader(nil,
		zstd.WithDecoderConcurrency(1),
		zstd.WithDecoderMaxMemory(MaxBlockSize),
		zstd.WithDecoderMaxWindow(MaxBlockSize))
	if err != nil {
		return nil, err
	}
	return &zstdDecoder{d: d}, nil
}

func (z *zstdDecoder) decompress(dst, src []byte) ([]byte, error) {
	if cap(dst) < 64<<10 {
		dst = make([]byte, 0, min(MaxBlockSize, max(64<<10, 8*len(src))))
	}
	out, err := z.d.DecodeAll(src, dst[:0])
	if err != nil {
		return nil, err
	}
	if len(out) > MaxBlockSize {
		return nil, errf(ErrTooLarge, "zstd: plain payload over %d bytes", MaxBlockSize)
	}
	return out, nil
}

func (z *zstdDecoder) close() { z.d.Close() }
