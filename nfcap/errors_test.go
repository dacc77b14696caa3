package nfcap_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/netdumper/netdumper/internal/fixtures"
	"github.com/netdumper/netdumper/nfcap"
)

func loadFixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(fixtures.Dir(t), name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestBadInput mutates real files and checks that every kind of damage is
// reported with the right sentinel and position, without panicking.
func TestBadInput(t *testing.T) {
	none := loadFixture(t, "v9-mixed.none.nf") // one data block, uncompressed
	lz4 := loadFixture(t, "v9-mixed.lz4.nf")
	le := binary.LittleEndian
	offApp := int(le.Uint64(none[24:]))
	blockSize := int(le.Uint32(none[44:]))
	firstRec := 40 + 12 // first record of block 0 (an exporter record)
	// Offset of the first V3 record: skip the exporter record.
	firstV3 := firstRec + int(le.Uint16(none[firstRec+2:]))

	// Offset of the last record of block 0.
	lastRec := firstRec
	for n := le.Uint32(none[40:]); n > 1; n-- {
		lastRec += int(le.Uint16(none[lastRec+2:]))
	}
	mut := func(src []byte, f func(b []byte) []byte) []byte { return f(bytes.Clone(src)) }
	noAppendix := func(b []byte) []byte { le.PutUint16(b[18:], 0); return b }

	tests := []struct {
		name      string
		data      []byte
		want      error
		contains  []string
		wantFlows int // flows that must be decoded before the error (-1: don't check); as nfdump, the whole records before a framing fault are read
	}{
		{"bad magic", mut(none, func(b []byte) []byte { b[0] = 0; return b }), nfcap.ErrBadMagic, []string{"file header at offset 0", "magic"}, 0},
		{"big-endian magic", mut(none, func(b []byte) []byte { b[0], b[1] = 0xa5, 0x0c; return b }), nfcap.ErrBadMagic, []string{"big-endian"}, 0},
		{"layout 3", mut(none, func(b []byte) []byte { b[2] = 3; return b }), nfcap.ErrUnsupportedLayout, []string{"layout version 3"}, 0},
		{"layout 1", mut(none, func(b []byte) []byte { b[2] = 1; return b }), nfcap.ErrLegacyLayout, []string{"nfdump -r bad.nf -w bad.nf.layout2 && mv bad.nf.layout2 bad.nf"}, 0},
		{"two bytes", none[:2], nfcap.ErrTruncated, []string{"too short"}, 0},
		{"truncated header", none[:20], nfcap.ErrTruncated, []string{"shorter than the 40-byte header"}, 0},
		{"encrypted", mut(none, func(b []byte) []byte { b[17] = 1; return b }), nfcap.ErrEncrypted, []string{"offset 17"}, 0},
		{"unknown compression", mut(none, func(b []byte) []byte { b[16] = 9; return b }), nfcap.ErrUnsupportedCompression, []string{"offset 16", "compression byte 9"}, 0},
		{"block count lies", mut(none, func(b []byte) []byte { le.PutUint32(b[36:], 1<<30); return b }), nfcap.ErrCorrupt, []string{"offset 36", "data blocks"}, 0},
		{"appendix offset past end", mut(none, func(b []byte) []byte { le.PutUint64(b[24:], 1<<40); return b }), nfcap.ErrCorrupt, []string{"offset 24", "appendix offset"}, 0},
		{"truncated file", mut(none, func(b []byte) []byte { return noAppendix(b)[:firstRec+100] }), nfcap.ErrTruncated, []string{"block 0 at offset 40", "past the end of the file"}, 0},
		{"no room for the blocks", mut(none, func(b []byte) []byte { return noAppendix(b)[:45] }), nfcap.ErrCorrupt, []string{"offset 36", "more than a 45-byte file can hold"}, 0},
		{"block size too big", mut(none, func(b []byte) []byte { le.PutUint32(b[44:], uint32(blockSize+100)); return b }), nfcap.ErrCorrupt, []string{"block 0", "runs into the appendix"}, 0},
		{"block size too small", mut(none, func(b []byte) []byte { le.PutUint32(b[44:], uint32(blockSize-100)); return b }), nfcap.ErrCorrupt, []string{"block 0", "runs past the end of the block"}, 1499},
		{"block size zero", mut(none, func(b []byte) []byte { le.PutUint32(b[44:], 0); return b }), nfcap.ErrCorrupt, []string{"block size is 0"}, 0},
		{"block over 5 MiB", mut(none, func(b []byte) []byte { le.PutUint32(b[44:], 6<<20); return b }), nfcap.ErrTooLarge, []string{"block 0", "limit"}, 0},
		{"zero records", mut(none, func(b []byte) []byte { le.PutUint32(b[40:], 0); return b }), nfcap.ErrCorrupt, []string{"0 records"}, 0},
		{"record count too high", mut(none, func(b []byte) []byte { le.PutUint32(b[40:], le.Uint32(b[40:])+1); return b }), nfcap.ErrCorrupt, []string{"block 0", "header runs past the end of the block"}, 1500},
		// Bytes after a block's last record are ignored, as nfdump ignores them.
		{"record count too low", mut(none, func(b []byte) []byte { le.PutUint32(b[40:], le.Uint32(b[40:])-1); return b }), nil, nil, 1500},
		{"zero-length record", mut(none, func(b []byte) []byte { le.PutUint16(b[firstRec+2:], 0); return b }), nfcap.ErrCorrupt, []string{"record at payload offset 0", "below 4"}, 0},
		{"record past block", mut(none, func(b []byte) []byte { le.PutUint16(b[lastRec+2:], 1000); return b }), nfcap.ErrCorrupt, []string{"runs past the end of the block"}, 1500},
		{"element past record", mut(none, func(b []byte) []byte { le.PutUint16(b[firstV3+12+2:], 4000); return b }), nfcap.ErrCorrupt, []string{"block 0 at offset 40", "record at payload offset", "runs past the record end"}, 0},
		{"element shorter than its fields", mut(none, func(b []byte) []byte {
			// Turn the first element into a 4-byte one and pad the rest into an
			// unknown element so the walk stays consistent.
			l := int(le.Uint16(b[firstV3+12+2:]))
			id := le.Uint16(b[firstV3+12:])
			if id == 0 || l < 12 {
				panic("unexpected first element")
			}
			le.PutUint16(b[firstV3+12+2:], 4)
			le.PutUint16(b[firstV3+12+4:], 60)
			le.PutUint16(b[firstV3+12+6:], uint16(l-4))
			le.PutUint16(b[firstV3+4:], le.Uint16(b[firstV3+4:])+1)
			return b
		}), nfcap.ErrCorrupt, []string{"below the"}, 0},
		{"element count too high", mut(none, func(b []byte) []byte { le.PutUint16(b[firstV3+4:], 40); return b }), nfcap.ErrCorrupt, []string{"header runs past the record end"}, 0},
		{"gap before appendix", mut(none, func(b []byte) []byte {
			out := append(append(bytes.Clone(b[:offApp]), make([]byte, 16)...), b[offApp:]...)
			le.PutUint64(out[24:], uint64(offApp+16))
			return out
		}), nfcap.ErrCorrupt, []string{"end at offset", "appendix starts at"}, 1500},
		{"lz4 payload damaged", mut(lz4, func(b []byte) []byte {
			for i := 60; i < 400; i += 7 {
				b[i] ^= 0x5a
			}
			return b
		}), nil, []string{"block 0 at offset 40"}, 0},
		{"garbage after appendix", append(bytes.Clone(none), bytes.Repeat([]byte{0xff}, 386)...), nil, nil, 1500},
		{"appendix damaged", mut(none, func(b []byte) []byte { le.PutUint16(b[offApp+12+2:], 2); return b }), nfcap.ErrCorrupt, []string{"appendix block at offset"}, 0},
		// Compressed, such an appendix is a few hundred bytes on disk; kept,
		// a few blocks of it would cost every reader gigabytes.
		{"appendix of many records", mut(none, func(b []byte) []byte {
			const n = 64<<10/4 + 1 // 4-byte records of an unknown type
			blk := make([]byte, 12+4*n)
			le.PutUint32(blk[0:], n)
			le.PutUint32(blk[4:], 4*n)
			le.PutUint16(blk[8:], 3)
			for i := 12; i < len(blk); i += 4 {
				le.PutUint16(blk[i+2:], 4)
			}
			return append(b[:offApp], blk...)
		}), nfcap.ErrTooLarge, []string{"appendix block at offset", "appendix records exceed 65536 bytes"}, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			n, err := readAll(tc.data, nfcap.ReaderOptions{Name: "bad.nf"})
			if tc.want == nil && tc.contains == nil {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
			} else {
				if err == nil {
					t.Fatalf("no error, read %d flows", n)
				}
				if tc.want != nil && !errors.Is(err, tc.want) {
					t.Errorf("error %q does not wrap %v", err, tc.want)
				}
				if tc.want == nil && !errors.Is(err, nfcap.ErrDecompress) && !errors.Is(err, nfcap.ErrCorrupt) {
					t.Errorf("error %q wraps neither ErrDecompress nor ErrCorrupt", err)
				}
				var fe *nfcap.FormatError
				if !errors.As(err, &fe) || fe.File != "bad.nf" {
					t.Errorf("error %q is not a *FormatError naming the file", err)
				}
				for _, s := range append([]string{"bad.nf: "}, tc.contains...) {
					if !strings.Contains(err.Error(), s) {
						t.Errorf("error %q does not contain %q", err, s)
					}
				}
			}
			if tc.wantFlows >= 0 && n != tc.wantFlows {
				t.Errorf("decoded %d flows before stopping, want %d", n, tc.wantFlows)
			}
		})
	}
}
