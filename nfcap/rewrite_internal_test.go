package nfcap

import (
	"bytes"
	"context"
	"encoding/binary"
	"runtime"
	"testing"
)

type discardWriterAt struct{}

func (discardWriterAt) WriteAt(p []byte, _ int64) (int, error) { return len(p), nil }

// TestRewriteTinyRecordsMemory: a block of records too small to be flows
// must not make the rewrite reserve a username's 72 bytes for each (a
// 5 MiB block of 4-byte records reserved 99 MB).
func TestRewriteTinyRecordsMemory(t *testing.T) {
	plain := make([]byte, MaxBlockSize)
	for i := 0; i < len(plain); i += 4 {
		binary.LittleEndian.PutUint16(plain[i:], 0x7fff) // an unknown record type
		binary.LittleEndian.PutUint16(plain[i+2:], 4)
	}
	h := Header{Magic: Magic, Version: LayoutVersion, Compression: CompressNone, NumBlocks: 1}
	file, err := h.AppendBinary(nil)
	if err != nil {
		t.Fatal(err)
	}
	file = BlockHeader{NumRecords: uint32(len(plain) / 4), Size: uint32(len(plain)), Type: BlockTypeData}.appendBinary(file)
	file = append(file, plain...)
	r, err := NewReader(bytes.NewReader(file), int64(len(file)), ReaderOptions{Name: "tiny.nf"})
	if err != nil {
		t.Fatal(err)
	}
	none := func(*Flow) (string, bool) { return "", false }
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	st, err := Rewrite(context.Background(), r, discardWriterAt{}, none, RewriteOptions{Workers: 2})
	runtime.ReadMemStats(&after)
	if err != nil || st.Records != int64(len(plain)/4) {
		t.Fatalf("rewrite: %v, %d records", err, st.Records)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 8*MaxBlockSize {
		t.Errorf("rewriting one 5 MiB block allocated %d MB, want at most %d", alloc>>20, 8*MaxBlockSize>>20)
	}
}

// TestShellQuote: the conversion command of a legacy file pastes into a
// shell whatever the file's name.
func TestShellQuote(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"/srv/flows/nfcapd.201701221623", "/srv/flows/nfcapd.201701221623"},
		{"my flows/x", "'my flows/x'"},
		{"it's", `'it'\''s'`},
		{"$(rm -rf ~)", "'$(rm -rf ~)'"},
		{"", "''"},
	} {
		if got := shellQuote(tc.in); got != tc.want {
			t.Errorf("shellQuote(%q) = %s, want %s", tc.in, got, tc.want)
		}
	}
}
