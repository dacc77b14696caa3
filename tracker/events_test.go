package tracker

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/netdumper/netdumper/tracker/ebpf"
)

// fakeEvents is an EventSource whose events the test hands to the
// tracker itself (Tracker.receive); Run only waits.
type fakeEvents struct{}

func (fakeEvents) Name() string { return "fake" }
func (fakeEvents) Run(ctx context.Context, _ func(SockEvent)) error {
	<-ctx.Done()
	return ctx.Err()
}
func (fakeEvents) Stats() EventSourceStats { return EventSourceStats{Delivered: 7} }
func (fakeEvents) Close() error            { return nil }

// resolvingScanner is a fake scanner that resolves event owners to the
// processes it knows (as the system scanner's cache does), and builds
// the others from the event.
type resolvingScanner struct {
	fakeScanner
	mu    sync.Mutex
	known []*Process
}

func (s *resolvingScanner) ResolveOwner(o *EventOwner) (*Process, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range s.known {
		if p.PID == o.PID && p.StartTime.Equal(o.StartTime) {
			return p, false
		}
	}
	return o.process(), true
}

// evOwner names p as an event does.
func evOwner(p *Process) *EventOwner {
	return &EventOwner{PID: p.PID, StartTime: p.StartTime, UID: p.UID, Comm: p.Comm}
}

// sockEv builds an event; remote "" for binds and listens.
func sockEv(kind SockEventKind, tm float64, proto Proto, local, remote string, cookie uint64, p *Process) SockEvent {
	ev := SockEvent{Kind: kind, Time: at(tm), Cookie: cookie,
		Socket: Socket{Proto: proto, Local: ap(local), State: StateEstablished, NetNS: 1}}
	if remote != "" {
		ev.Remote = ap(remote)
	}
	if p != nil {
		ev.Owner = evOwner(p)
	}
	return ev
}

// evStep is one step of an event timeline: events received at a time
// (applied as a batch), or a scan.
type evStep struct {
	at     float64
	events []SockEvent
	scan   bool
	socks  []Observed
}

func TestEventsIntoHistory(t *testing.T) {
	curl := proc(2000, 0, "curl")
	web := proc(900, -100, "nginx")
	systemd := proc(1, -1000, "systemd")
	dig := proc(3000, 0, "dig")
	a := proc(4000, 0.1, "nd-a")
	b := proc(4000, 0.9, "nd-b") // the same pid, reused
	host := addrs("127.0.0.1", "192.0.2.10")
	const (
		cli = "127.0.0.1:40000"
		srv = "127.0.0.1:80"
	)
	close := func(tm float64, proto Proto, local, remote string, cookie uint64) SockEvent {
		return sockEv(SockClose, tm, proto, local, remote, cookie, nil)
	}
	failed := sockEv(SockConnect, 1, ProtoTCP, cli, "127.0.0.1:81", 1, curl)
	failed.State = StateClose
	accepted := sockEv(SockAccept, 1, ProtoTCP, srv, cli, 2, systemd)
	accepted.Inherited = true
	connUDP := sockEv(SockDatagram, 1, ProtoUDP, "127.0.0.1:5000", "127.0.0.1:53", 3, dig)
	unconnUDP := connUDP
	unconnUDP.State = StateClose

	tests := []struct {
		name    string
		known   []*Process // processes the scanner's cache knows
		max     int
		steps   []evStep
		want    []string
		applied uint64
		missed  uint64
		evicted uint64
	}{{
		name: "a connection only events saw",
		steps: []evStep{
			{at: 0, scan: true},
			{at: 1.1, events: []SockEvent{sockEv(SockConnect, 1, ProtoTCP, cli, srv, 1, curl), close(1.02, ProtoTCP, cli, srv, 1)}},
			{at: 2, scan: true},
		},
		want:    []string{"tcp 127.0.0.1:40000->127.0.0.1:80 curl/2000 [1,1.02)"},
		applied: 2,
	}, {
		name: "events before a snapshot are applied first, later ones after it",
		steps: []evStep{
			{at: 0, scan: true},
			{at: 1.9, events: []SockEvent{sockEv(SockConnect, 1, ProtoTCP, cli, srv, 1, curl)}},
			// The scan at 2 still saw the socket, which closed at 2.25,
			// and got that close with the snapshot: applying the close
			// first would make the snapshot's socket a new one.
			{at: 2, events: []SockEvent{close(2.25, ProtoTCP, cli, srv, 1)}, scan: true,
				socks: []Observed{conn(cli, srv, 50, curl)}},
			{at: 3, scan: true},
		},
		known:   []*Process{curl},
		want:    []string{"tcp 127.0.0.1:40000->127.0.0.1:80 curl/2000 [1,2.25)"},
		applied: 2,
	}, {
		name:  "a connection scans saw too is one binding from the event",
		known: []*Process{curl},
		steps: []evStep{
			{at: 0.6, events: []SockEvent{sockEv(SockConnect, 0.5, ProtoTCP, cli, srv, 1, curl)}},
			{at: 1, scan: true, socks: []Observed{conn(cli, srv, 50, curl)}},
			{at: 2, scan: true, socks: []Observed{conn(cli, srv, 50, curl)}},
			{at: 2.4, events: []SockEvent{close(2.3, ProtoTCP, cli, srv, 1)}},
			{at: 3, scan: true},
		},
		want:    []string{"tcp 127.0.0.1:40000->127.0.0.1:80 curl/2000 [0.5,2.3)"},
		applied: 2,
	}, {
		name:  "an event arriving after the scan moves the start back",
		known: []*Process{curl},
		steps: []evStep{
			{at: 1, scan: true, socks: []Observed{conn(cli, srv, 50, curl)}},
			{at: 1.05, events: []SockEvent{sockEv(SockConnect, 0.95, ProtoTCP, cli, srv, 1, curl)}},
			{at: 2, scan: true},
		},
		want:    []string{"tcp 127.0.0.1:40000->127.0.0.1:80 curl/2000 [0.95,2)"},
		applied: 1,
	}, {
		name: "a thin owner gets the scan's details",
		steps: []evStep{
			{at: 0.6, events: []SockEvent{sockEv(SockConnect, 0.5, ProtoTCP, cli, srv, 1, curl)}},
			{at: 1, scan: true, socks: []Observed{conn(cli, srv, 50, curl)}},
		},
		want:    []string{"tcp 127.0.0.1:40000->127.0.0.1:80 curl/2000 [0.5,open) exe=/usr/bin/curl"},
		applied: 1,
	}, {
		name:  "another process holds the socket at the scan",
		known: []*Process{curl, web},
		steps: []evStep{
			{at: 0.6, events: []SockEvent{sockEv(SockConnect, 0.5, ProtoTCP, cli, srv, 1, curl)}},
			{at: 1, scan: true, socks: []Observed{conn(cli, srv, 50, web)}},
		},
		want: []string{
			"tcp 127.0.0.1:40000->127.0.0.1:80 curl/2000 [0.5,1)",
			"tcp 127.0.0.1:40000->127.0.0.1:80 nginx/900 [1,open)",
		},
		applied: 1,
	}, {
		name:  "a close names a scanned connection by its 5-tuple",
		known: []*Process{curl},
		steps: []evStep{
			{at: 1, scan: true, socks: []Observed{conn(cli, srv, 50, curl)}},
			{at: 1.6, events: []SockEvent{close(1.5, ProtoTCP, cli, srv, 99)}},
			{at: 2, scan: true},
		},
		want:    []string{"tcp 127.0.0.1:40000->127.0.0.1:80 curl/2000 [1,1.5)"},
		applied: 1,
	}, {
		name:  "an accept belongs to whoever a scan saw holding the listener",
		known: []*Process{web},
		steps: []evStep{
			{at: 0, scan: true, socks: []Observed{listen("0.0.0.0:80", 10, web)}},
			{at: 1.1, events: []SockEvent{accepted, close(1.2, ProtoTCP, srv, cli, 2)}},
			{at: 2, scan: true, socks: []Observed{listen("0.0.0.0:80", 10, web)}},
		},
		// The listener's interval attributes the connection.
		want:    []string{"tcp 0.0.0.0:80 nginx/900 [0,open)"},
		applied: 2,
	}, {
		name: "a server only events saw: listener and its connections",
		steps: []evStep{
			{at: 0, scan: true},
			{at: 1.1, events: []SockEvent{
				sockEv(SockListen, 0.9, ProtoTCP, srv, "", 5, systemd),
				accepted,
				close(1.05, ProtoTCP, srv, cli, 2),
				close(1.06, ProtoTCP, srv, "", 5),
			}},
			{at: 2, scan: true},
		},
		want:    []string{"tcp 127.0.0.1:80 systemd/1 [0.9,1.06)"},
		applied: 4,
	}, {
		name: "an unconnected UDP socket's datagram",
		steps: []evStep{
			{at: 0, scan: true},
			{at: 1.1, events: []SockEvent{unconnUDP, close(1.01, ProtoUDP, "127.0.0.1:5000", "", 3)}},
			{at: 2, scan: true},
		},
		want:    []string{"udp 127.0.0.1:5000->127.0.0.1:53 dig/3000 [1,1.01)"},
		applied: 2,
	}, {
		name:  "a connected UDP socket, then seen by a scan",
		known: []*Process{dig},
		steps: []evStep{
			{at: 1.1, events: []SockEvent{connUDP}},
			{at: 2, scan: true, socks: []Observed{{Socket: Socket{Proto: ProtoUDP, Local: ap("127.0.0.1:5000"),
				Remote: ap("127.0.0.1:53"), State: StateEstablished, Inode: 70, NetNS: 1}, Owner: dig}}},
		},
		want:    []string{"udp 127.0.0.1:5000->127.0.0.1:53 dig/3000 [1,open)"},
		applied: 1,
	}, {
		name:  "a connected UDP socket a scan saw before its first datagram",
		known: []*Process{dig},
		steps: []evStep{
			{at: 1, scan: true, socks: []Observed{{Socket: Socket{Proto: ProtoUDP, Local: ap("127.0.0.1:5000"),
				Remote: ap("127.0.0.1:53"), State: StateEstablished, Inode: 70, NetNS: 1}, Owner: dig}}},
			{at: 3.5, events: []SockEvent{func() SockEvent { e := connUDP; e.Time = at(3.25); return e }()}},
			{at: 4, scan: true, socks: []Observed{{Socket: Socket{Proto: ProtoUDP, Local: ap("127.0.0.1:5000"),
				Remote: ap("127.0.0.1:53"), State: StateEstablished, Inode: 70, NetNS: 1}, Owner: dig}}},
		},
		want:    []string{"udp 127.0.0.1:5000->127.0.0.1:53 dig/3000 [1,open)"},
		applied: 1,
	}, {
		name:  "a connection accepted by a worker of a listener only events saw",
		known: []*Process{systemd, web},
		steps: []evStep{
			{at: 0, scan: true},
			{at: 1.1, events: []SockEvent{sockEv(SockListen, 0.5, ProtoTCP, srv, "", 5, systemd), accepted}},
			{at: 2, scan: true, socks: []Observed{listen(srv, 10, systemd), conn(srv, cli, 11, web)}},
		},
		want: []string{
			"tcp 127.0.0.1:80 systemd/1 [0.5,open)",
			"tcp 127.0.0.1:80->127.0.0.1:40000 nginx/900 [1,open)",
		},
		applied: 2,
	}, {
		name:  "a datagram its socket's own binding attributes",
		known: []*Process{dig},
		steps: []evStep{
			{at: 0, scan: true},
			{at: 1.1, events: []SockEvent{sockEv(SockBind, 0.5, ProtoUDP, "0.0.0.0:5000", "", 3, dig), unconnUDP}},
			{at: 2, scan: true, socks: []Observed{udp("0.0.0.0:5000", 70, dig)}},
		},
		want:    []string{"udp 0.0.0.0:5000 dig/3000 [0.5,open)"},
		applied: 1,
	}, {
		name: "a failed connection attempt",
		steps: []evStep{
			{at: 1.3, events: []SockEvent{failed}},
		},
		want:    []string{"tcp 127.0.0.1:40000->127.0.0.1:81 curl/2000 [1,1.3)"},
		applied: 1,
	}, {
		name: "events without an owner, and TCP binds, say nothing",
		steps: []evStep{
			{at: 1.1, events: []SockEvent{
				sockEv(SockConnect, 1, ProtoTCP, cli, srv, 1, nil),
				sockEv(SockBind, 1, ProtoTCP, "127.0.0.1:7000", "", 2, curl),
				close(1.05, ProtoTCP, cli, srv, 1),
			}},
		},
		want: []string{},
	}, {
		name: "a missed close ends at the first scan without the socket",
		steps: []evStep{
			{at: 0, scan: true},
			{at: 1.1, events: []SockEvent{sockEv(SockConnect, 1, ProtoTCP, cli, srv, 1, curl)}},
			// NetNS 1 must be one the scans cover: another socket in it.
			{at: 2, scan: true, socks: []Observed{listen("0.0.0.0:22", 9, web)}},
			{at: 3, scan: true, socks: []Observed{listen("0.0.0.0:22", 9, web)}},
			{at: 4, scan: true, socks: []Observed{listen("0.0.0.0:22", 9, web)}},
		},
		want:    []string{"tcp 0.0.0.0:22 nginx/900 [2,open)", "tcp 127.0.0.1:40000->127.0.0.1:80 curl/2000 [1,2)"},
		applied: 1,
		missed:  1,
	}, {
		name:  "a socket one scan missed (dumps are not atomic) is not closed",
		known: []*Process{curl},
		steps: []evStep{
			{at: 0, scan: true},
			{at: 1.1, events: []SockEvent{sockEv(SockConnect, 1, ProtoTCP, cli, srv, 1, curl)}},
			{at: 2, scan: true, socks: []Observed{listen("0.0.0.0:22", 9, web)}},
			{at: 4.5}, // a batch of no events, after the grace
			{at: 5, scan: true, socks: []Observed{listen("0.0.0.0:22", 9, web), conn(cli, srv, 50, curl)}},
		},
		want:    []string{"tcp 0.0.0.0:22 nginx/900 [2,open)", "tcp 127.0.0.1:40000->127.0.0.1:80 curl/2000 [1,open)"},
		applied: 1,
	}, {
		name: "a socket in a namespace the scans do not cover stays open",
		steps: []evStep{
			{at: 1.1, events: []SockEvent{sockEv(SockConnect, 1, ProtoTCP, cli, srv, 1, curl)}},
			{at: 2, scan: true, socks: []Observed{{Socket: Socket{Proto: ProtoTCP, Local: ap("0.0.0.0:22"), State: StateListen, Inode: 9, NetNS: 2}, Owner: web}}},
			{at: 5, scan: true, socks: []Observed{{Socket: Socket{Proto: ProtoTCP, Local: ap("0.0.0.0:22"), State: StateListen, Inode: 9, NetNS: 2}, Owner: web}}},
		},
		want:    []string{"tcp 0.0.0.0:22 nginx/900 [2,open)", "tcp 127.0.0.1:40000->127.0.0.1:80 curl/2000 [1,open)"},
		applied: 1,
	}, {
		name: "a reused pid is another owner",
		steps: []evStep{
			{at: 1.1, events: []SockEvent{
				sockEv(SockConnect, 0.2, ProtoTCP, "127.0.0.1:40001", srv, 1, a),
				close(0.3, ProtoTCP, "127.0.0.1:40001", srv, 1),
				sockEv(SockConnect, 1, ProtoTCP, "127.0.0.1:40002", srv, 2, b),
				close(1.05, ProtoTCP, "127.0.0.1:40002", srv, 2),
			}},
		},
		want: []string{
			"tcp 127.0.0.1:40001->127.0.0.1:80 nd-a/4000 [0.2,0.3) start=0.1",
			"tcp 127.0.0.1:40002->127.0.0.1:80 nd-b/4000 [1,1.05) start=0.9",
		},
		applied: 4,
	}, {
		name: "beyond the bound the oldest socket is forgotten",
		max:  2,
		steps: []evStep{
			{at: 1.1, events: []SockEvent{
				sockEv(SockConnect, 1, ProtoTCP, "127.0.0.1:40001", srv, 1, curl),
				sockEv(SockConnect, 1.01, ProtoTCP, "127.0.0.1:40002", srv, 2, curl),
				sockEv(SockConnect, 1.02, ProtoTCP, "127.0.0.1:40003", srv, 3, curl),
			}},
		},
		want: []string{
			"tcp 127.0.0.1:40001->127.0.0.1:80 curl/2000 [1,1.02)",
			"tcp 127.0.0.1:40002->127.0.0.1:80 curl/2000 [1.01,open)",
			"tcp 127.0.0.1:40003->127.0.0.1:80 curl/2000 [1.02,open)",
		},
		applied: 3,
		evicted: 1,
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sc := &resolvingScanner{known: tc.known}
			var mu sync.Mutex
			now := at(0)
			clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
			tr, err := New(Options{Scanner: sc, StateDir: t.TempDir(), Host: "web1", Events: fakeEvents{}, Clock: clock, MaxEventSockets: tc.max})
			if err != nil {
				t.Fatal(err)
			}
			defer tr.Close()
			for _, st := range tc.steps {
				mu.Lock()
				now = at(st.at)
				mu.Unlock()
				for _, ev := range st.events {
					tr.receive(ev)
				}
				if st.scan {
					sc.set(at(st.at), host, st.socks...)
					if err := tr.ScanOnce(context.Background()); err != nil {
						t.Fatal(err)
					}
				} else {
					tr.applyQueued()
				}
			}
			if err := tr.flushEvents(); err != nil {
				t.Fatal(err)
			}
			all := strings.Join(tc.want, "\n")
			got := []string{}
			err = tr.History(context.Background(), time.Time{}, time.Time{}, func(b Binding) error {
				s := describeInterval(&b)
				if b.Owner != nil && strings.Contains(all, "exe=") {
					s += " exe=" + b.Owner.Exe
				}
				if b.Owner != nil && strings.Contains(all, "start=") {
					s += fmt.Sprint(" start=", b.Owner.StartTime.Sub(t0).Seconds())
				}
				got = append(got, s)
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			sort.Strings(got)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("history (-want +got):\n%s", diff)
			}
			st := tr.Stats().EventSource
			if st.Name != "fake" || st.Delivered != 7 || st.Applied != tc.applied || st.MissedCloses != tc.missed || st.Evictions != tc.evicted {
				t.Errorf("stats %+v: want applied %d, missed closes %d, evictions %d", st, tc.applied, tc.missed, tc.evicted)
			}
		})
	}
}

// scopedScanner covers network namespace 1 only.
type scopedScanner struct{ resolvingScanner }

func (*scopedScanner) CoversNetNS(ns uint64) bool { return ns == 1 }

// TestEventsOutsideTheScannersNamespaces: events of sockets in a network
// namespace the scanner does not list are not recorded.
func TestEventsOutsideTheScannersNamespaces(t *testing.T) {
	sc := &scopedScanner{}
	tr, err := New(Options{Scanner: sc, StateDir: t.TempDir(), Host: "web1", Events: fakeEvents{}, Clock: func() time.Time { return at(2) }})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	curl := proc(2000, 0, "curl")
	inside := sockEv(SockConnect, 1, ProtoTCP, "127.0.0.1:40000", "127.0.0.1:80", 1, curl)
	outside := sockEv(SockConnect, 1, ProtoTCP, "10.0.0.2:40000", "10.0.0.1:80", 2, curl)
	outside.NetNS = 2
	tr.receive(inside)
	tr.receive(outside)
	sc.set(at(2), addrs("127.0.0.1"))
	if err := tr.ScanOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	want := []string{"tcp 127.0.0.1:40000->127.0.0.1:80 curl/2000 [1,open)"}
	if diff := cmp.Diff(want, historyOf(t, tr)); diff != "" {
		t.Errorf("history (-want +got):\n%s", diff)
	}
	if st := tr.Stats().EventSource; st.Applied != 1 || st.Ignored != 1 {
		t.Errorf("stats %+v: want 1 applied, 1 ignored", st)
	}
}

// TestSockEventKinds: the eBPF source's kinds convert by number.
func TestSockEventKinds(t *testing.T) {
	for _, k := range []struct {
		ours SockEventKind
		ebpf ebpf.Kind
	}{
		{SockBind, ebpf.KindBind}, {SockListen, ebpf.KindListen}, {SockConnect, ebpf.KindConnect},
		{SockAccept, ebpf.KindAccept}, {SockDatagram, ebpf.KindDatagram}, {SockClose, ebpf.KindClose},
	} {
		if uint8(k.ours) != uint8(k.ebpf) || k.ours.String() != k.ebpf.String() {
			t.Errorf("%s (%d) vs ebpf %s (%d)", k.ours, k.ours, k.ebpf, k.ebpf)
		}
	}
}
