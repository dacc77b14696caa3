package nfcap

import (
	"errors"
	"fmt"
	"strings"
)

// Sentinel errors. Every error returned by this package for bad input wraps
// one of them, so callers can test with errors.Is.
var (
	// ErrBadMagic means the file does not start with the nfdump magic 0xA50C.
	ErrBadMagic = errors.New("not an nfdump file (bad magic)")
	// ErrLegacyLayout means the file is an nfdump 1.6 (layout 1) file.
	// The reader's error adds the command that converts the file.
	ErrLegacyLayout = errors.New("nfdump 1.6 file (layout 1) is not supported")
	// ErrUnsupportedLayout means the layout version is neither 1 nor 2.
	ErrUnsupportedLayout = errors.New("unsupported nfdump layout version")
	// ErrEncrypted means the header announces encryption, which nfdump never implemented.
	ErrEncrypted = errors.New("encrypted nfdump files are not supported")
	// ErrUnsupportedCompression means the compression byte names no known algorithm.
	ErrUnsupportedCompression = errors.New("unsupported compression")
	// ErrTruncated means the file ends before a structure it announces.
	ErrTruncated = errors.New("truncated")
	// ErrCorrupt means a length, count or offset in the file contradicts the data.
	ErrCorrupt = errors.New("corrupt")
	// ErrTooLarge means a block or record exceeds the limits nfdump itself enforces.
	ErrTooLarge = errors.New("exceeds size limit")
	// ErrDecompress means a block could not be decompressed.
	ErrDecompress = errors.New("decompression failed")
)

// FormatError reports where in a file bad input was found.
//
// Block is the 0-based data block index, BlockAppendix for the appendix, or
// BlockNone when the error is in the file header. Offset is the byte offset
// in the file of the block header (or of the field, for header errors);
// RecordOffset, when not negative, is the byte offset of the record inside
// the block's uncompressed payload.
type FormatError struct {
	File         string
	Block        int
	Offset       int64
	RecordOffset int
	Err          error
}

// Block indexes with a special meaning in FormatError.
const (
	BlockNone     = -1
	BlockAppendix = -2
)

func (e *FormatError) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
		b.WriteString(": ")
	}
	switch e.Block {
	case BlockNone:
		fmt.Fprintf(&b, "file header at offset %d: ", e.Offset)
	case BlockAppendix:
		fmt.Fprintf(&b, "appendix block at offset %d: ", e.Offset)
	default:
		fmt.Fprintf(&b, "block %d at offset %d: ", e.Block, e.Offset)
	}
	if e.RecordOffset >= 0 {
		fmt.Fprintf(&b, "record at payload offset %d: ", e.RecordOffset)
	}
	b.WriteString(e.Err.Error())
	return b.String()
}

func (e *FormatError) Unwrap() error { return e.Err }

// errf builds an error that wraps sentinel with a formatted explanation.
// legacyLayoutError is ErrLegacyLayout with the nfdump command that
// converts the file named name (in place) to the current layout.
func legacyLayoutError(name string) error {
	if name == "" {
		return fmt.Errorf("%w; convert it with: nfdump -r OLD -w NEW", ErrLegacyLayout)
	}
	q, tmp := shellQuote(name), shellQuote(name+".layout2")
	return fmt.Errorf("%w; convert it with: nfdump -r %s -w %s && mv %s %s", ErrLegacyLayout, q, tmp, tmp, q)
}

// shellQuote quotes s for a POSIX shell when it holds anything but
// letters, digits and -_./:+,=@%.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./:+,=@%") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

func errf(sentinel error, format string, args ...any) error {
	return fmt.Errorf("%s: %w", fmt.Sprintf(format, args...), sentinel)
}
