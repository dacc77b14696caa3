package tracker

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp/cmpopts"
)

// t0 is the start of every fake timeline.
var t0 = time.Date(2023, 11, 14, 22, 0, 0, 0, time.UTC)

// at returns t0 plus n seconds.
func at(n float64) time.Time { return t0.Add(time.Duration(n * float64(time.Second))) }

// fakeScanner returns the snapshot set last (a copy with the time set),
// or err.
type fakeScanner struct {
	mu    sync.Mutex
	snap  Snapshot
	err   error
	calls int
}

func (f *fakeScanner) set(tm time.Time, addrs []netip.Addr, socks ...Observed) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.snap = Snapshot{Time: tm, Sockets: socks, Addrs: addrs}
}

func (f *fakeScanner) Scan(ctx context.Context) (*Snapshot, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if f.err != nil {
		return nil, f.err
	}
	s := f.snap
	s.Sockets = slices.Clone(s.Sockets)
	return &s, nil
}

func proc(pid int32, start float64, name string) *Process {
	return &Process{PID: pid, StartTime: at(start), Name: name, Comm: name, Exe: "/usr/bin/" + name,
		Cmdline: name + " --serve", UID: 1000, User: "alice"}
}

func ap(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }

func addrs(ss ...string) []netip.Addr {
	out := []netip.Addr{}
	for _, s := range ss {
		out = append(out, netip.MustParseAddr(s))
	}
	return out
}

// listen is a TCP listener.
func listen(local string, inode uint64, p *Process) Observed {
	return Observed{Socket: Socket{Proto: ProtoTCP, Local: ap(local), State: StateListen, Inode: inode, NetNS: 1}, Owner: p}
}

// udp is an unconnected UDP socket.
func udp(local string, inode uint64, p *Process) Observed {
	return Observed{Socket: Socket{Proto: ProtoUDP, Local: ap(local), State: StateUnconn, Inode: inode, NetNS: 1}, Owner: p}
}

// conn is an established TCP connection.
func conn(local, remote string, inode uint64, p *Process) Observed {
	return Observed{Socket: Socket{Proto: ProtoTCP, Local: ap(local), Remote: ap(remote), State: StateEstablished, Inode: inode, NetNS: 1}, Owner: p}
}

// state returns o in another state.
func state(o Observed, s State) Observed { o.State = s; return o }

// inherited returns o as an inode-0 socket attributed to listener p.
func inherited(o Observed, p *Process) Observed {
	o.Inode, o.Owner, o.Inherited = 0, p, p != nil
	return o
}

// describe renders an event or binding compactly for comparisons.
func describeBinding(b *Binding) string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "%s %s", b.Proto, b.Local)
	if b.Connected() {
		fmt.Fprintf(&sb, "->%s", b.Remote)
	}
	if b.Owner != nil {
		fmt.Fprintf(&sb, " %s/%d", b.Owner.Name, b.Owner.PID)
	} else {
		sb.WriteString(" ?")
	}
	return sb.String()
}

func describeEvents(es []Event) []string {
	out := []string{}
	for _, e := range es {
		out = append(out, e.Kind.String()+" "+describeBinding(&e.Binding))
	}
	return out
}

// interval renders a history interval with times relative to t0.
func describeInterval(b *Binding) string {
	until := "open"
	if !b.Until.IsZero() {
		until = fmt.Sprint(b.Until.Sub(t0).Seconds())
	}
	return fmt.Sprintf("%s [%v,%s)", describeBinding(b), b.From.Sub(t0).Seconds(), until)
}

// historyOf returns the tracker's whole history, sorted.
func historyOf(t *testing.T, tr interface {
	History(context.Context, time.Time, time.Time, func(Binding) error) error
}) []string {
	t.Helper()
	out := []string{}
	err := tr.History(context.Background(), time.Time{}, time.Time{}, func(b Binding) error {
		out = append(out, describeInterval(&b))
		return nil
	})
	if err != nil {
		t.Fatalf("History: %v", err)
	}
	sort.Strings(out)
	return out
}

// newTestTracker returns a tracker on a fake scanner in a temporary state
// directory.
func newTestTracker(t *testing.T, dir string, opts Options) (*Tracker, *fakeScanner) {
	t.Helper()
	fs, ok := opts.Scanner.(*fakeScanner)
	if !ok {
		fs = &fakeScanner{}
		opts.Scanner = fs
	}
	if dir == "" {
		dir = t.TempDir()
	}
	opts.StateDir = dir
	if opts.Host == "" {
		opts.Host = "web1"
	}
	if opts.Clock == nil {
		opts.Clock = func() time.Time { return at(0) }
	}
	tr, err := New(opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { tr.Close() })
	return tr, fs
}

// step sets the scanner and scans once, returning the events.
func step(t *testing.T, tr *Tracker, fs *fakeScanner, tm float64, addrs []netip.Addr, socks ...Observed) []Event {
	t.Helper()
	before := tr.Current().Seq
	fs.set(at(tm), addrs, socks...)
	if err := tr.ScanOnce(context.Background()); err != nil {
		t.Fatalf("scan at %v: %v", tm, err)
	}
	evs, err := tr.EventsSince(before)
	if err != nil {
		t.Fatalf("EventsSince: %v", err)
	}
	return evs
}

func netipAddr(s string) netip.Addr { return netip.MustParseAddr(s) }

// equateAddrs lets go-cmp compare netip values.
var equateAddrs = cmpopts.EquateComparable(netip.Addr{}, netip.AddrPort{})
