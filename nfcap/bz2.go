package nfcap

import (
	"bytes"
	"io"

	dbzip2 "github.com/dsnet/compress/bzip2"
)

// bz2Decoder decodes bzip2 block payloads, reusing one reader: a fresh
// reader per block allocated its 3.6 MiB BWT array every time (with the
// standard library's compress/bzip2), 400 MB of garbage per million flows,
// and the collector's work slowed BZ2 rewrites by about 10 %.
type bz2Decoder struct {
	src bytes.Reader
	zr  *dbzip2.Reader
}

// decompress decodes one complete bzip2 stream into dst[:0]. Output beyond
// MaxBlockSize is an error, which also bounds decompression bombs.
func (d *bz2Decoder) decompress(dst, src []byte) ([]byte, error) {
	d.src.Reset(src)
	if d.zr == nil {
		zr, err := dbzip2.NewReader(&d.src, nil)
		if err != nil {
			return nil, err
		}
		d.zr = zr
	} else if err := d.zr.Reset(&d.src); err != nil {
		return nil, err
	}
	want := min(MaxBlockSize, max(64<<10, 8*len(src)))
	if cap(dst) < want {
		dst = make([]byte, 0, want)
	}
	dst = dst[:0]
	for {
		if len(dst) == cap(dst) {
			if len(dst) >= MaxBlockSize {
				// Full: one more byte means too large, and reading to
				// the end checks the stream's trailer and checksum, as
				// for any other size.
				var one [1]byte
				switch n, err := io.ReadFull(d.zr, one[:]); {
				case n > 0:
					return nil, errf(ErrTooLarge, "bz2: plain payload over %d bytes", MaxBlockSize)
				case err != io.EOF:
					return nil, err
				}
				return dst, nil
			}
			grown := make([]byte, len(dst), min(MaxBlockSize, 2*cap(dst)))
			copy(grown, dst)
			dst = grown
		}
		n, err := d.zr.Read(dst[len(dst):cap(dst)])
		dst = dst[:len(dst)+n]
		if err == io.EOF {
			return dst, nil
		}
		if err != nil {
			return nil, err
		}
	}
}
