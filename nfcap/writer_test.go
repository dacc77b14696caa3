package nfcap_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/netdumper/netdumper/internal/fixtures"
	"github.com/netdumper/netdumper/nfcap"
)

// records reads every record of a file (copied), and the plain size of
// every data block.
func records(t *testing.T, path string) (recs [][]byte, blockSizes []int, r0 *nfcap.Reader) {
	t.Helper()
	r, err := nfcap.OpenFile(path, nfcap.ReaderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	for {
		b, err := r.NextBlock()
		if err != nil {
			if r.Err() != nil {
				t.Fatal(r.Err())
			}
			break
		}
		blockSizes = append(blockSizes, len(b.Data))
		off := 0
		for i := uint32(0); i < b.Header.NumRecords; i++ {
			size := int(binary.LittleEndian.Uint16(b.Data[off+2:]))
			recs = append(recs, bytes.Clone(b.Data[off:off+size]))
			off += size
		}
	}
	return recs, blockSizes, r
}

// withoutUser returns a V3 record's elements other than the username, and
// the username element data (nil if none).
func withoutUser(rec []byte) (rest []byte, user []byte) {
	le := binary.LittleEndian
	rest = append(rest, rec[4:4]...)
	rest = append(rest, rec[6:12]...) // header fields but size and count
	n := int(le.Uint16(rec[4:]))
	p := 12
	for i := 0; i < n; i++ {
		id, l := le.Uint16(rec[p:]), int(le.Uint16(rec[p+2:]))
		if id == nfcap.ElemNSELUser {
			user = rec[p+4 : p+l]
		} else {
			rest = append(rest, rec[p:p+l]...)
		}
		p += l
	}
	return rest, user
}

// TestRewritePassThrough checks that non-flow records pass byte for byte,
// flow records keep every element but the username, the appendix is copied
// verbatim, and no block holds more than 1 MiB.
func TestRewritePassThrough(t *testing.T) {
	for _, in := range fixtures.NFFiles(t) {
		t.Run(filepath.Base(in), func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "out.nf")
			var progress []int
			st := rewriteTo(t, in, out, func(f *nfcap.Flow) (string, bool) { return "relabelled", true }, nfcap.RewriteOptions{
				Overwrite: true,
				Progress:  func(done, total int) { progress = append(progress, done, total) },
			})
			if n := len(progress); n == 0 || progress[n-2] != progress[n-1] || progress[n-1] != st.Blocks {
				t.Errorf("progress calls %v, want the last one to be (%d, %d)", progress, st.Blocks, st.Blocks)
			}
			a, _, ra := records(t, in)
			b, sizes, rb := records(t, out)
			if len(a) != len(b) {
				t.Fatalf("%d records in, %d out", len(a), len(b))
			}
			for _, s := range sizes {
				if s > nfcap.WriteBlockSize {
					t.Errorf("block of %d plain bytes", s)
				}
			}
			for i := range a {
				ta := binary.LittleEndian.Uint16(a[i])
				if ta != nfcap.RecordTypeV3 {
					if !bytes.Equal(a[i], b[i]) {
						t.Fatalf("record %d (type %d) changed", i, ta)
					}
					continue
				}
				restA, _ := withoutUser(a[i])
				restB, user := withoutUser(b[i])
				if !bytes.Equal(restA, restB) {
					t.Fatalf("record %d: elements other than the username changed", i)
				}
				if len(user) != 68 || !bytes.HasPrefix(user, []byte("relabelled\x00")) || !bytes.Equal(user[10:], make([]byte, 58)) {
					t.Fatalf("record %d: username element %q", i, user)
				}
			}
			if st.Flows != st.Inserted+st.Replaced {
				t.Errorf("stats %v", st)
			}
			if !equalRecords(ra.Appendix().Records, rb.Appendix().Records) {
				t.Errorf("appendix changed")
			}
			if ha, hb := ra.Header(), rb.Header(); ha.Created != hb.Created || ha.NfdVersion != hb.NfdVersion || ha.Compression != hb.Compression {
				t.Errorf("header %+v -> %+v", ha, hb)
			}
		})
	}
}

func equalRecords(a, b [][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !bytes.Equal(a[i], b[i]) {
			return false
		}
	}
	return true
}

// TestRewritePolicy covers the username policies on a fixture with 377
// usernames, some of them empty elements (ICMP records from nfgen).
func TestRewritePolicy(t *testing.T) {
	in := filepath.Join(fixtures.Dir(t), "v9-mixed.none.nf")
	var orig []string
	var had, hadEmpty int64
	r, _ := nfcap.OpenFile(in, nfcap.ReaderOptions{})
	for f, err := range r.Flows() {
		if err != nil {
			t.Fatal(err)
		}
		orig = append(orig, f.Username)
		if f.HasUsername() {
			had++
			if f.Username == "" {
				hadEmpty++
			}
		}
	}
	r.Close()
	if had != 377 || hadEmpty != 0 {
		t.Fatalf("fixture has %d usernames (%d empty), want 377, none empty", had, hadEmpty)
	}
	total := int64(len(orig))
	odd := func(f *nfcap.Flow) (string, bool) { return "L", f.SrcPort%2 == 1 }
	tests := []struct {
		name  string
		label nfcap.LabelFunc
		opts  nfcap.RewriteOptions
		check func(t *testing.T, i int, was, now string, hasNow bool)
		kept  int64 // usernames counted as kept
	}{
		{"keep existing", func(*nfcap.Flow) (string, bool) { return "new", true }, nfcap.RewriteOptions{},
			func(t *testing.T, i int, was, now string, _ bool) {
				if want := map[bool]string{true: was, false: "new"}[was != ""]; now != want {
					t.Fatalf("flow %d: %q -> %q, want %q", i, was, now, want)
				}
			}, 377},
		{"overwrite", func(*nfcap.Flow) (string, bool) { return "new", true }, nfcap.RewriteOptions{Overwrite: true},
			func(t *testing.T, i int, was, now string, _ bool) {
				if now != "new" {
					t.Fatalf("flow %d: %q -> %q", i, was, now)
				}
			}, 0},
		{"no label keeps everything", func(*nfcap.Flow) (string, bool) { return "", false }, nfcap.RewriteOptions{Overwrite: true},
			func(t *testing.T, i int, was, now string, _ bool) {
				if now != was {
					t.Fatalf("flow %d: %q -> %q", i, was, now)
				}
			}, 377},
		{"placeholder", odd, nfcap.RewriteOptions{Placeholder: "unknown"},
			func(t *testing.T, i int, was, now string, hasNow bool) {
				if !hasNow || (was != "" && now != was) || (was == "" && now != "L" && now != "unknown") {
					t.Fatalf("flow %d: %q -> %q (element %v)", i, was, now, hasNow)
				}
			}, 377},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "out.nf")
			st := rewriteTo(t, in, out, tc.label, tc.opts)
			if st.Flows != total || st.Inserted+st.Replaced+st.Kept+st.Placeholder+st.Unlabelled+st.TooLarge != total {
				t.Errorf("stats do not add up to %d: %v", total, st)
			}
			if st.Kept != tc.kept {
				t.Errorf("%d usernames kept, want %d (%v)", st.Kept, tc.kept, st)
			}
			r, err := nfcap.OpenFile(out, nfcap.ReaderOptions{})
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			i := 0
			for f, err := range r.Flows() {
				if err != nil {
					t.Fatal(err)
				}
				tc.check(t, i, orig[i], f.Username, f.HasUsername())
				i++
			}
		})
	}
}

// TestRewriteFillsEmptyUsername makes a file with empty username elements
// (as some exporters send them), then rewrites it with the default (keep)
// policy: empty elements carry nothing worth keeping and are filled in
// place.
func TestRewriteFillsEmptyUsername(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(fixtures.Dir(t), "v9-mixed.none.nf")
	empty, filled := filepath.Join(dir, "empty.nf"), filepath.Join(dir, "filled.nf")
	// The rewrite writes no empty username: write "e" (uncompressed),
	// then blank each such element.
	st := rewriteTo(t, in, empty, func(*nfcap.Flow) (string, bool) { return "e", true }, nfcap.RewriteOptions{})
	if st.Inserted != 1500-377 {
		t.Fatalf("first pass %v", st)
	}
	elem := func(name string) []byte {
		e := make([]byte, nfcap.UserElementSize)
		binary.LittleEndian.PutUint16(e, nfcap.ElemNSELUser)
		binary.LittleEndian.PutUint16(e[2:], nfcap.UserElementSize)
		copy(e[4:], name)
		return e
	}
	raw, _ := os.ReadFile(empty)
	if n := bytes.Count(raw, elem("e")); n != 1500-377 {
		t.Fatalf("%d elements naming e", n)
	}
	if err := os.WriteFile(empty, bytes.ReplaceAll(raw, elem("e"), elem("")), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := nfdump(t, "-q", "-r", empty, "-o", "fmt:%uname"); strings.Count(got, "<empty>") != 1500-377 {
		t.Fatalf("nfdump does not read the blanked file as expected:\n%.300s", got)
	}
	st = rewriteTo(t, empty, filled, func(*nfcap.Flow) (string, bool) { return "filled", true }, nfcap.RewriteOptions{})
	if st.Replaced != 1500-377 || st.Kept != 377 || st.Inserted != 0 {
		t.Fatalf("second pass %v", st)
	}
	a, _ := os.Stat(empty)
	b, _ := os.Stat(filled)
	if a.Size() != b.Size() {
		t.Fatalf("filling in place changed the size %d -> %d", a.Size(), b.Size())
	}
}

// TestRewriteEmptyLabel: an empty label writes no username and, when
// overwriting, erases none.
func TestRewriteEmptyLabel(t *testing.T) {
	in := filepath.Join(fixtures.Dir(t), "v9-mixed.none.nf")
	out := filepath.Join(t.TempDir(), "out.nf")
	st := rewriteTo(t, in, out, func(*nfcap.Flow) (string, bool) { return "", true }, nfcap.RewriteOptions{Overwrite: true})
	if st.Inserted+st.Replaced != 0 || st.Kept != 377 || st.Unlabelled != 1500-377 {
		t.Fatalf("%v, want 377 kept and the rest unlabelled", st)
	}
	a, _ := os.ReadFile(in)
	b, _ := os.ReadFile(out)
	if len(a) != len(b) {
		t.Fatalf("records changed: %d -> %d bytes", len(a), len(b))
	}
}

// TestRewriteIdempotent rewrites a file twice with the same labels: the
// second pass must not change a byte.
func TestRewriteIdempotent(t *testing.T) {
	for _, name := range []string{"v9-multiblock.lzo.nf", "v9-mixed.lz4.nf", "v9-alluser.bz2.nf"} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			in := filepath.Join(fixtures.Dir(t), name)
			once, twice := filepath.Join(dir, "once.nf"), filepath.Join(dir, "twice.nf")
			rewriteTo(t, in, once, testLabel, nfcap.RewriteOptions{})
			rewriteTo(t, once, twice, testLabel, nfcap.RewriteOptions{})
			a, _ := os.ReadFile(once)
			b, _ := os.ReadFile(twice)
			if !bytes.Equal(a, b) {
				t.Fatalf("second rewrite changed the file (%d -> %d bytes)", len(a), len(b))
			}
		})
	}
}

// TestRewriteTooLarge builds a record that already has 38 elements: the
// username cannot be added, the record passes unchanged and is counted.
func TestRewriteTooLarge(t *testing.T) {
	le := binary.LittleEndian
	rec := make([]byte, 12, 12+38*8)
	le.PutUint16(rec[0:], nfcap.RecordTypeV3)
	le.PutUint16(rec[4:], 38)
	rec[11] = 9
	for i := 0; i < 38; i++ {
		e := make([]byte, 8)
		le.PutUint16(e[0:], 60) // unknown element id, copied through
		le.PutUint16(e[2:], 8)
		e[4] = byte(i)
		rec = append(rec, e...)
	}
	le.PutUint16(rec[2:], uint16(len(rec)))
	dir := t.TempDir()
	in := filepath.Join(dir, "in.nf")
	f, _ := os.Create(in)
	w, err := nfcap.NewWriter(f, nfcap.WriterOptions{Compression: nfcap.CompressLZ4, Ident: "too-large"})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.WriteRecord(rec); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	out := filepath.Join(dir, "out.nf")
	st := rewriteTo(t, in, out, func(*nfcap.Flow) (string, bool) { return "x", true }, nfcap.RewriteOptions{})
	if st.TooLarge != 1 {
		t.Fatalf("stats %v, want 1 too large", st)
	}
	recs, _, _ := records(t, out)
	if len(recs) != 1 || !bytes.Equal(recs[0], rec) {
		t.Fatalf("record changed")
	}
}

// TestWriterComputedAppendix writes the flows of a fixture through a Writer
// with no explicit appendix: the stat record it computes must match the
// one nfcapd wrote, and ZSTD files must read back identically.
func TestWriterComputedAppendix(t *testing.T) {
	in := filepath.Join(fixtures.Dir(t), "v9-multiblock.lzo.nf")
	recs, _, r := records(t, in)
	for _, c := range []nfcap.Compression{nfcap.CompressNone, nfcap.CompressZSTD, nfcap.CompressBZ2} {
		t.Run(c.String(), func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "out.nf")
			f, _ := os.Create(out)
			w, err := nfcap.NewWriter(f, nfcap.WriterOptions{Compression: c, Ident: "computed", BlockSize: 256 << 10})
			if err != nil {
				t.Fatal(err)
			}
			for _, rec := range recs {
				if err := w.WriteRecord(rec); err != nil {
					t.Fatal(err)
				}
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			f.Close()
			got, sizes, r2 := records(t, out)
			if !equalRecords(recs, got) {
				t.Fatal("records differ after write and read")
			}
			if len(sizes) < 4 {
				t.Errorf("%d blocks, want several of at most 256 KiB", len(sizes))
			}
			want := r.Appendix().Stat
			if st := r2.Appendix().Stat; st != want || r2.Appendix().Ident != "computed" {
				t.Errorf("stat %+v\nwant %+v", st, want)
			}
			if r2.Header().Compression != c {
				t.Errorf("compression %v", r2.Header().Compression)
			}
		})
	}
}

func TestWriterRejects(t *testing.T) {
	f, _ := os.Create(filepath.Join(t.TempDir(), "x.nf"))
	defer f.Close()
	if _, err := nfcap.NewWriter(f, nfcap.WriterOptions{Compression: 9}); !errors.Is(err, nfcap.ErrUnsupportedCompression) {
		t.Errorf("compression 9: %v", err)
	}
	w, err := nfcap.NewWriter(f, nfcap.WriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.WriteRecord([]byte{11, 0, 9, 0, 0}); err == nil || !strings.Contains(err.Error(), "size field 9") {
		t.Errorf("bad record size: %v", err)
	}
	w.Abort()
	if err := w.Close(); err == nil {
		t.Error("Close after Abort succeeded")
	}
}

func TestRewriteCancelled(t *testing.T) {
	in := filepath.Join(fixtures.Dir(t), "v9-multiblock.lzo.nf")
	r, _ := nfcap.OpenFile(in, nfcap.ReaderOptions{})
	defer r.Close()
	f, _ := os.Create(filepath.Join(t.TempDir(), "out.nf"))
	defer f.Close()
	ctx, cancel := context.WithCancel(context.Background())
	n := 0
	_, err := nfcap.Rewrite(ctx, r, f, func(*nfcap.Flow) (string, bool) {
		if n++; n == 100 {
			cancel()
		}
		return "x", true
	}, nfcap.RewriteOptions{})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err %v, want context.Canceled", err)
	}
}

// TestRewriteParallelLabels relabels with one labelling function per
// worker (NewLabel) and checks the file is byte for byte what the
// sequential rewrite writes, and that every worker's calls add up.
func TestRewriteParallelLabels(t *testing.T) {
	in := filepath.Join(fixtures.Dir(t), "v9-multiblock.lzo.nf")
	dir := t.TempDir()
	seq, par := filepath.Join(dir, "seq.nf"), filepath.Join(dir, "par.nf")
	rewriteTo(t, in, seq, testLabel, nfcap.RewriteOptions{Overwrite: true})
	var mu sync.Mutex
	calls := map[int]int{}
	made := 0
	st := rewriteTo(t, in, par, nil, nfcap.RewriteOptions{Overwrite: true, Workers: 4, NewLabel: func() nfcap.LabelFunc {
		mu.Lock()
		id := made
		made++
		mu.Unlock()
		return func(f *nfcap.Flow) (string, bool) {
			mu.Lock()
			calls[id]++
			mu.Unlock()
			return testLabel(f)
		}
	}})
	a, _ := os.ReadFile(seq)
	b, _ := os.ReadFile(par)
	if !bytes.Equal(a, b) {
		t.Fatal("parallel relabelling wrote a different file")
	}
	total := 0
	for _, n := range calls {
		total += n
	}
	if made != 2 || total != 7000 || st.Flows != 7000 {
		t.Fatalf("%d labellers made (want one per worker, no more than the 2 blocks), %d calls, stats %v", made, total, st)
	}
}
