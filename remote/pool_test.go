package remote

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/netdumper/netdumper/tracker"
)

func TestParseTarget(t *testing.T) {
	tests := []struct {
		in            string
		url, tokFile  string
		wantErrSubstr string
	}{
		{in: "http://127.0.0.1:7701", url: "http://127.0.0.1:7701"},
		{in: "https://web1:7701#token-file=/etc/netdumper/web1.token", url: "https://web1:7701", tokFile: "/etc/netdumper/web1.token"},
		{in: "https://web1:7701/#token-file=a%20b", url: "https://web1:7701/", tokFile: "a b"},
		{in: "web1:7701", wantErrSubstr: "http://"},
		{in: "https://web1:7701#token=abc", wantErrSubstr: `unknown option "token"`},
		{in: "https://web1:7701#token-file=", wantErrSubstr: "one path"},
		{in: "https://#token-file=x", wantErrSubstr: "no host"},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseTarget(tc.in)
			if tc.wantErrSubstr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErrSubstr) {
					t.Fatalf("ParseTarget = %+v, %v; want an error with %q", got, err, tc.wantErrSubstr)
				}
				return
			}
			if err != nil || got.URL != tc.url || got.TokenFile != tc.tokFile {
				t.Fatalf("ParseTarget = %+v, %v; want %s and %q", got, err, tc.url, tc.tokFile)
			}
		})
	}
}

// TestPoolRoutesByAddressOwnership runs two trackers whose hosts both
// listen on 0.0.0.0:8080; flows to each host's address go to that host.
// A third tracker is down: the others answer, and its failure is in the
// PoolError of each request, for the caller to report; the pool does not
// report it again in its log above debug level.
func TestPoolRoutesByAddressOwnership(t *testing.T) {
	a := newTestTracker(t, "hostA", "", tracker.Options{})
	b := newTestTracker(t, "hostB", "", tracker.Options{})
	webA, webB, cli := proc(10, "web-a"), proc(20, "web-b"), proc(21, "client-b")
	for range 3 {
		a.step(t, addrs("192.0.2.1"), listen("0.0.0.0:8080", 1, webA))
		b.step(t, addrs("192.0.2.2"), listen("0.0.0.0:8080", 1, webB),
			conn("192.0.2.2:40000", "192.0.2.1:8080", 2, cli))
	}
	const tokA, tokB = "token-of-a", "token-of-b"
	sa := startServer(t, ServerOptions{Source: a, Token: tokA})
	sb := startServer(t, ServerOptions{Source: b, Token: tokB})
	dead := mustListen(t)
	deadURL := "http://" + dead.Addr().String()
	dead.Close()

	var logs syncBuffer
	pool, err := NewPool([]Target{{URL: sa.URL, Token: tokA}, {URL: deadURL}, {URL: sb.URL}},
		ClientOptions{Token: tokB, Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var ix *tracker.Index
	for range 3 {
		ix, err = pool.Index(ctx, at(0), at(3), tracker.IndexOptions{})
		var pe *PoolError
		if !errors.As(err, &pe) || len(pe.Failed) != 1 || pe.Failed[0].URL != deadURL {
			t.Fatalf("Index error = %v, want the dead tracker only", err)
		}
	}
	if n := strings.Count(logs.String(), "level=DEBUG msg=\"tracker failed\""); n != 1 || !strings.Contains(logs.String(), deadURL) {
		t.Errorf("the dead tracker's failure was logged %d times at debug level, want once with its URL:\n%s", n, logs.String())
	}
	if strings.Contains(logs.String(), "level=WARN") || strings.Contains(logs.String(), "level=ERROR") {
		t.Errorf("the pool reports the failure its caller reports:\n%s", logs.String())
	}
	key := func(src, dst string) tracker.FlowKey {
		return tracker.FlowKey{Proto: tracker.ProtoTCP, Src: ap(src), Dst: ap(dst)}
	}
	tests := []struct {
		name       string
		flow       tracker.FlowKey
		host, proc string
		kind       tracker.MatchKind
	}{
		{"server side of A", key("192.0.2.1:8080", "192.0.2.2:40000"), "hostA", "web-a", tracker.MatchWildcard},
		{"client side on B", key("192.0.2.2:40000", "192.0.2.1:8080"), "hostB", "client-b", tracker.MatchExact},
		{"to B's server", key("198.51.100.9:5000", "192.0.2.2:8080"), "hostB", "web-b", tracker.MatchWildcard},
		{"to A's server", key("198.51.100.9:5000", "192.0.2.1:8080"), "hostA", "web-a", tracker.MatchWildcard},
		{"to neither", key("198.51.100.9:5000", "192.0.2.3:8080"), "", "", tracker.MatchNone},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := ix.Lookup(tc.flow, at(2), at(2))
			if m.Kind != tc.kind {
				t.Fatalf("match %v, want %v", m.Kind, tc.kind)
			}
			if tc.kind == tracker.MatchNone {
				return
			}
			if m.Binding.Host != tc.host || m.Binding.Owner.Name != tc.proc {
				t.Errorf("matched %s on %s, want %s on %s", m.Binding.Owner.Name, m.Binding.Host, tc.proc, tc.host)
			}
		})
	}

	// Pool.Add (for enrich) gives the same, and Bindings the current views.
	ib := tracker.NewIndexBuilder()
	if err := pool.Add(ctx, ib, at(0), at(3)); err == nil {
		t.Error("Add hid the dead tracker")
	}
	if got := ib.Build(tracker.IndexOptions{}).Hosts(); len(got) != 2 {
		t.Errorf("Add indexed hosts %v, want hostA and hostB", got)
	}
	views, err := pool.Bindings(ctx)
	if err == nil || views[0] == nil || views[1] != nil || views[2] == nil || views[2].Host != "hostB" {
		t.Errorf("Bindings = %v, %v", views, err)
	}
}

func TestPoolSameHostNames(t *testing.T) {
	a := newTestTracker(t, "localhost", "", tracker.Options{})
	b := newTestTracker(t, "localhost", "", tracker.Options{})
	a.step(t, addrs("192.0.2.1"), listen("0.0.0.0:80", 1, proc(1, "a")))
	b.step(t, addrs("192.0.2.2"), listen("0.0.0.0:80", 1, proc(2, "b")))
	sa, sb := startServer(t, ServerOptions{Source: a}), startServer(t, ServerOptions{Source: b})
	pool, err := NewPool([]Target{{URL: sa.URL}, {URL: sb.URL}}, ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ix, err := pool.Index(context.Background(), time.Time{}, time.Time{}, tracker.IndexOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// Each keeps its own addresses: a flow to 192.0.2.2 is b's.
	m := ix.Lookup(tracker.FlowKey{Proto: tracker.ProtoTCP, Src: ap("198.51.100.1:1000"), Dst: ap("192.0.2.2:80")}, at(1), at(1))
	if !m.OK() || m.Binding.Owner.Name != "b" || !strings.HasPrefix(m.Binding.Host, "localhost@") {
		t.Errorf("match %+v, want b on a renamed host", m)
	}
	if _, err := NewPool([]Target{{URL: sa.URL}, {URL: sa.URL + "/"}}, ClientOptions{}); err == nil {
		t.Error("the same tracker twice accepted")
	}
}

// stalledTracker accepts connections and answers each request with the
// status line and headers of an error whose body never comes, until the
// test ends.
func stalledTracker(t *testing.T, status string) string {
	t.Helper()
	ln := mustListen(t)
	done := make(chan struct{})
	var wg sync.WaitGroup
	t.Cleanup(func() { close(done); ln.Close(); wg.Wait() })
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				buf := make([]byte, 4096)
				c.Read(buf)
				io.WriteString(c, "HTTP/1.1 "+status+"\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{")
				<-done
			})
		}
	})
	return "http://" + ln.Addr().String()
}

// TestStalledErrorBody: a tracker that sends an error status and then
// stalls in its body is given up after the client's Timeout, and does not
// hold up the other trackers of a pool.
func TestStalledErrorBody(t *testing.T) {
	const timeout = 300 * time.Millisecond
	bad := stalledTracker(t, "503 Service Unavailable")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	c := newClient(t, bad, ClientOptions{Timeout: timeout})
	start := time.Now()
	_, err := c.Bindings(ctx)
	if el := time.Since(start); err == nil || el > 5*timeout {
		t.Errorf("Bindings from a stalled tracker: %v after %v, want an error within about %v", err, el, timeout)
	}

	good := startServer(t, ServerOptions{Source: webTracker(t, tracker.Options{})})
	p, err := NewPool([]Target{{URL: good.URL}, {URL: bad}}, ClientOptions{Timeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	hs, err := p.History(ctx, time.Time{}, time.Time{})
	el := time.Since(start)
	var pe *PoolError
	if !errors.As(err, &pe) || len(pe.Failed) != 1 || pe.Failed[0].URL != bad || el > 5*timeout {
		t.Fatalf("Pool.History with one stalled tracker: %v after %v, want a PoolError naming only %s within about %v", err, el, bad, timeout)
	}
	if len(hs) != 1 {
		t.Errorf("Pool.History returned %d hosts, want the good tracker's one", len(hs))
	}
}
