package tracker

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// checkFastPath decodes in with the fast path and the full decoder. When
// the fast path takes the file, both must give the same File; fast says
// whether it must take it.
func checkFastPath(t *testing.T, in []byte, fast bool) {
	t.Helper()
	ff, ok := readFileFast(in)
	if ok != fast {
		t.Fatalf("fast path took the file: %v, want %v\n%s", ok, fast, in)
	}
	full, err := readFileFull(bytes.NewReader(in), "x")
	if !ok {
		return
	}
	if err != nil {
		t.Fatalf("the fast path took a file the full decoder refuses (%v):\n%s", err, in)
	}
	if diff := cmp.Diff(full, ff, equateAddrs); diff != "" {
		t.Fatalf("fast path (-full +fast):\n%s\n%s", diff, in)
	}
	// Owners are shared the same way.
	procs := func(f *File) []int {
		seen := map[*Process]int{}
		var ids []int
		for _, h := range f.Hosts {
			for _, b := range h.Bindings {
				if _, ok := seen[b.Owner]; !ok {
					seen[b.Owner] = len(seen)
				}
				ids = append(ids, seen[b.Owner])
			}
		}
		return ids
	}
	if diff := cmp.Diff(procs(full), procs(ff)); diff != "" {
		t.Fatalf("owners shared differently (-full +fast):\n%s", diff)
	}
}

// randomHosts returns hosts with every kind of binding and field the
// format carries; escapes puts names that JSON escapes among them.
func randomHosts(rng *rand.Rand, escapes bool) []HostHistory {
	names := []string{"sshd", "nginx: worker", "dämon", ""}
	if escapes {
		names = append(names, "tab\there", `q"uote\`)
	}
	addrs := []string{"192.0.2.10", "2001:db8::10", "10.0.0.1", "::1"}
	var hosts []HostHistory
	for h := range 1 + rng.IntN(3) {
		hh := HostHistory{Host: fmt.Sprintf("host-%d", h%2)} // a name twice: merged
		for _, a := range addrs[:rng.IntN(len(addrs)+1)] {
			ai := AddrInterval{Addr: netip.MustParseAddr(a), From: at(float64(rng.IntN(100)))}
			if rng.IntN(2) == 0 {
				ai.Until = ai.From.Add(time2(rng))
			}
			hh.Addrs = append(hh.Addrs, ai)
		}
		var procs []*Process
		for i := range 4 {
			n := names[rng.IntN(len(names))]
			p := &Process{PID: int32(100 + i), Name: n, Exe: "/usr/bin/" + n, Cmdline: n + " -x", UID: uint32(rng.IntN(2) * 1000),
				User: "root", Container: []string{"", "0123456789ab"}[rng.IntN(2)]}
			if rng.IntN(2) == 0 {
				p.StartTime = at(-float64(rng.IntN(1000)))
			}
			procs = append(procs, p)
		}
		for range rng.IntN(40) {
			b := Binding{Socket: Socket{Proto: []Proto{ProtoTCP, ProtoUDP}[rng.IntN(2)], State: StateListen},
				From: at(float64(rng.IntN(100)) + rng.Float64())}
			local := netip.MustParseAddr(addrs[rng.IntN(len(addrs))])
			switch rng.IntN(3) {
			case 0:
				local = netip.IPv4Unspecified()
			case 1:
				b.Remote = netip.AddrPortFrom(netip.MustParseAddr("198.51.100.7"), uint16(rng.IntN(65536)))
				b.State = StateEstablished
			}
			b.Local = netip.AddrPortFrom(local, uint16(rng.IntN(65536)))
			if b.Proto == ProtoUDP && b.State == StateListen {
				b.State = StateUnconn
			}
			if rng.IntN(3) > 0 {
				b.Owner = procs[rng.IntN(len(procs))]
			}
			if rng.IntN(2) == 0 {
				b.Until = b.From.Add(time2(rng))
			}
			hh.Bindings = append(hh.Bindings, b)
		}
		hosts = append(hosts, hh)
	}
	return hosts
}

func time2(rng *rand.Rand) time.Duration { return time.Duration(rng.IntN(1e12)) }

func TestReadFileFastMatchesFull(t *testing.T) {
	for _, name := range []string{"sample.json", "issue4.json"} {
		t.Run(name, func(t *testing.T) {
			in := readGolden(t, name)
			// sample.json has escapes (a cmdline with quotes and a tab):
			// the full decoder reads it.
			checkFastPath(t, in, !bytes.Contains(in, []byte(`\`)))
		})
	}
	fast := 0
	for seed := range uint64(50) {
		var buf bytes.Buffer
		if err := WriteFile(&buf, randomHosts(rand.New(rand.NewPCG(seed, 1)), seed%4 == 0)); err != nil {
			t.Fatal(err)
		}
		in := buf.Bytes()
		checkFastPath(t, in, !bytes.Contains(in, []byte(`\`)))
		// Compact, with other blanks: still the fast path.
		compact := []byte(strings.NewReplacer("\n", "\r\n\t", ": ", ":", ", ", ",").Replace(string(in)))
		checkFastPath(t, compact, !bytes.Contains(in, []byte(`\`)))
		if !bytes.Contains(in, []byte(`\`)) {
			fast++
		}
	}
	if fast < 30 {
		t.Errorf("only %d of 50 random files on the fast path", fast)
	}
}

// TestReadFileFastDeclines lists what the fast path leaves to the full
// decoder, valid or not; ReadFile must still give the full decoder's
// answer.
func TestReadFileFastDeclines(t *testing.T) {
	good := fileWith(goodBinding)
	for _, tc := range []struct{ name, in string }{
		{"escape", strings.Replace(good, `"sshd"`, `"ss\u0068d"`, 1)},
		{"unknown key", strings.Replace(good, `"pid": 812`, `"pid": 812, "extra": 1`, 1)},
		{"key case", strings.Replace(good, `"pid": 812`, `"PID": 812`, 1)},
		{"repeated key", strings.Replace(good, `"pid": 812`, `"pid": 812, "pid": 813`, 1)},
		{"fraction", strings.Replace(good, `"pid": 812`, `"pid": 812.0`, 1)},
		{"exponent", strings.Replace(good, `"pid": 812`, `"pid": 8e2`, 1)},
		{"leading zero", strings.Replace(good, `"pid": 812`, `"pid": 0812`, 1)},
		{"string for number", strings.Replace(good, `"pid": 812`, `"pid": "812"`, 1)},
		{"bool", strings.Replace(good, `"pid": 812`, `"pid": true`, 1)},
		{"bad port", strings.Replace(good, `"local_port": 22`, `"local_port": 65536`, 1)},
		{"bad time", strings.Replace(good, `"2023-11-14T22:00:00Z"`, `"yesterday"`, 1)},
		{"invalid utf-8", strings.Replace(good, `"sshd"`, "\"ss\xffd\"", 1)},
		{"control character", strings.Replace(good, `"sshd"`, "\"ss\x01d\"", 1)},
		{"version 2", strings.Replace(good, `"version": 1`, `"version": 2`, 1)},
		{"no version", strings.Replace(good, `"version": 1,`, ``, 1)},
		{"unknown host key", `{"version": 1, "hosts": [{"host": "h", "comment": 1}]}`},
		{"null host", `{"version": 1, "hosts": [{"host": null}]}`},
		{"empty host", `{"version": 1, "hosts": [{"host": ""}]}`},
		{"trailing data", good + "{}"},
		{"truncated", good[:len(good)-3]},
		{"huge number", strings.Replace(good, `"pid": 812`, `"pid": 1234567890123456789012`, 1)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkFastPath(t, []byte(tc.in), false)
			got, gerr := ReadFile(strings.NewReader(tc.in), "x")
			want, werr := readFileFull(strings.NewReader(tc.in), "x")
			if fmt.Sprint(gerr) != fmt.Sprint(werr) {
				t.Fatalf("ReadFile error %v, full decoder %v", gerr, werr)
			}
			if diff := cmp.Diff(want, got, equateAddrs); diff != "" {
				t.Fatalf("(-full +ReadFile):\n%s", diff)
			}
		})
	}
	// The host name may follow its bindings: both paths take that.
	checkFastPath(t, []byte(`{"version": 1, "hosts": [{"bindings": [`+goodBinding+`], "host": "h"}, {"host": "h", "addresses": []}]}`), true)
}

// TestReadFileLargeUsesFullDecoder checks that a file over the size the
// fast path reads whole is still read, by the full decoder.
func TestReadFileLargeUsesFullDecoder(t *testing.T) {
	var sb strings.Builder
	sb.WriteString(`{"version": 1, "hosts": [{"host": "h", "bindings": [`)
	n := 0
	for sb.Len() <= maxFileObject {
		if n > 0 {
			sb.WriteString(",\n")
		}
		sb.WriteString(goodBinding)
		n++
	}
	sb.WriteString("]}]}")
	f, err := ReadFile(strings.NewReader(sb.String()), "big.json")
	if err != nil {
		t.Fatal(err)
	}
	if got := len(f.Hosts[0].Bindings); got != n {
		t.Errorf("%d bindings, want %d", got, n)
	}
}

// BenchmarkReadFile reads a bindings file of 10,000 listeners of 300
// processes, as bench/mkbindings writes for bench/enrich.sh, by ReadFile
// (the fast path) and by the full decoder alone.
func BenchmarkReadFile(b *testing.B) {
	h := HostHistory{Host: "bench-host", Addrs: []AddrInterval{{Addr: netip.MustParseAddr("192.0.2.10"), From: at(0)}}}
	procs := make([]*Process, 300)
	for i := range procs {
		procs[i] = &Process{PID: int32(1000 + i), StartTime: at(0), Name: fmt.Sprintf("proc-%03d", i),
			Exe: fmt.Sprintf("/usr/bin/proc-%03d", i), User: "root"}
	}
	for i := range 10000 {
		h.Bindings = append(h.Bindings, Binding{Socket: Socket{Proto: ProtoTCP, State: StateListen,
			Local: netip.AddrPortFrom(netip.MustParseAddr("192.0.2.10"), uint16(i))}, Owner: procs[i%len(procs)], From: at(0)})
	}
	var buf bytes.Buffer
	if err := WriteFile(&buf, []HostHistory{h}); err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct {
		name string
		read func() (*File, error)
	}{
		{"ReadFile", func() (*File, error) { return ReadFile(bytes.NewReader(buf.Bytes()), "b") }},
		{"full", func() (*File, error) { return readFileFull(bytes.NewReader(buf.Bytes()), "b") }},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(int64(buf.Len()))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.read(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
