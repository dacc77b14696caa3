package tracker

import (
	"context"
	"fmt"
	"net/netip"
	"testing"
	"time"
)

// benchScanner hands out a prepared snapshot.
type benchScanner struct{ snap *Snapshot }

func (s *benchScanner) Scan(context.Context) (*Snapshot, error) { return s.snap, nil }

// benchHost builds n sockets over ~100 processes: 100 listeners, the rest
// connections owned by other processes than their listener (so they are
// persisted, the expensive case).
func benchHost(n int) ([]Observed, []*Process) {
	procs := make([]*Process, 100)
	for i := range procs {
		procs[i] = &Process{PID: int32(1000 + i), StartTime: at(-100), Name: fmt.Sprintf("proc-%d", i),
			Exe: fmt.Sprintf("/usr/bin/proc-%d", i), Cmdline: fmt.Sprintf("proc-%d --flag value", i), User: "svc"}
	}
	local := netip.MustParseAddr("192.0.2.10")
	socks := make([]Observed, 0, n)
	for i := range min(100, n) {
		socks = append(socks, Observed{Socket: Socket{Proto: ProtoTCP, Local: netip.AddrPortFrom(netip.IPv4Unspecified(), uint16(1000+i)),
			State: StateListen, Inode: uint64(1 + i), NetNS: 1}, Owner: procs[i]})
	}
	for i := len(socks); i < n; i++ {
		socks = append(socks, benchConn(local, i, procs[(i+1)%100]))
	}
	return socks, procs
}

func benchConn(local netip.Addr, i int, p *Process) Observed {
	return Observed{Socket: Socket{Proto: ProtoTCP, Local: netip.AddrPortFrom(local, uint16(1000+i%100)),
		Remote: netip.AddrPortFrom(netip.AddrFrom4([4]byte{198, 51, byte(i >> 8), byte(i)}), uint16(20000+i%30000)),
		State:  StateEstablished, Inode: uint64(1_000_000 + i), NetNS: 1}, Owner: p}
}

// BenchmarkScan measures one scan's diff and commit (a synced bbolt
// transaction) with n sockets: nothing changed, or 1% of the connections
// replaced.
func BenchmarkScan(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		for _, churn := range []int{0, 1, 100} {
			b.Run(fmt.Sprintf("sockets=%d/churn=%d%%", n, churn), func(b *testing.B) {
				socks, procs := benchHost(n)
				sc := &benchScanner{snap: &Snapshot{Sockets: socks, Addrs: addrs("192.0.2.10")}}
				tr, err := New(Options{Scanner: sc, StateDir: b.TempDir(), Host: "bench"})
				if err != nil {
					b.Fatal(err)
				}
				defer tr.Close()
				tm := at(0)
				sc.snap.Time = tm
				if err := tr.ScanOnce(context.Background()); err != nil {
					b.Fatal(err)
				}
				local := netip.MustParseAddr("192.0.2.10")
				next := n
				replace := n * churn / 100
				var diff, commit time.Duration
				b.ReportAllocs()
				for b.Loop() {
					for k := range replace {
						i := 100 + (next+k)%(n-100)
						socks[i] = benchConn(local, next+k, procs[(next+k+1)%100])
					}
					next += replace
					tm = tm.Add(time.Second)
					sc.snap.Time = tm
					if err := tr.ScanOnce(context.Background()); err != nil {
						b.Fatal(err)
					}
					s := tr.Stats()
					diff += s.LastDiffDuration
					commit += s.LastCommitDuration
				}
				b.ReportMetric(float64(diff.Microseconds())/float64(b.N), "diff-µs/op")
				b.ReportMetric(float64(commit.Microseconds())/float64(b.N), "commit-µs/op")
			})
		}
	}
}

// BenchmarkHistory measures reading back a window of intervals.
func BenchmarkHistory(b *testing.B) {
	socks, _ := benchHost(10000)
	sc := &benchScanner{snap: &Snapshot{Time: at(0), Sockets: socks}}
	tr, err := New(Options{Scanner: sc, StateDir: b.TempDir(), Host: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	defer tr.Close()
	if err := tr.ScanOnce(context.Background()); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		n := 0
		if err := tr.History(context.Background(), at(0), at(1), func(Binding) error { n++; return nil }); err != nil {
			b.Fatal(err)
		}
		if n != 10000 {
			b.Fatalf("%d intervals", n)
		}
	}
}

// BenchmarkDiff measures the in-memory work of a scan without the store:
// the diff and, when something changed, the new view.
func BenchmarkDiff(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		for _, churn := range []int{0, 1, 100} {
			b.Run(fmt.Sprintf("sockets=%d/churn=%d%%", n, churn), func(b *testing.B) {
				socks, procs := benchHost(n)
				snap := &Snapshot{Sockets: socks, Addrs: addrs("192.0.2.10")}
				h := newHistory("bench", 1)
				tm := at(0)
				h.apply(snap, tm)
				h.bindings()
				local := netip.MustParseAddr("192.0.2.10")
				next, replace := n, n*churn/100
				b.ReportAllocs()
				for b.Loop() {
					for k := range replace {
						i := 100 + (next+k)%(n-100)
						socks[i] = benchConn(local, next+k, procs[(next+k+1)%100])
					}
					next += replace
					tm = tm.Add(time.Second)
					if h.apply(snap, tm).changed {
						h.bindings()
					}
				}
			})
		}
	}
}

// BenchmarkApplyEvents measures the history's work per socket event: a
// short TCP connection (connect, then close in the same batch, written
// as one closed interval) and an accepted one its listener attributes.
func BenchmarkApplyEvents(b *testing.B) {
	for _, kind := range []string{"client", "accepted"} {
		b.Run(kind, func(b *testing.B) {
			h := newHistory("bench", 1)
			web := proc(900, -100, "nginx")
			h.apply(&Snapshot{Sockets: []Observed{listen("127.0.0.1:80", 1, web)}, Addrs: addrs("127.0.0.1")}, at(0))
			const batch = 64
			recs := make([]evRecord, 0, 2*batch)
			cookie := uint64(0)
			b.ReportAllocs()
			for b.Loop() {
				recs = recs[:0]
				for range batch {
					cookie++
					port := uint16(10000 + cookie%50000)
					cli := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port)
					srv := netip.MustParseAddrPort("127.0.0.1:80")
					tm := at(float64(cookie) / 1000)
					ev := SockEvent{Kind: SockConnect, Time: tm, Cookie: cookie,
						Socket: Socket{Proto: ProtoTCP, Local: cli, Remote: srv, State: StateEstablished, NetNS: 1}}
					if kind == "accepted" {
						ev.Kind, ev.Local, ev.Remote = SockAccept, srv, cli
					}
					recs = append(recs, evRecord{SockEvent: ev, owner: web})
					ev.Kind, ev.Time = SockClose, tm.Add(time.Millisecond)
					recs = append(recs, evRecord{SockEvent: ev})
				}
				var r scanResult
				h.applyEvents(recs, &r)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*2*batch), "ns/event")
		})
	}
}
