package flowfmt

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/netdumper/netdumper/nfcap"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// decodeSynth encodes and decodes s, as a reader would deliver it.
func decodeSynth(t testing.TB, s *synthFlow) *nfcap.Flow {
	t.Helper()
	var f nfcap.Flow
	if err := nfcap.DecodeFlow(encodeV3(s), &f); err != nil {
		t.Fatal(err)
	}
	return &f
}

// goldenFlows is a fixed, varied set of records: a few readable ones, then
// random ones from a fixed seed.
func goldenFlows(t testing.TB) []*nfcap.Flow {
	t.Helper()
	base := synthFlow{elems: []uint16{nfcap.ElemGenericFlow, nfcap.ElemIPv4Flow, nfcap.ElemFlowMisc, nfcap.ElemNSELUser, nfcap.ElemIPReceivedV4}}
	base.f = nfcap.Flow{
		ExporterID: 1, EngineID: 1, NfVersion: 9,
		MsecFirst: 1700000000008, MsecLast: 1700000029280, MsecReceived: 1700000030000,
		InPackets: 5, InBytes: 4290, SrcPort: 48242, DstPort: 443, Proto: nfcap.ProtoTCP, TCPFlags: 0x1b,
		SrcAddr: netip.MustParseAddr("10.20.0.5"), DstAddr: netip.MustParseAddr("198.51.100.103"),
		Input: 1, Output: 2, Username: "firefox", Received: netip.MustParseAddr("127.0.0.1"),
	}
	v6 := base
	v6.elems = []uint16{nfcap.ElemGenericFlow, nfcap.ElemIPv6Flow, nfcap.ElemNSELUser}
	v6.f.SrcAddr, v6.f.DstAddr = netip.MustParseAddr("2001:db8:10::5"), netip.MustParseAddr("2001:db8:99::1710:cf54")
	v6.f.Username = "Web Content"
	icmp := base
	icmp.elems = []uint16{nfcap.ElemGenericFlow, nfcap.ElemIPv4Flow}
	icmp.f.Proto, icmp.f.DstPort, icmp.f.SrcPort = nfcap.ProtoICMP, 8<<8, 0
	big := base
	big.elems = []uint16{nfcap.ElemGenericFlow, nfcap.ElemIPv4Flow, nfcap.ElemCntFlow, nfcap.ElemNSELUser}
	big.f.InPackets, big.f.InBytes, big.f.OutPackets, big.f.OutBytes, big.f.Flows = 1234567, 98765432101, 7, 999999, 3
	big.f.Username = ""
	rev := base
	rev.f.MsecLast = rev.f.MsecFirst - 1500

	flows := []*nfcap.Flow{decodeSynth(t, &base), decodeSynth(t, &v6), decodeSynth(t, &icmp), decodeSynth(t, &big), decodeSynth(t, &rev)}
	r := rand.New(rand.NewPCG(7, 7))
	for i := 0; i < 60; i++ {
		s := randFlow(r)
		flows = append(flows, decodeSynth(t, &s))
	}
	return flows
}

func TestGolden(t *testing.T) {
	flows := goldenFlows(t)
	specs := []struct {
		name, spec string
		plain      bool
	}{
		{"line", "line", false},
		{"long", "long", false},
		{"extended", "extended", false},
		{"line6", "line6", false},
		{"nsel", "nsel", false},
		{"line-uname", "fmt:%line %uname", false},
		{"line-uname-plain", "fmt:%line %uname", true},
		{"csv", "csv", false},
		{"json", "json", false},
	}
	for gi, group := range tokenGroups() {
		specs = append(specs, struct {
			name, spec string
			plain      bool
		}{"tokens" + string(rune('0'+gi)), "fmt:" + strings.Join(group, "|"), false})
	}
	for _, tc := range specs {
		t.Run(tc.name, func(t *testing.T) {
			fm := MustParse(tc.spec, Options{Location: time.UTC, Plain: tc.plain})
			var got []byte
			if h := fm.Header(); h != "" {
				got = append(got, h+"\n"...)
			}
			for _, f := range flows {
				got = fm.AppendRecord(got, f)
			}
			path := filepath.Join("testdata", tc.name+".golden")
			if *update {
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if diff := cmp.Diff(string(want), string(got)); diff != "" {
				t.Errorf("%s differs from %s (-want +got):\n%s", tc.spec, path, diff)
			}
		})
	}
}

func TestAppendIPv6(t *testing.T) {
	// Expected values are what glibc's inet_ntop prints.
	tests := []struct{ in, want string }{
		{"::", "::"},
		{"::1", "::1"},
		{"::2", "::2"},
		{"::1.2.3.4", "::1.2.3.4"},
		{"::ffff:1.2.3.4", "::ffff:1.2.3.4"},
		{"::fffe:1.2.3.4", "::fffe:102:304"},
		{"0:0:1::", "0:0:1::"},
		{"1:0:0:2:0:0:0:3", "1:0:0:2::3"},
		{"1:0:0:2:0:0:3:4", "1::2:0:0:3:4"},
		{"1:0:2:0:3:0:4:0", "1:0:2:0:3:0:4:0"},
		{"2001:db8:99::1710:cf54", "2001:db8:99::1710:cf54"},
		{"fe80::1:0:0:0", "fe80::1:0:0:0"},
		{"0:0:0:0:0:1:0:0", "::1:0:0"},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got := string(appendIPv6(nil, netip.MustParseAddr(tc.in).As16()))
			if got != tc.want {
				t.Errorf("appendIPv6(%s) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

func TestCondenseV6(t *testing.T) {
	tests := []struct{ in, want string }{
		{"2001:db8::1", "2001:db8::1"},
		{"2001:db8:10::5:a", "2001:db8:10::5:a"},
		{"2001:db8:99::1710:cf54", "2001:db..10:cf54"},
		{"1234:5678:9abc:def0:1234:5678:9abc:def0", "1234:56..bc:def0"},
	}
	for _, tc := range tests {
		got := string(condenseV6([]byte("x"+tc.in), 1))
		if got != "x"+tc.want {
			t.Errorf("condenseV6(%s) = %q, want %q", tc.in, got[1:], tc.want)
		}
	}
}

func TestAppendNumber(t *testing.T) {
	tests := []struct {
		n            uint64
		plain, fixed bool
		want         string
	}{
		{0, false, true, "   0"},
		{999999, false, true, "999999"},
		{1000000, false, true, "  1.0 M"},
		{1049999, false, true, "  1.0 M"},
		{1050001, false, true, "  1.1 M"},
		{136870886, false, false, "136.9 M"},
		{999950000, false, true, "1000.0 M"},
		{2500000000, false, true, "  2.5 G"},
		{18446744073709551615, false, true, "18446744.1 T"},
		{1500000, true, true, "1500000"},
	}
	for _, tc := range tests {
		if got := string(appendNumber(nil, tc.n, tc.plain, tc.fixed)); got != tc.want {
			t.Errorf("appendNumber(%d, plain=%v, fixed=%v) = %q, want %q", tc.n, tc.plain, tc.fixed, got, tc.want)
		}
	}
}

func TestAppendDuration(t *testing.T) {
	tests := []struct {
		first, last uint64
		plain       bool
		want        string
	}{
		{1000, 5000, false, "    00:00:04.000"},
		{0, 59999, false, "    00:00:59.999"},
		{0, 86400000 + 3723004, false, " 1d 01:02:03.004"},
		{0, 12 * 86400000, false, "12d 00:00:00.000"},
		{5000, 1000, false, "-2147483648d -2147483648:-2147483648:18446744073709548.000"},
		{1000, 5000, true, "           4.000"},
	}
	for _, tc := range tests {
		if got := string(appendDurationMs(nil, tc.first, tc.last, tc.plain)); got != tc.want {
			t.Errorf("duration %d..%d plain=%v = %q, want %q", tc.first, tc.last, tc.plain, got, tc.want)
		}
	}
}

// TestDurationFastPath checks the integer formatting against nfdump's
// floating-point algorithm on random durations and on unit boundaries.
func TestDurationFastPath(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 9))
	check := func(ms uint64) {
		first := uint64(1700000000000)
		want := string(appendDuration(nil, duration(first, first+ms), false))
		if got := string(appendDurationMs(nil, first, first+ms, false)); got != want {
			t.Fatalf("%d ms: %q, float path %q", ms, got, want)
		}
	}
	for _, unit := range []uint64{1, 1000, 60000, 3600000, 86400000} {
		for k := uint64(0); k < 2000 && k*unit < maxExactMs+2*86400000; k++ {
			check(k*unit - min(k*unit, 1))
			check(k * unit)
			check(k*unit + 1)
		}
	}
	for i := 0; i < 200000; i++ {
		check(r.Uint64N(maxExactMs+1000) >> r.UintN(40))
	}
}

func TestParse(t *testing.T) {
	tests := []struct {
		spec    string
		kind    Kind
		header  string
		wantErr bool
	}{
		{spec: "line", header: "Date first seen             Duration     Proto      Src IP Addr:Port          Dst IP Addr:Port   Packets    Bytes Flows"},
		{spec: "LINE", header: "Date first seen             Duration     Proto      Src IP Addr:Port          Dst IP Addr:Port   Packets    Bytes Flows"},
		{spec: "fmt:%uname", header: "UserName"},
		{spec: "FMT:%ts", header: "Date first seen        "},
		{spec: "fmt:a%sa", header: "      Src IP Addr"},
		{spec: "csv", kind: CSV, header: csvHeader},
		{spec: "json", kind: JSON},
		{spec: "ndjson", kind: JSON},
		{spec: "fmt:", wantErr: true},
		{spec: "fmt:%", wantErr: true},
		{spec: "fmt:%foo", wantErr: true},
		{spec: "fmt:%tsx", wantErr: true},
		{spec: "fmt:%gsap", wantErr: true},
		{spec: "gline", wantErr: true},
		{spec: "raw", wantErr: true},
		{spec: "nosuch", wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.spec, func(t *testing.T) {
			fm, err := Parse(tc.spec, Options{})
			if tc.wantErr {
				if !errors.Is(err, ErrSyntax) {
					t.Fatalf("Parse(%q) error = %v, want ErrSyntax", tc.spec, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if fm.Kind() != tc.kind || fm.Header() != tc.header || fm.String() != tc.spec {
				t.Errorf("Parse(%q) = kind %v header %q spec %q, want kind %v header %q", tc.spec, fm.Kind(), fm.Header(), fm.String(), tc.kind, tc.header)
			}
		})
	}
}

// TestParseErrorsLikeNfdump checks that formats nfdump refuses are refused.
func TestParseErrorsLikeNfdump(t *testing.T) {
	nfdumpBin(t)
	path := filepath.Join(fixturesDir(t), "softflowd-v9.lzo.nf")
	for _, spec := range []string{"fmt:%foo", "fmt:%tsx", "fmt:%", "fmt:abc%", "fmt:%line %lines", "fmt:%ts%%"} {
		t.Run(spec, func(t *testing.T) {
			cmd := runNfdumpStatus(t, "-q", "-r", path, "-o", spec)
			if cmd == 0 {
				t.Fatalf("nfdump accepted %q", spec)
			}
			if _, err := Parse(spec, Options{}); err == nil {
				t.Errorf("Parse accepted %q, which nfdump refuses", spec)
			}
		})
	}
}

// TestColumns checks that the columns put together give the record line.
func TestColumns(t *testing.T) {
	fm := MustParse("fmt:%line %uname", Options{Location: time.UTC})
	cols := fm.Columns()
	var hdr string
	for _, c := range cols {
		hdr += c.Header
	}
	if hdr != fm.Header() {
		t.Errorf("column headers make %q, want %q", hdr, fm.Header())
	}
	for _, f := range goldenFlows(t)[:5] {
		var line []byte
		for i := range cols {
			line = fm.AppendColumn(line, i, f)
		}
		want := fm.AppendRecord(nil, f)
		if string(line)+"\n" != string(want) {
			t.Errorf("columns give %q, AppendRecord %q", line, want)
		}
	}
	if MustParse("csv", Options{}).Columns() != nil {
		t.Error("CSV has columns")
	}
}

// TestJSON checks that every line is a JSON object that carries the flow.
func TestJSON(t *testing.T) {
	fm := MustParse("json", Options{Location: time.UTC})
	for i, f := range goldenFlows(t) {
		line := fm.AppendRecord(nil, f)
		if bytes.Count(line, []byte("\n")) != 1 || line[len(line)-1] != '\n' {
			t.Fatalf("record %d: not one line: %q", i, line)
		}
		var m map[string]any
		dec := json.NewDecoder(bytes.NewReader(line))
		dec.UseNumber()
		if err := dec.Decode(&m); err != nil {
			t.Fatalf("record %d: %v\n%s", i, err, line)
		}
		first, err := time.Parse(time.RFC3339, m["first"].(string))
		if err != nil || uint64(first.UnixMilli()) != f.MsecFirst {
			t.Errorf("record %d: first = %v (%v), want %d ms", i, m["first"], err, f.MsecFirst)
		}
		src, err := netip.ParseAddr(m["src_addr"].(string))
		if f.SrcAddr.IsValid() && (err != nil || src != f.SrcAddr) {
			t.Errorf("record %d: src_addr = %v, want %v", i, m["src_addr"], f.SrcAddr)
		}
		if n := m["in_bytes"].(json.Number).String(); n != fmtUint(f.InBytes) {
			t.Errorf("record %d: in_bytes = %s, want %d", i, n, f.InBytes)
		}
		if u, ok := m["username"]; ok != f.HasUsername() || (ok && u.(string) != strings.ToValidUTF8(f.Username, "\ufffd")) {
			t.Errorf("record %d: username = %v (present %v), want %q (present %v)", i, u, ok, f.Username, f.HasUsername())
		}
	}
}

func fmtUint(v uint64) string { return string(appendUintW(nil, v, 0)) }

// TestAppendRecordAllocs checks that formatting does not allocate.
func TestAppendRecordAllocs(t *testing.T) {
	flows := goldenFlows(t)
	for _, spec := range []string{"fmt:%line %uname", "extended", "csv", "json"} {
		fm := MustParse(spec, Options{Location: time.UTC})
		buf := make([]byte, 0, 1<<16)
		allocs := testing.AllocsPerRun(20, func() {
			b := buf[:0]
			for _, f := range flows[:5] {
				b = fm.AppendRecord(b, f)
			}
		})
		if allocs > 0 {
			t.Errorf("%s: %.1f allocations per 5 records, want 0", spec, allocs)
		}
	}
}

func FuzzAppendRecord(f *testing.F) {
	r := rand.New(rand.NewPCG(1, 1))
	for i := 0; i < 8; i++ {
		s := randFlow(r)
		f.Add("fmt:%line %uname", encodeV3(&s))
	}
	s := randFlow(r)
	for _, spec := range []string{"csv", "json", "extended6", "fmt:%sn %sa %tevt %evt %mpls10 %n%cnt", "fmt:%line%%", "fmt:x%"} {
		f.Add(spec, encodeV3(&s))
	}
	f.Fuzz(func(t *testing.T, spec string, rec []byte) {
		fm, err := Parse(spec, Options{Location: time.UTC})
		if err != nil {
			return
		}
		var fl nfcap.Flow
		if nfcap.DecodeFlow(rec, &fl) != nil {
			return
		}
		out := fm.AppendRecord(nil, &fl)
		if len(out) == 0 || out[len(out)-1] != '\n' {
			t.Fatalf("%q: output does not end with a newline: %q", spec, out)
		}
		if fm.Kind() == JSON && !json.Valid(out) {
			t.Fatalf("invalid JSON: %s", out)
		}
	})
}
