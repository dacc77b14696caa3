package tui

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/netdumper/netdumper/remote"
	"github.com/netdumper/netdumper/tracker"
)

// scriptScanner returns the snapshots it is given, one per scan.
type scriptScanner struct {
	mu    sync.Mutex
	snaps []*tracker.Snapshot
	err   error
}

func (s *scriptScanner) Scan(context.Context) (*tracker.Snapshot, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return nil, s.err
	}
	if len(s.snaps) > 1 {
		snap := s.snaps[0]
		s.snaps = s.snaps[1:]
		return snap, nil
	}
	return s.snaps[0], nil
}

func snapshot(at time.Time, ports ...uint16) *tracker.Snapshot {
	p := &tracker.Process{PID: 4242, Name: "nd-test", Comm: "nd-test", User: "root", StartTime: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	s := &tracker.Snapshot{Time: at, Addrs: []netip.Addr{netip.MustParseAddr("127.0.0.1")}}
	for _, port := range ports {
		s.Sockets = append(s.Sockets, tracker.Observed{Socket: tracker.Socket{Proto: tracker.ProtoTCP,
			Local: netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port), State: tracker.StateListen,
			Inode: uint64(100000 + int(port))}, Owner: p})
	}
	return s
}

func TestTrackerSource(t *testing.T) {
	t0 := time.Now().UTC().Add(-10 * time.Second).Truncate(time.Second)
	sc := &scriptScanner{snaps: []*tracker.Snapshot{snapshot(t0, 80, 443), snapshot(t0.Add(time.Second), 443)}}
	trk, err := tracker.New(tracker.Options{Scanner: sc, Host: "testhost", Interval: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer trk.Close()
	src := NewTrackerSource(trk, "local", 100*time.Millisecond)
	src.now = func() time.Time { return t0.Add(time.Second) }
	if h := src.Health(); h.State != HealthConnecting {
		t.Fatalf("health before the first scan: %+v", h)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	// Wait returns once a scan publishes events.
	done := make(chan error, 1)
	go func() { done <- src.Wait(ctx) }()
	if err := trk.ScanOnce(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if v := src.Current(); v == nil || len(v.Bindings) != 2 {
		t.Fatalf("current view %+v", v)
	}
	if h := src.Health(); h.State != HealthOK {
		t.Fatalf("health after a scan: %+v", h)
	}
	if err := trk.ScanOnce(ctx); err != nil {
		t.Fatal(err)
	}
	if err := src.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	if v := src.Current(); len(v.Bindings) != 1 {
		t.Fatalf("after port 80 closed: %d bindings", len(v.Bindings))
	}
	closed, err := src.Closed(ctx, t0.Add(-time.Minute), t0.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if len(closed) != 1 || closed[0].Local.Port() != 80 || closed[0].Until.IsZero() || closed[0].Host != "testhost" {
		t.Fatalf("closed bindings: %+v", closed)
	}

	// Scans failing for a while: down; then late scans without errors:
	// stale.
	src.now = func() time.Time { return t0.Add(time.Minute) }
	if h := src.Health(); h.State != HealthStale {
		t.Fatalf("health with old scans: %+v", h)
	}
	sc.mu.Lock()
	sc.err = errors.New("netlink: permission denied")
	sc.mu.Unlock()
	if err := trk.ScanOnce(ctx); err == nil {
		t.Fatal("scan did not fail")
	}
	if h := src.Health(); h.State != HealthDown {
		t.Fatalf("health with failing scans: %+v", h)
	}

	// With no events, Wait still returns within a few intervals (so the
	// status line stays current), and returns ctx's error when it ends.
	start := time.Now()
	if err := src.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("idle Wait took %v", d)
	}
	c2, cancel2 := context.WithCancel(ctx)
	cancel2()
	if err := src.Wait(c2); !errors.Is(err, context.Canceled) {
		t.Errorf("Wait after cancel: %v", err)
	}
}

func TestMirrorSource(t *testing.T) {
	t0 := time.Now().UTC().Add(-10 * time.Second).Truncate(time.Second)
	sc := &scriptScanner{snaps: []*tracker.Snapshot{snapshot(t0, 80, 443), snapshot(t0.Add(time.Second), 443)}}
	trk, err := tracker.New(tracker.Options{Scanner: sc, Host: "remotehost", Interval: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer trk.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := trk.ScanOnce(ctx); err != nil {
		t.Fatal(err)
	}
	srv, err := remote.NewServer(remote.ServerOptions{Source: trk})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	serve := func(ln net.Listener) *http.Server {
		hs := &http.Server{Handler: srv}
		go hs.Serve(ln)
		return hs
	}
	hs := serve(ln)
	defer func() { hs.Close() }()

	c, err := remote.NewClient("http://"+addr, remote.ClientOptions{Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	m := remote.NewMirror(c, remote.MirrorOptions{MinBackoff: 20 * time.Millisecond, MaxBackoff: 100 * time.Millisecond})
	done := make(chan struct{})
	go func() {
		defer close(done)
		m.Run(ctx)
	}()
	defer func() {
		cancel()
		<-done
	}()
	src := NewMirrorSource(m, "")
	if src.Name() != "http://"+addr {
		t.Errorf("name %q", src.Name())
	}
	waitHealth := func(what string, ok func(Health, *tracker.View) bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for !ok(src.Health(), src.Current()) {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s: health %+v", what, src.Health())
			}
			wctx, wcancel := context.WithTimeout(ctx, 200*time.Millisecond)
			src.Wait(wctx)
			wcancel()
		}
	}
	waitHealth("the first sync", func(h Health, v *tracker.View) bool {
		return h.State == HealthOK && v != nil && len(v.Bindings) == 2
	})
	hs.Close()
	waitHealth("the disconnect", func(h Health, v *tracker.View) bool {
		return h.State == HealthStale && v != nil && len(v.Bindings) == 2
	})
	// The status line names the source already: its detail goes
	// straight to the reason, which a narrow line would cut otherwise.
	if h := src.Health(); strings.Contains(h.Detail, "http://"+addr) || !strings.HasPrefix(h.Detail, "reconnecting (") {
		t.Errorf("detail while disconnected: %q", h.Detail)
	}
	// Changes made while the tracker was unreachable arrive after the
	// reconnection.
	if err := trk.ScanOnce(ctx); err != nil {
		t.Fatal(err)
	}
	ln, err = net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("cannot listen on %s again: %v", addr, err)
	}
	hs = serve(ln)
	waitHealth("the reconnection", func(h Health, v *tracker.View) bool {
		return h.State == HealthOK && v != nil && len(v.Bindings) == 1
	})
	closed, err := src.Closed(ctx, t0.Add(-time.Minute), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if len(closed) != 1 || closed[0].Local.Port() != 80 || closed[0].Host != "remotehost" {
		t.Fatalf("closed: %+v", closed)
	}
}
