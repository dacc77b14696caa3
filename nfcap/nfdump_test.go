package nfcap_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/netdumper/netdumper/internal/fixtures"
	"github.com/netdumper/netdumper/nfcap"
)

// nfdump runs the real nfdump with TZ=UTC and returns stdout. Tests that
// need it skip when it is not installed (make test installs it).
func nfdump(t *testing.T, args ...string) string {
	t.Helper()
	bin, err := exec.LookPath("nfdump")
	if err != nil {
		t.Skip("nfdump not installed (make test installs it): compatibility check skipped")
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "TZ=UTC")
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("nfdump %s: %v\n%s%s", strings.Join(args, " "), err, out.String(), stderr.String())
	}
	return out.String()
}

// testLabel is a deterministic labelling with every case the writer has to
// handle: no label, a label longer than 65 bytes that must be cut on a
// UTF-8 boundary, a control character, and plain labels.
func testLabel(f *nfcap.Flow) (string, bool) {
	switch f.SrcPort % 5 {
	case 0:
		return "", false
	case 1:
		return strings.Repeat("é", 40), true // 80 bytes -> 32 runes, 64 bytes
	case 2:
		return "tab\there", true
	}
	return fmt.Sprintf("p%d-%d>%d", f.Proto, f.SrcPort, f.DstPort), true
}

// expectedUnames computes what `nfdump -o fmt:%uname` must print after a
// rewrite with label, from the input file and its own %uname column.
func expectedUnames(t *testing.T, path string, label nfcap.LabelFunc, overwrite bool, placeholder string) string {
	t.Helper()
	r, err := nfcap.OpenFile(path, nfcap.ReaderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var b strings.Builder
	for f, err := range r.Flows() {
		if err != nil {
			t.Fatal(err)
		}
		name, ok := label(f)
		switch {
		case f.Username != "" && (!overwrite || !ok):
			name = f.Username
		case ok:
			name = nfcap.CleanLabel(name)
		case placeholder != "":
			name = placeholder
		default:
			name = "<empty>"
		}
		if name == "" {
			name = "<empty>"
		}
		b.WriteString(name + "\n")
	}
	return b.String()
}

// TestRewriteAgainstNfdump rewrites every fixture into every compression
// nfdump 1.7.1 reads and checks the result with the real nfdump: the
// labels show in %uname, every other column and the CSV output are
// unchanged, nfdump -v finds no error, and nfdump -I gives the same totals.
func TestRewriteAgainstNfdump(t *testing.T) {
	comps := []nfcap.Compression{nfcap.CompressNone, nfcap.CompressLZO, nfcap.CompressLZ4, nfcap.CompressBZ2}
	names := map[nfcap.Compression]string{nfcap.CompressNone: "not compressed", nfcap.CompressLZO: "lzo compressed", nfcap.CompressLZ4: "lz4 compressed", nfcap.CompressBZ2: "bz2 compressed"}
	for _, in := range fixtures.NFFiles(t) {
		origLine := nfdump(t, "-q", "-r", in, "-o", "fmt:%line")
		origCSV := nfdump(t, "-q", "-r", in, "-o", "csv")
		origStat := statTotals(nfdump(t, "-I", "-r", in))
		for _, overwrite := range []bool{false, true} {
			want := expectedUnames(t, in, testLabel, overwrite, "")
			for _, c := range comps {
				name := fmt.Sprintf("%s/overwrite=%v/%s", filepath.Base(in), overwrite, c)
				t.Run(name, func(t *testing.T) {
					out := filepath.Join(t.TempDir(), "out.nf")
					rewriteTo(t, in, out, testLabel, nfcap.RewriteOptions{Recompress: true, Compression: c, Overwrite: overwrite})
					v := nfdump(t, "-v", out)
					if !strings.Contains(v, names[c]) || strings.Contains(strings.ToLower(v), "error") || strings.Contains(v, "orrupt") {
						t.Fatalf("nfdump -v:\n%s", v)
					}
					if got := nfdump(t, "-q", "-r", out, "-o", "fmt:%uname"); got != want {
						t.Fatalf("%%uname differs:\n%s", firstDiff(got, want))
					}
					if got := nfdump(t, "-q", "-r", out, "-o", "fmt:%line"); got != origLine {
						t.Fatalf("%%line differs:\n%s", firstDiff(got, origLine))
					}
					if got := nfdump(t, "-q", "-r", out, "-o", "csv"); got != origCSV {
						t.Fatalf("csv differs:\n%s", firstDiff(got, origCSV))
					}
					if got := statTotals(nfdump(t, "-I", "-r", out)); got != origStat {
						t.Fatalf("nfdump -I totals:\n got %s\nwant %s", got, origStat)
					}
				})
			}
		}
	}
}

// statTotals keeps the counter lines of nfdump -I (not the file name or
// the creation time).
func statTotals(s string) string {
	var keep []string
	for _, l := range strings.Split(s, "\n") {
		for _, p := range []string{"Flows", "Packets", "Bytes", "First", "Last", "Sequence", "Ident"} {
			if strings.HasPrefix(l, p) {
				keep = append(keep, l)
			}
		}
	}
	return strings.Join(keep, "\n")
}

func firstDiff(got, want string) string {
	g, w := strings.Split(got, "\n"), strings.Split(want, "\n")
	for i := 0; i < len(g) || i < len(w); i++ {
		var a, b string
		if i < len(g) {
			a = g[i]
		}
		if i < len(w) {
			b = w[i]
		}
		if a != b {
			return fmt.Sprintf("line %d:\n got  %q\n want %q", i+1, a, b)
		}
	}
	return "(no difference)"
}

func rewriteTo(t *testing.T, in, out string, label nfcap.LabelFunc, opts nfcap.RewriteOptions) nfcap.RewriteStats {
	t.Helper()
	r, err := nfcap.OpenFile(in, nfcap.ReaderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	f, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, err := nfcap.Rewrite(context.Background(), r, f, label, opts)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// TestFaultyRecordAsNfdump: a record whose size is damaged in the middle of
// a block ends the reading there, and the flows before it are read, as
// nfdump prints them; the error names the block and the record's offset.
// Both the synchronous and the read-ahead reader do so.
func TestFaultyRecordAsNfdump(t *testing.T) {
	for _, k := range []int{1, 700, 1400} { // the record whose size is zeroed
		path, off := fixtures.DamagedRecord(t, "v9-mixed.none.nf", k)
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		nfdump(t, "-V") // skips without nfdump
		// nfdump prints what it can read and exits 1.
		out, _ := exec.Command("nfdump", "-q", "-r", path, "-o", "fmt:%ts").Output()
		want := strings.Count(string(out), "\n")
		for _, ra := range []int{-1, 0} {
			n, err := readAll(b, nfcap.ReaderOptions{Name: "bad.nf", ReadAhead: ra})
			if n != want || !errors.Is(err, nfcap.ErrCorrupt) || !strings.Contains(err.Error(), fmt.Sprintf("record at payload offset %d", off)) {
				t.Errorf("record %d zeroed, read-ahead %d: %d flows, %v; nfdump prints %d", k, ra, n, err, want)
			}
		}
	}
}

// TestTrailingBytesAsNfdump: a block announcing fewer records than its
// payload holds is read up to its last announced record and the file goes
// on, as nfdump reads it; a rewrite, which would drop those bytes, refuses
// the file.
func TestTrailingBytesAsNfdump(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "nfcapd.202311150100")
	nfdump(t, "-r", filepath.Join(fixtures.Dir(t), "v9-multiblock.lzo.nf"), "-w", path) // uncompressed, several blocks
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	le := binary.LittleEndian
	if le.Uint32(b[36:]) < 2 {
		t.Fatalf("want a file of several blocks, got %d", le.Uint32(b[36:]))
	}
	le.PutUint32(b[nfcap.HeaderSize:], le.Uint32(b[nfcap.HeaderSize:])-1) // block 0
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	want := strings.Count(nfdump(t, "-q", "-r", path, "-o", "fmt:%ts"), "\n")
	for _, ra := range []int{-1, 0} {
		if n, err := readAll(b, nfcap.ReaderOptions{ReadAhead: ra}); n != want || err != nil {
			t.Errorf("read-ahead %d: %d flows, %v; nfdump prints %d and exits 0", ra, n, err, want)
		}
	}
	if _, err := nfcap.RewriteFile(context.Background(), path, func(*nfcap.Flow) (string, bool) { return "x", true }, nfcap.RewriteOptions{}); !errors.Is(err, nfcap.ErrCorrupt) {
		t.Errorf("rewrite of a block with bytes after its records: %v, want ErrCorrupt", err)
	}
}
