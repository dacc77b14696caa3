package nfcap

import (
	"bytes"
	"fmt"

	dbzip2 "github.com/dsnet/compress/bzip2"
	"github.com/klauspost/compress/zstd"
)

// compressor turns plain block payloads into stored payloads. It keeps
// per-goroutine state (hash tables, encoders); each worker has its own.
type compressor struct {
	c    Compression
	lz4  *lz4State
	lzo  *lzoState
	zstd *zstd.Encoder
	bz   *dbzip2.Writer
	bbuf bytes.Buffer
}

func newCompressor(c Compression) (*compressor, error) {
	if !c.Valid() {
		return nil, fmt.Errorf("%w: %d", ErrUnsupportedCompression, uint8(c))
	}
	return &compressor{c: c}, nil
}

// compress returns the stored form of src, using dst's storage when it is
// large enough. For CompressNone it returns src.
func (z *compressor) compress(dst, src []byte) ([]byte, error) {
	switch z.c {
	case CompressNone:
		return src, nil
	case CompressLZ4:
		if z.lz4 == nil {
			z.lz4 = new(lz4State)
		}
		return lz4Compress(dst[:0], src, z.lz4), nil
	case CompressLZO:
		if z.lzo == nil {
			z.lzo = new(lzoState)
		}
		return lzoCompress(dst[:0], src, z.lzo), nil
	case CompressBZ2:
		z.bbuf.Reset()
		var err error
		if z.bz == nil {
			z.bz, err = dbzip2.NewWriter(&z.bbuf, &dbzip2.WriterConfig{Level: 9})
		} else {
			err = z.bz.Reset(&z.bbuf)
		}
		if err != nil {
			return nil, fmt.Errorf("bz2: %w", err)
		}
		if _, err := z.bz.Write(src); err != nil {
			return nil, fmt.Errorf("bz2: %w", err)
		}
		if err := z.bz.Close(); err != nil {
			return nil, fmt.Errorf("bz2: %w", err)
		}
		return append(dst[:0], z.bbuf.Bytes()...), nil
	case CompressZSTD:
		if z.zstd == nil {
			enc, err := zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1), zstd.WithEncoderCRC(false))
			if err != nil {
				return nil, fmt.Errorf("zstd: %w", err)
			}
			z.zstd = enc
		}
		return z.zstd.EncodeAll(src, dst[:0]), nil
	}
	return nil, fmt.Errorf("%w: %d", ErrUnsupportedCompression, uint8(z.c))
}

func (z *compressor) close() {
	if z.zstd != nil {
		z.zstd.Close()
	}
}
