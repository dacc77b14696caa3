package tracker

import (
	"context"
	"net/netip"
	"testing"
	"time"
)

// TestTrackerRealProcesses runs the tracker with the system scanner over
// real helper processes: a process's sockets appear with its pid and name,
// killing it produces unbound events and closed intervals, and after a
// second process binds the same port, a lookup at a past moment still
// names the first one while a lookup now names the second.
func TestTrackerRealProcesses(t *testing.T) {
	sc, err := NewSystemScanner(ScanOptions{})
	if err != nil {
		t.Fatal(err)
	}
	trk, err := New(Options{Scanner: sc, StateDir: t.TempDir(), Interval: 100 * time.Millisecond, Host: "itest"})
	if err != nil {
		t.Fatal(err)
	}
	defer trk.Close()
	defer sc.Close()
	ctx := context.Background()
	if err := trk.ScanOnce(ctx); err != nil {
		t.Fatal(err)
	}
	sub, err := trk.Subscribe(trk.Current().Seq, 1<<16)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()

	a := startHelper(t, helperOpts{comm: "nd-owner-a"})
	port := netip.MustParseAddrPort(a.info.TCP4)
	if err := trk.ScanOnce(ctx); err != nil {
		t.Fatal(err)
	}
	owner := func(v *View, ap netip.AddrPort) *Process {
		for i := range v.Bindings {
			b := &v.Bindings[i]
			if b.Proto == ProtoTCP && b.Local == ap && b.State == StateListen {
				return b.Owner
			}
		}
		return nil
	}
	if p := owner(trk.Current(), port); p == nil || p.PID != a.pid() || p.Name != "nd-owner-a" {
		t.Fatalf("listener %s: owner %+v, want pid %d nd-owner-a", port, p, a.pid())
	}
	whileA := time.Now()
	time.Sleep(50 * time.Millisecond)

	a.stop()
	if err := trk.ScanOnce(ctx); err != nil {
		t.Fatal(err)
	}
	evCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	var bound, unbound bool
	for !(bound && unbound) {
		ev, err := sub.Next(evCtx)
		if err != nil {
			t.Fatalf("waiting for events of %s: %v (bound %v, unbound %v)", port, err, bound, unbound)
		}
		if ev.Binding.Proto != ProtoTCP || ev.Binding.Local != port {
			continue
		}
		switch ev.Kind {
		case EventBound:
			bound = ev.Binding.Owner.PID == a.pid()
		case EventUnbound:
			unbound = ev.Binding.Owner != nil && ev.Binding.Owner.PID == a.pid() && !ev.Binding.Until.IsZero()
		}
	}
	time.Sleep(50 * time.Millisecond)

	b := startHelper(t, helperOpts{comm: "nd-owner-b", tcp4: port.String()})
	if err := trk.ScanOnce(ctx); err != nil {
		t.Fatal(err)
	}
	if p := owner(trk.Current(), port); p == nil || p.PID != b.pid() {
		t.Fatalf("after re-bind: owner %+v, want pid %d", p, b.pid())
	}

	// A's interval is closed in the history; B's is open.
	var closedA, openB bool
	err = trk.History(ctx, whileA.Add(-time.Minute), time.Now().Add(time.Minute), func(bd Binding) error {
		if bd.Proto == ProtoTCP && bd.Local == port && bd.State == StateListen {
			closedA = closedA || (bd.Owner.PID == a.pid() && !bd.Until.IsZero() && bd.Until.After(whileA))
			openB = openB || (bd.Owner.PID == b.pid() && bd.Until.IsZero())
		}
		return nil
	})
	if err != nil || !closedA || !openB {
		t.Fatalf("history: err %v, closed interval of A %v, open interval of B %v", err, closedA, openB)
	}

	// Lookups at a past moment and now, without tolerance.
	ix := NewIndexBuilder()
	if err := ix.AddHistory(ctx, trk, whileA.Add(-time.Minute), time.Now().Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	index := ix.Build(IndexOptions{Tolerance: -1})
	key := FlowKey{Proto: ProtoTCP, Src: netip.MustParseAddrPort("127.0.0.1:40000"), Dst: port}
	if m := index.Lookup(key, whileA, whileA); !m.OK() || m.Binding.Owner.PID != a.pid() || m.Side != SideDestination {
		t.Fatalf("lookup while A owned the port: %+v", m)
	}
	now := time.Now()
	if m := index.Lookup(key, now, now); !m.OK() || m.Binding.Owner.PID != b.pid() || m.Binding.Owner.Name != "nd-owner-b" {
		t.Fatalf("lookup now: %+v", m)
	}
}
