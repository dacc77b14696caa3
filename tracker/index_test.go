package tracker

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"
)

// binding builds a binding interval [from, until) (until < 0: open).
func binding(proto Proto, local, remote string, st State, p *Process, from, until float64) Binding {
	b := Binding{Socket: Socket{Proto: proto, Local: ap(local), State: st}, Owner: p, From: at(from)}
	if remote != "" {
		b.Remote = ap(remote)
	}
	if until >= 0 {
		b.Until = at(until)
	}
	return b
}

func addrInterval(a string, from, until float64) AddrInterval {
	ai := AddrInterval{Addr: netip.MustParseAddr(a), From: at(from)}
	if until >= 0 {
		ai.Until = at(until)
	}
	return ai
}

func testIndex(opts IndexOptions) *Index {
	web1 := HostHistory{
		Host: "web1",
		Addrs: []AddrInterval{
			addrInterval("192.0.2.10", 0, -1),
			addrInterval("127.0.0.1", 0, -1),
			addrInterval("2001:db8::10", 0, -1),
		},
		Bindings: []Binding{
			binding(ProtoTCP, "0.0.0.0:22", "", StateListen, proc(812, 0, "sshd"), 0, -1),
			binding(ProtoTCP, "192.0.2.10:80", "", StateListen, proc(900, 0, "nginx"), 0, -1),
			binding(ProtoTCP, "192.0.2.10:22", "198.51.100.7:50001", StateEstablished, proc(1001, 0, "sshd-child"), 10, 20),
			binding(ProtoTCP, "192.0.2.10:50000", "203.0.113.5:443", StateEstablished, proc(2000, 0, "curl"), 10, 20),
			binding(ProtoUDP, "[::]:53", "", StateUnconn, proc(53, 0, "dnsd"), 0, -1),
			binding(ProtoUDP, "0.0.0.0:123", "", StateUnconn, proc(123, 0, "ntpd"), 0, -1),
			binding(ProtoTCP, "0.0.0.0:8080", "", StateListen, proc(7001, 0, "app-a"), 0, 30),
			binding(ProtoTCP, "0.0.0.0:8080", "", StateListen, proc(7002, 29, "app-b"), 31, -1),
			binding(ProtoTCP, "127.0.0.1:9000", "", StateListen, proc(9000, 0, "lo-srv"), 0, -1),
			binding(ProtoTCP, "127.0.0.1:40000", "127.0.0.1:9000", StateEstablished, proc(9001, 0, "lo-cli"), 0, -1),
			{Socket: Socket{Proto: ProtoTCP, Local: ap("0.0.0.0:25"), State: StateListen}, From: at(0)}, // no owner
		},
	}
	// 198.51.100.50 moved from host a to host b at t=100.
	a := HostHistory{Host: "a", Addrs: []AddrInterval{addrInterval("198.51.100.50", 0, 100)},
		Bindings: []Binding{binding(ProtoTCP, "0.0.0.0:443", "", StateListen, proc(443, 0, "apache-a"), 0, -1)}}
	b := HostHistory{Host: "b", Addrs: []AddrInterval{addrInterval("198.51.100.50", 100, -1)},
		Bindings: []Binding{binding(ProtoTCP, "0.0.0.0:443", "", StateListen, proc(443, 0, "apache-b"), 0, -1)}}
	return NewIndex(opts, web1, a, b)
}

func TestLookup(t *testing.T) {
	ix := testIndex(IndexOptions{})
	strict := testIndex(IndexOptions{Tolerance: -1})
	tests := []struct {
		name        string
		ix          *Index
		proto       Proto
		src, dst    string
		first, last float64 // NaN-free; -1: zero time
		want        string  // "process kind side host" or "none"
	}{
		{"5-tuple on the source", ix, ProtoTCP, "192.0.2.10:50000", "203.0.113.5:443", 12, 13, "curl 5-tuple src web1"},
		{"5-tuple on the destination", ix, ProtoTCP, "203.0.113.5:443", "192.0.2.10:50000", 12, 13, "curl 5-tuple dst web1"},
		{"connection beats its listener", ix, ProtoTCP, "198.51.100.7:50001", "192.0.2.10:22", 15, 16, "sshd-child 5-tuple dst web1"},
		{"outside the connection: the wildcard listener", ix, ProtoTCP, "198.51.100.7:50001", "192.0.2.10:22", 100, 101, "sshd wildcard dst web1"},
		{"exact listener", ix, ProtoTCP, "198.51.100.9:1234", "192.0.2.10:80", 5, 6, "nginx listener dst web1"},
		{"exact listener answers from the source side", ix, ProtoTCP, "192.0.2.10:80", "198.51.100.9:1234", 5, 6, "nginx listener src web1"},
		{"wildcard needs an address of the host", ix, ProtoTCP, "198.51.100.9:1234", "10.1.1.1:22", 5, 6, "none"},
		{":: serves IPv6", ix, ProtoUDP, "[2001:db8::99]:5000", "[2001:db8::10]:53", 5, 6, "dnsd wildcard dst web1"},
		{":: serves IPv4 too", ix, ProtoUDP, "198.51.100.9:5000", "192.0.2.10:53", 5, 6, "dnsd wildcard dst web1"},
		{"0.0.0.0 serves IPv4", ix, ProtoUDP, "198.51.100.9:5000", "192.0.2.10:123", 5, 6, "ntpd wildcard dst web1"},
		{"0.0.0.0 does not serve IPv6", ix, ProtoUDP, "[2001:db8::99]:5000", "[2001:db8::10]:123", 5, 6, "none"},
		{"IPv4-mapped flow addresses", ix, ProtoTCP, "[::ffff:198.51.100.7]:50001", "[::ffff:192.0.2.10]:22", 100, 101, "sshd wildcard dst web1"},
		{"protocol must match", ix, ProtoUDP, "198.51.100.7:50001", "192.0.2.10:22", 100, 101, "none"},
		{"other protocols never match", ix, 1, "198.51.100.7:0", "192.0.2.10:0", 100, 101, "none"},
		{"port re-bound: earlier owner in the past", ix, ProtoTCP, "198.51.100.9:1234", "192.0.2.10:8080", 10, 11, "app-a wildcard dst web1"},
		{"port re-bound: later owner now", ix, ProtoTCP, "198.51.100.9:1234", "192.0.2.10:8080", 40, 41, "app-b wildcard dst web1"},
		{"in the gap: the closest interval", ix, ProtoTCP, "198.51.100.9:1234", "192.0.2.10:8080", 30.2, 30.3, "app-a wildcard dst web1"},
		{"spanning both: the larger overlap", ix, ProtoTCP, "198.51.100.9:1234", "192.0.2.10:8080", 28, 45, "app-b wildcard dst web1"},
		{"within the skew tolerance", ix, ProtoTCP, "192.0.2.10:50000", "203.0.113.5:443", 7, 9, "curl 5-tuple src web1"},
		{"no tolerance", strict, ProtoTCP, "192.0.2.10:50000", "203.0.113.5:443", 7, 9, "none"},
		{"beyond the tolerance", ix, ProtoTCP, "192.0.2.10:50000", "203.0.113.5:443", 26, 27, "none"},
		{"loopback client on the source", ix, ProtoTCP, "127.0.0.1:40000", "127.0.0.1:9000", 5, 6, "lo-cli 5-tuple src web1"},
		{"loopback server on the source", ix, ProtoTCP, "127.0.0.1:9000", "127.0.0.1:40000", 5, 6, "lo-srv listener src web1"},
		{"address owned by host a then", ix, ProtoTCP, "203.0.113.9:3333", "198.51.100.50:443", 50, 51, "apache-a wildcard dst a"},
		{"address owned by host b now", ix, ProtoTCP, "203.0.113.9:3333", "198.51.100.50:443", 150, 151, "apache-b wildcard dst b"},
		{"ownerless bindings are not indexed", ix, ProtoTCP, "203.0.113.9:3333", "192.0.2.10:25", 5, 6, "none"},
		{"unknown times match any interval", ix, ProtoTCP, "198.51.100.9:1234", "192.0.2.10:8080", -1, -1, "app-b wildcard dst web1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var first, last time.Time
			if tc.first >= 0 {
				first, last = at(tc.first), at(tc.last)
			}
			m := tc.ix.Lookup(FlowKey{Proto: tc.proto, Src: ap(tc.src), Dst: ap(tc.dst)}, first, last)
			got := "none"
			if m.OK() {
				got = fmt.Sprintf("%s %s %s %s", m.Binding.Owner.Name, m.Kind, m.Side, m.Binding.Host)
			}
			if got != tc.want {
				t.Errorf("Lookup = %q, want %q", got, tc.want)
			}
		})
	}
}

// TestLookupPastOwnerFromTrackerHistory runs the whole path: a tracker
// sees a port change hands, its history feeds an index, and a lookup at
// a past moment names the earlier process.
func TestLookupPastOwnerFromTrackerHistory(t *testing.T) {
	tr, fs := newTestTracker(t, "", Options{})
	first, second := proc(4000, 0, "first"), proc(4000, 50, "second") // pid reused
	host := addrs("192.0.2.10", "127.0.0.1")
	step(t, tr, fs, 1, host, listen("0.0.0.0:8443", 1, first), conn("127.0.0.1:8443", "127.0.0.1:41000", 2, first))
	step(t, tr, fs, 20, host, listen("0.0.0.0:8443", 1, first))
	step(t, tr, fs, 40, host)
	step(t, tr, fs, 60, host, listen("0.0.0.0:8443", 3, second))
	step(t, tr, fs, 80, host, listen("0.0.0.0:8443", 3, second))

	ib := NewIndexBuilder()
	if err := ib.AddHistory(context.Background(), tr, at(0), at(100)); err != nil {
		t.Fatal(err)
	}
	ix := ib.Build(IndexOptions{})
	tests := []struct {
		at   float64
		src  string
		dst  string
		want string
	}{
		// The covered connection is not in the history: the wildcard
		// listener of the same process answers for it.
		{10, "127.0.0.1:8443", "127.0.0.1:41000", "first/4000 wildcard src"},
		{30, "198.51.100.1:5555", "192.0.2.10:8443", "first/4000 wildcard dst"},
		{70, "198.51.100.1:5555", "192.0.2.10:8443", "second/4000 wildcard dst"},
		{50, "198.51.100.1:5555", "192.0.2.10:8443", "none"},
	}
	for _, tc := range tests {
		m := ix.Lookup(FlowKey{Proto: ProtoTCP, Src: ap(tc.src), Dst: ap(tc.dst)}, at(tc.at), at(tc.at+0.5))
		got := "none"
		if m.OK() {
			got = fmt.Sprintf("%s/%d %s %s", m.Binding.Owner.Name, m.Binding.Owner.PID, m.Kind, m.Side)
		}
		if got != tc.want {
			t.Errorf("flow %s -> %s at %v: %q, want %q", tc.src, tc.dst, tc.at, got, tc.want)
		}
	}
}

// benchIndex builds an index of n bindings on hosts hosts: a few percent
// listeners (half wildcard), the rest connections, and flows that hit
// each kind or miss.
func benchIndex(n, hosts int) (*Index, []FlowKey) {
	rng := rand.New(rand.NewPCG(1, 2))
	ib := NewIndexBuilder()
	var flows []FlowKey
	perHost := n / hosts
	for h := range hosts {
		name := fmt.Sprintf("host%d", h)
		hostAddr := netip.AddrFrom4([4]byte{10, byte(h >> 8), byte(h), 1})
		ib.AddAddr(name, AddrInterval{Addr: hostAddr, From: at(0)})
		for i := range perHost {
			p := &Process{PID: int32(1000 + i), StartTime: at(0), Name: fmt.Sprintf("p%d", i%200)}
			port := uint16(1024 + i)
			b := Binding{Owner: p, Host: name, From: at(float64(i % 50))}
			peer := netip.AddrPortFrom(netip.AddrFrom4([4]byte{198, 51, byte(i >> 8), byte(i)}), uint16(40000+i%20000))
			switch i % 40 {
			case 0:
				b.Socket = Socket{Proto: ProtoTCP, Local: netip.AddrPortFrom(netip.IPv4Unspecified(), port), State: StateListen}
				flows = append(flows, FlowKey{ProtoTCP, peer, netip.AddrPortFrom(hostAddr, port)})
			case 1:
				b.Socket = Socket{Proto: ProtoUDP, Local: netip.AddrPortFrom(hostAddr, port), State: StateUnconn}
				flows = append(flows, FlowKey{ProtoUDP, netip.AddrPortFrom(hostAddr, port), peer})
			default:
				b.Socket = Socket{Proto: ProtoTCP, Local: netip.AddrPortFrom(hostAddr, port), Remote: peer, State: StateEstablished}
				if i%3 == 0 {
					flows = append(flows, FlowKey{ProtoTCP, peer, netip.AddrPortFrom(hostAddr, port)})
				} else {
					flows = append(flows, FlowKey{ProtoTCP, netip.AddrPortFrom(hostAddr, port), peer})
				}
			}
			ib.AddBinding(b)
		}
	}
	// Misses: unknown endpoints.
	for range len(flows) / 4 {
		flows = append(flows, FlowKey{ProtoTCP,
			netip.AddrPortFrom(netip.AddrFrom4([4]byte{203, 0, 113, byte(rng.IntN(256))}), uint16(rng.IntN(65536))),
			netip.AddrPortFrom(netip.AddrFrom4([4]byte{192, 0, 2, byte(rng.IntN(256))}), uint16(rng.IntN(65536)))})
	}
	rng.Shuffle(len(flows), func(i, j int) { flows[i], flows[j] = flows[j], flows[i] })
	return ib.Build(IndexOptions{}), flows
}

func BenchmarkLookup(b *testing.B) {
	for _, c := range []struct{ n, hosts int }{{10000, 1}, {10000, 20}} {
		b.Run(fmt.Sprintf("bindings=%d/hosts=%d", c.n, c.hosts), func(b *testing.B) {
			ix, flows := benchIndex(c.n, c.hosts)
			first, last := at(60), at(61)
			hits := 0
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if ix.Lookup(flows[i%len(flows)], first, last).OK() {
					hits++
				}
				i++
			}
			if hits == 0 {
				b.Fatal("no lookup matched")
			}
		})
	}
}

func TestLookupDoesNotAllocate(t *testing.T) {
	ix, flows := benchIndex(2000, 2)
	first, last := at(60), at(61)
	i := 0
	allocs := testing.AllocsPerRun(1000, func() {
		ix.Lookup(flows[i%len(flows)], first, last)
		i++
	})
	if allocs != 0 {
		t.Errorf("Lookup allocates %v times per call", allocs)
	}
}

func TestIndexOwner(t *testing.T) {
	t0 := time.Date(2023, 11, 14, 22, 0, 0, 0, time.UTC)
	ix := NewIndex(IndexOptions{Tolerance: -1}, HostHistory{Host: "web1", Addrs: []AddrInterval{
		{Addr: netip.MustParseAddr("192.0.2.10"), From: t0, Until: t0.Add(time.Hour)},
	}})
	tests := []struct {
		addr   string
		at     time.Time
		want   string
		wantOK bool
	}{
		{"192.0.2.10", t0.Add(time.Minute), "web1", true},
		{"::ffff:192.0.2.10", t0.Add(time.Minute), "web1", true},
		{"192.0.2.10", t0.Add(2 * time.Hour), "", false},
		{"192.0.2.11", t0.Add(time.Minute), "", false},
	}
	for _, tc := range tests {
		h, ok := ix.Owner(netip.MustParseAddr(tc.addr), tc.at, tc.at)
		if h != tc.want || ok != tc.wantOK {
			t.Errorf("Owner(%s, %v) = %q, %v; want %q, %v", tc.addr, tc.at, h, ok, tc.want, tc.wantOK)
		}
	}
}

// TestLookupScanMatchesMaps checks that looking up by scanning a port's
// keys answers exactly as the maps do, on random indexes whose ports carry
// from one key to many more than a scan takes (busy server ports), for
// every kind, both families, several hosts and overlapping intervals.
func TestLookupScanMatchesMaps(t *testing.T) {
	for seed := range uint64(20) {
		rng := rand.New(rand.NewPCG(seed, 7))
		ib := NewIndexBuilder()
		addrs := []netip.Addr{
			netip.MustParseAddr("192.0.2.10"), netip.MustParseAddr("192.0.2.11"),
			netip.MustParseAddr("2001:db8::10"), netip.MustParseAddr("10.0.0.1"),
		}
		peers := []netip.Addr{
			netip.MustParseAddr("198.51.100.1"), netip.MustParseAddr("198.51.100.2"),
			netip.MustParseAddr("2001:db8:1::1"), netip.MustParseAddr("203.0.113.9"),
		}
		hosts := []string{"h0", "h1", "h2"}
		for i, h := range hosts {
			for j, a := range addrs {
				if (i+j)%2 == 0 {
					ib.AddAddr(h, AddrInterval{Addr: a, From: at(float64(rng.IntN(20)))})
				}
			}
		}
		port := func() uint16 { // a busy port (long lists) and quiet ones
			if rng.IntN(2) == 0 {
				return 1000
			}
			return uint16(1001 + rng.IntN(20))
		}
		protos := []Proto{ProtoTCP, ProtoUDP}
		for i := range 100 + rng.IntN(200) {
			p := proc(int32(100+i), 0, fmt.Sprintf("p%d", i))
			from := float64(rng.IntN(60))
			until := from + float64(1+rng.IntN(60))
			if rng.IntN(4) == 0 {
				until = -1
			}
			proto := protos[rng.IntN(2)]
			var b Binding
			switch rng.IntN(4) {
			case 0: // wildcard listener
				wild := "0.0.0.0"
				if rng.IntN(2) == 0 {
					wild = "::"
				}
				b = binding(proto, netip.AddrPortFrom(netip.MustParseAddr(wild), port()).String(), "", StateListen, p, from, until)
			case 1: // listener on an address
				b = binding(proto, netip.AddrPortFrom(addrs[rng.IntN(len(addrs))], port()).String(), "", StateListen, p, from, until)
			default: // connection
				b = binding(proto, netip.AddrPortFrom(addrs[rng.IntN(len(addrs))], port()).String(),
					netip.AddrPortFrom(peers[rng.IntN(len(peers))], uint16(5000+rng.IntN(3))).String(), StateEstablished, p, from, until)
			}
			b.Host = hosts[rng.IntN(len(hosts))]
			ib.AddBinding(b)
		}
		scan := ib.build(IndexOptions{Tolerance: -1}, defaultScanMax)
		maps := ib.build(IndexOptions{Tolerance: -1}, 0)
		if len(scan.keys) == 0 || len(scan.exact)+len(scan.local)+len(scan.wild) == 0 {
			t.Fatalf("seed %d: want both listed and mapped ports (listed %d)", seed, len(scan.keys))
		}
		all := append(append([]netip.Addr(nil), addrs...), peers...)
		for range 3000 {
			k := FlowKey{Proto: protos[rng.IntN(2)],
				Src: netip.AddrPortFrom(all[rng.IntN(len(all))], port()),
				Dst: netip.AddrPortFrom(all[rng.IntN(len(all))], uint16(5000+rng.IntN(3)))}
			if rng.IntN(2) == 0 {
				k.Src, k.Dst = k.Dst, k.Src
			}
			f := at(float64(rng.IntN(120)))
			l := f.Add(time.Duration(rng.IntN(5000)) * time.Millisecond)
			got, want := scan.Lookup(k, f, l), maps.Lookup(k, f, l)
			if got.Kind != want.Kind || got.Side != want.Side || got.Pos != want.Pos {
				t.Fatalf("seed %d: %v %v..%v: scan %v/%v/%d, maps %v/%v/%d", seed, k, f, l,
					got.Kind, got.Side, got.Pos, want.Kind, want.Side, want.Pos)
			}
			if ms := scan.LookupMilli(k, f.UnixMilli(), l.UnixMilli()); ms != got {
				t.Fatalf("seed %d: %v %v..%v: LookupMilli %+v, Lookup %+v", seed, k, f, l, ms, got)
			}
			for _, a := range []netip.Addr{k.Src.Addr(), k.Dst.Addr()} {
				h1, ok1 := scan.Owner(a, f, l)
				h2, ok2 := scan.OwnerMilli(a, f.UnixMilli(), l.UnixMilli())
				h3, ok3 := maps.Owner(a, f, l)
				if h1 != h2 || ok1 != ok2 || h1 != h3 || ok1 != ok3 {
					t.Fatalf("seed %d: owner of %s at %v..%v: %q %v / milli %q %v / maps %q %v", seed, a, f, l, h1, ok1, h2, ok2, h3, ok3)
				}
			}
		}
	}
}

// TestLookupMilliExtremes feeds times no clock gives (corrupt records):
// they saturate instead of wrapping around into a match.
func TestLookupMilliExtremes(t *testing.T) {
	ix := testIndex(IndexOptions{})
	k := FlowKey{Proto: ProtoTCP, Src: ap("198.51.100.7:50001"), Dst: ap("192.0.2.10:22")} // sshd-child, [10, 20)
	tests := []struct {
		first, last int64
		want        string
	}{
		{at(15).UnixMilli(), at(15).UnixMilli(), "sshd-child"},
		{math.MaxInt64, math.MaxInt64, "sshd"}, // only the open-ended listener
		{math.MinInt64, math.MinInt64, "none"},
		{math.MinInt64, math.MaxInt64, "sshd-child"},
	}
	for _, tc := range tests {
		m := ix.LookupMilli(k, tc.first, tc.last)
		got := "none"
		if m.OK() {
			got = m.Binding.Owner.Name
		}
		if got != tc.want {
			t.Errorf("LookupMilli(%d, %d) = %s, want %s", tc.first, tc.last, got, tc.want)
		}
	}
}
