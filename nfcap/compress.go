package nfcap

import (
	"errors"
	"fmt"
	"strings"
)

// Compression is the algorithm applied to every block of a file. The values
// are the ones stored in byte 16 of the file header.
type Compression uint8

// Compression algorithms. nfdump 1.7.1 knows None, LZO, BZ2 and LZ4; ZSTD
// was added in nfdump 1.7.3.
const (
	CompressNone Compression = 0
	CompressLZO  Compression = 1
	CompressBZ2  Compression = 2
	CompressLZ4  Compression = 3
	CompressZSTD Compression = 4
)

var compressionNames = [...]string{"none", "lzo", "bz2", "lz4", "zstd"}

// String returns the lower-case name of the algorithm ("none", "lzo", ...).
func (c Compression) String() string {
	if int(c) < len(compressionNames) {
		return compressionNames[c]
	}
	return fmt.Sprintf("compression(%d)", uint8(c))
}

// Valid reports whether c names an algorithm this package supports.
func (c Compression) Valid() bool { return int(c) < len(compressionNames) }

// ParseCompression parses a compression name as printed by String. It also
// accepts nfdump's -J numbers ("0".."3") and "4" for zstd.
func ParseCompression(s string) (Compression, error) {
	s = strings.ToLower(strings.TrimSpace(s))
	for i, n := range compressionNames {
		if s == n || s == fmt.Sprint(i) {
			return Compression(i), nil
		}
	}
	switch s {
	case "bzip2":
		return CompressBZ2, nil
	case "zst":
		return CompressZSTD, nil
	}
	return 0, fmt.Errorf("unknown compression %q (want none, lzo, bz2, lz4 or zstd): %w", s, ErrUnsupportedCompression)
}

// decompressor turns stored block payloads into plain payloads. It is not
// safe for concurrent use; each goroutine gets its own.
type decompressor struct {
	c    Compression
	zstd *zstdDecoder
	bz2  bz2Decoder
}

func newDecompressor(c Compression) (*decompressor, error) {
	if !c.Valid() {
		return nil, fmt.Errorf("%w: %d", ErrUnsupportedCompression, uint8(c))
	}
	return &decompressor{c: c}, nil
}

// decompress decodes src into dst[:0] (growing it up to MaxBlockSize) and
// returns the plain payload. For CompressNone it returns src itself.
func (d *decompressor) decompress(dst, src []byte) ([]byte, error) {
	var out []byte
	var err error
	switch d.c {
	case CompressNone:
		return src, nil
	case CompressLZO:
		out, err = lzoDecompress(dst, src)
	case CompressLZ4:
		out, err = lz4Decompress(dst, src)
	case CompressBZ2:
		out, err = d.bz2.decompress(dst, src)
	case CompressZSTD:
		if d.zstd == nil {
			d.zstd, err = newZstdDecoder()
			if err != nil {
				return nil, err
			}
		}
		out, err = d.zstd.decompress(dst, src)
	default:
		return nil, fmt.Errorf("%w: %d", ErrUnsupportedCompression, uint8(d.c))
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w: %w", d.c, ErrDecompress, err)
	}
	return out, nil
}

func (d *decompressor) close() {
	if d.zstd != nil {
		d.zstd.close()
	}
}

// errShortBuffer is returned by a codec step when dst was too small; the
// caller retries with a larger buffer, up to MaxBlockSize.
var errShortBuffer = errors.New("output buffer too small")

// growDecode runs decode with dst at its full capacity, first sized from a
// guess at the plain size (8x the stored size, at least 64 KiB), and retries
// with a doubled buffer while decode reports errShortBuffer. Buffers are
// reused between blocks, so steady-state decoding allocates nothing.
func growDecode(dst, src []byte, decode func(dst, src []byte) (int, error)) ([]byte, error) {
	want := min(MaxBlockSize, max(64<<10, 8*len(src)))
	if cap(dst) < want {
		dst = make([]byte, want)
	}
	dst = dst[:cap(dst)]
	for {
		n, err := decode(dst, src)
		if err == nil {
			return dst[:n], nil
		}
		if !errors.Is(err, errShortBuffer) {
			return nil, err
		}
		if len(dst) >= MaxBlockSize {
			return nil, errf(ErrTooLarge, "plain payload over %d bytes", MaxBlockSize)
		}
		dst = make([]byte, min(MaxBlockSize, 2*len(dst)))
	}
}
