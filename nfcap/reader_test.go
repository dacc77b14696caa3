package nfcap_test

import (
	"encoding/csv"
	"errors"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/netdumper/netdumper/internal/fixtures"
	"github.com/netdumper/netdumper/nfcap"
)

// truthRow is one row of a fixture's ground-truth CSV (nfgen's input).
type truthRow struct {
	proto                uint8
	src, dst             netip.Addr
	sport, dport         uint16
	packets, bytes       uint64
	tcpFlags             uint8
	startMs, endMs       uint64
	unameSent, procOwner string
}

func readTruth(t *testing.T, path string) []truthRow {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	recs, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	u := func(s string) uint64 {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		return v
	}
	var rows []truthRow
	for _, r := range recs[1:] {
		rows = append(rows, truthRow{
			proto: uint8(u(r[2])), src: netip.MustParseAddr(r[3]), sport: uint16(u(r[4])),
			dst: netip.MustParseAddr(r[5]), dport: uint16(u(r[6])),
			packets: u(r[7]), bytes: u(r[8]), tcpFlags: uint8(u(r[9])),
			startMs: u(r[10]), endMs: u(r[11]), procOwner: r[14], unameSent: r[15],
		})
	}
	return rows
}

// TestFixturesAgainstTruth decodes every flow of the synthetic fixtures and
// compares it field by field with the generator's ground truth.
func TestFixturesAgainstTruth(t *testing.T) {
	dir := fixtures.Dir(t)
	tests := []struct {
		file, truth string
		unameLen    int // field length the exporter used; 0: IPFIX, no username stored
	}{
		{"v9-mixed.none.nf", "v9-mixed.truth.csv", 32},
		{"v9-mixed.lzo.nf", "v9-mixed.truth.csv", 32},
		{"v9-mixed.lz4.nf", "v9-mixed.truth.csv", 32},
		{"v9-mixed.bz2.nf", "v9-mixed.truth.csv", 32},
		{"ipfix-mixed.lz4.nf", "ipfix-mixed.truth.csv", 0},
		{"v9-alluser.bz2.nf", "v9-alluser.truth.csv", 65},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			want := readTruth(t, filepath.Join(dir, tc.truth))
			r, err := nfcap.OpenFile(filepath.Join(dir, tc.file), nfcap.ReaderOptions{})
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			i := 0
			for f, err := range r.Flows() {
				if err != nil {
					t.Fatal(err)
				}
				if i >= len(want) {
					t.Fatalf("more flows than the %d truth rows", len(want))
				}
				w := want[i]
				i++
				got := truthRow{proto: f.Proto, src: f.SrcAddr, dst: f.DstAddr, sport: f.SrcPort, dport: f.DstPort,
					packets: f.InPackets, bytes: f.InBytes, tcpFlags: f.TCPFlags, startMs: f.MsecFirst, endMs: f.MsecLast,
					unameSent: f.Username, procOwner: w.procOwner}
				wantU := w.unameSent
				if tc.unameLen == 0 {
					wantU = ""
				} else if len(wantU) > tc.unameLen {
					wantU = wantU[:tc.unameLen]
				}
				w.unameSent = wantU
				if w.proto == nfcap.ProtoICMP || w.proto == nfcap.ProtoICMPv6 {
					w.sport = 0 // nfcapd stores no source port for ICMP
				}
				if got != w {
					t.Fatalf("flow %d:\n got  %+v\n want %+v", i, got, w)
				}
				if (w.unameSent != "") != f.HasUsername() && tc.unameLen > 0 && w.unameSent != "" {
					t.Fatalf("flow %d: HasUsername=%v, want a username", i, f.HasUsername())
				}
			}
			if i != len(want) {
				t.Fatalf("decoded %d flows, want %d", i, len(want))
			}
		})
	}
}

// TestFixturesHeaderAndAppendix checks header and stat counters against a
// recount of the flows, for every fixture.
func TestFixturesHeaderAndAppendix(t *testing.T) {
	for _, path := range fixtures.NFFiles(t) {
		t.Run(filepath.Base(path), func(t *testing.T) {
			r, err := nfcap.OpenFile(path, nfcap.ReaderOptions{})
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			h := r.Header()
			if h.Version != 2 || h.NfdVersion != nfcap.NfdVersion171 || h.AppendixBlocks != 1 {
				t.Errorf("header %+v", h)
			}
			wantComp := strings.Split(filepath.Base(path), ".")[1]
			if h.Compression.String() != wantComp {
				t.Errorf("compression %s, want %s", h.Compression, wantComp)
			}
			a := r.Appendix()
			if !a.HasIdent || a.Ident != "netdumper-fixture" || !a.HasStat {
				t.Errorf("appendix ident %q/%v stat %v", a.Ident, a.HasIdent, a.HasStat)
			}
			var recount nfcap.Stat
			for f, err := range r.Flows() {
				if err != nil {
					t.Fatal(err)
				}
				recount.Add(f)
			}
			st := a.Stat
			recount.FirstSeen, recount.LastSeen, recount.SequenceFailure = st.FirstSeen, st.LastSeen, st.SequenceFailure
			if recount != st {
				t.Errorf("recount %+v\n stat   %+v", recount, st)
			}
		})
	}
}

// TestReadAheadModes checks that synchronous and read-ahead readers yield
// the same records.
func TestReadAheadModes(t *testing.T) {
	path := filepath.Join(fixtures.Dir(t), "v9-multiblock.lzo.nf")
	read := func(ra int) (recs []string, blocks int) {
		r, err := nfcap.OpenFile(path, nfcap.ReaderOptions{ReadAhead: ra})
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		last := -1
		for r.Next() {
			rec := r.Record()
			if rec.Block != last {
				blocks++
				last = rec.Block
			}
			recs = append(recs, string(rec.Data))
		}
		if err := r.Err(); err != nil {
			t.Fatal(err)
		}
		return recs, blocks
	}
	a, na := read(-1)
	b, nb := read(1)
	c, _ := read(0)
	if na != 2 || nb != 2 {
		t.Fatalf("blocks %d/%d, want 2", na, nb)
	}
	if len(a) != 7002 { // 7000 flows, exporter info, exporter stat
		t.Fatalf("records %d, want 7002", len(a))
	}
	for i := range a {
		if a[i] != b[i] || a[i] != c[i] {
			t.Fatalf("record %d differs between read-ahead modes", i)
		}
	}
}

// TestCloseEarly stops reading in the middle of a file; Close must not hang
// or leak the read-ahead goroutine (the race detector and -timeout catch it).
func TestCloseEarly(t *testing.T) {
	path := filepath.Join(fixtures.Dir(t), "v9-multiblock.lzo.nf")
	for i := 0; i < 20; i++ {
		r, err := nfcap.OpenFile(path, nfcap.ReaderOptions{ReadAhead: 1})
		if err != nil {
			t.Fatal(err)
		}
		for j := 0; j < i*100 && r.Next(); j++ {
		}
		if err := r.Close(); err != nil {
			t.Fatal(err)
		}
		if r.Next() {
			t.Fatal("Next after Close returned true")
		}
	}
}

func TestLegacyLayoutRefused(t *testing.T) {
	m, _ := filepath.Glob(filepath.Join(fixtures.Dir(t), "seed-1.6", "*.nf"))
	if len(m) == 0 {
		t.Fatal("no layout-1 fixtures")
	}
	for _, p := range m {
		_, err := nfcap.OpenFile(p, nfcap.ReaderOptions{})
		if !errors.Is(err, nfcap.ErrLegacyLayout) {
			t.Fatalf("%s: err %v, want ErrLegacyLayout", p, err)
		}
		for _, s := range []string{p, "convert it with: nfdump -r " + p + " -w " + p + ".layout2 && mv ", "layout 1"} {
			if !strings.Contains(err.Error(), s) {
				t.Errorf("error %q does not mention %q", err, s)
			}
		}
	}
}

func TestEmptyFile(t *testing.T) {
	// A file with no data blocks, as nfcapd writes for an empty interval.
	b, err := (&nfcap.Header{Magic: nfcap.Magic, Version: 2, NfdVersion: nfcap.NfdVersion171,
		AppendixBlocks: 1, OffAppendix: nfcap.HeaderSize}).AppendBinary(nil)
	if err != nil {
		t.Fatal(err)
	}
	var st nfcap.Stat
	app := append(nfcap.IdentRecord("fx-empty"), st.AppendRecord(nil)...)
	b = appendBlock(b, 2, 3, app)
	r, err := nfcap.NewReader(bytesReaderAt(b), int64(len(b)), nfcap.ReaderOptions{Name: "empty.nf"})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if r.Next() {
		t.Fatal("records in an empty file")
	}
	if err := r.Err(); err != nil {
		t.Fatal(err)
	}
	if r.Appendix().Ident != "fx-empty" {
		t.Fatalf("ident %q", r.Appendix().Ident)
	}
}

// readAll reads every record of b and returns the first error.
func readAll(b []byte, opts nfcap.ReaderOptions) (int, error) {
	r, err := nfcap.NewReader(bytesReaderAt(b), int64(len(b)), opts)
	if err != nil {
		return 0, err
	}
	defer r.Close()
	n := 0
	for f, err := range r.Flows() {
		if err != nil {
			return n, err
		}
		_ = f
		n++
	}
	return n, nil
}

type bytesReaderAt []byte

func (b bytesReaderAt) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, errors.New("negative offset")
	}
	if off >= int64(len(b)) {
		return 0, io.EOF
	}
	n := copy(p, b[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// appendBlock appends a block header and payload.
func appendBlock(b []byte, numRecords uint32, typ uint16, payload []byte) []byte {
	var h [12]byte
	putU32(h[0:], numRecords)
	putU32(h[4:], uint32(len(payload)))
	h[8], h[9] = byte(typ), byte(typ>>8)
	b = append(b, h[:]...)
	return append(b, payload...)
}

func putU32(b []byte, v uint32) {
	b[0], b[1], b[2], b[3] = byte(v), byte(v>>8), byte(v>>16), byte(v>>24)
}
