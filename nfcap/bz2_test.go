package nfcap

import (
	"bytes"
	"compress/bzip2"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	dbzip2 "github.com/dsnet/compress/bzip2"
)

// bz2Encode compresses p as nfdump does (one bzip2 stream, level 9).
func bz2Encode(t testing.TB, p []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw, err := dbzip2.NewWriter(&buf, &dbzip2.WriterConfig{Level: 9})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := zw.Write(p); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestBZ2DecoderReuse decodes different streams with one decoder, in
// turns, and wants each back exactly: a reset reader keeps no state from
// the stream before.
func TestBZ2DecoderReuse(t *testing.T) {
	var plains [][]byte
	for _, p := range lzoRealPayloads(t) {
		plains = append(plains, p)
	}
	plains = append(plains, bytes.Repeat([]byte("abc"), 400_000), []byte("x"), make([]byte, 1<<20))
	var streams [][]byte
	for _, p := range plains {
		streams = append(streams, bz2Encode(t, p))
	}
	var d bz2Decoder
	var buf []byte
	for round := range 2 {
		for i, s := range streams {
			out, err := d.decompress(buf, s)
			if err != nil {
				t.Fatalf("round %d stream %d: %v", round, i, err)
			}
			if !bytes.Equal(out, plains[i]) {
				t.Fatalf("round %d stream %d: %d bytes back, want %d", round, i, len(out), len(plains[i]))
			}
			buf = out
		}
	}
	// A stream that expands past MaxBlockSize is ErrTooLarge, and the
	// decoder still works afterwards.
	if _, err := d.decompress(nil, bz2Encode(t, make([]byte, MaxBlockSize+1))); !errors.Is(err, ErrTooLarge) {
		t.Errorf("oversized payload: got %v, want ErrTooLarge", err)
	}
	if out, err := d.decompress(nil, streams[0]); err != nil || !bytes.Equal(out, plains[0]) {
		t.Errorf("after an oversized payload: %v", err)
	}
}

// FuzzBZ2Decompress feeds arbitrary bytes to the BZ2 decoder (a reused
// dsnet/compress reader) and to the standard library's: no panic, and
// whenever both decode, the same bytes. Seeds are real nfdump blocks.
func FuzzBZ2Decompress(f *testing.F) {
	name := filepath.Join(lzoFixtureDir(f), "v9-alluser.bz2.nf")
	_, blocks, _ := lzoFileBlocks(f, name)
	raw, err := os.ReadFile(name)
	if err != nil {
		f.Fatal(err)
	}
	for _, b := range blocks {
		off := int(b.Offset) + BlockHeaderSize
		f.Add(raw[off : off+int(b.Header.Size)])
	}
	f.Add([]byte("BZh9"))
	var d bz2Decoder
	f.Fuzz(func(t *testing.T, src []byte) {
		if len(src) > 16<<10 {
			return // the seeds are about 6 KiB; bigger inputs only slow the search
		}
		got, err := d.decompress(nil, src)
		want, werr := io.ReadAll(io.LimitReader(bzip2.NewReader(bytes.NewReader(src)), MaxBlockSize+1))
		if err != nil || werr != nil || len(want) > MaxBlockSize {
			return
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("decoded %d bytes, the standard library %d", len(got), len(want))
		}
	})
}

// TestBZ2TrailerChecked: a stream whose trailer (end marker and stream
// checksum) is cut off is refused, also when its payload is exactly the
// 5 MiB limit, where the decoder stops reading to look for more.
func TestBZ2TrailerChecked(t *testing.T) {
	for _, size := range []int{MaxBlockSize - 1, MaxBlockSize} {
		plain := bytes.Repeat([]byte("nd-bz2-trailer "), size/15+1)[:size]
		stored := bz2Encode(t, plain)
		var d bz2Decoder
		got, err := d.decompress(nil, stored)
		if err != nil || !bytes.Equal(got, plain) {
			t.Fatalf("%d bytes: whole stream: %v", size, err)
		}
		if _, err := d.decompress(nil, stored[:len(stored)-4]); err == nil {
			t.Errorf("%d bytes: a stream without its checksum was accepted", size)
		}
	}
}
