package remote

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/netdumper/netdumper/tracker"
)

// webTracker is a tracker with a listener, a UDP socket and a
// connection, after two scans.
func webTracker(t *testing.T, opts tracker.Options) *testTracker {
	t.Helper()
	tt := newTestTracker(t, "web1", "", opts)
	nginx, dns := proc(100, "nginx"), proc(200, "resolved")
	tt.step(t, addrs("192.0.2.10", "2001:db8::10"),
		listen("0.0.0.0:80", 1, nginx), udp("127.0.0.53:53", 2, dns))
	tt.step(t, addrs("192.0.2.10", "2001:db8::10"),
		listen("0.0.0.0:80", 1, nginx), udp("127.0.0.53:53", 2, dns),
		conn("192.0.2.10:40000", "198.51.100.7:443", 3, proc(300, "curl")))
	return tt
}

func TestSnapshot(t *testing.T) {
	tt := webTracker(t, tracker.Options{})
	ts := startServer(t, ServerOptions{Source: tt})
	c := newClient(t, ts.URL, ClientOptions{})
	got, err := c.Bindings(context.Background())
	if err != nil {
		t.Fatalf("Bindings: %v", err)
	}
	want := tt.Current()
	if diff := cmp.Diff(want, got, viewOpts...); diff != "" {
		t.Errorf("view (-tracker +client):\n%s", diff)
	}
	if len(got.Bindings) != 3 || got.Seq == 0 {
		t.Errorf("got %d bindings, seq %d; want 3 bindings and a sequence number", len(got.Bindings), got.Seq)
	}

	// The document is also a bindings file.
	_, body := rawGet(t, http.DefaultClient, ts.URL+"/v1/bindings", "")
	f, err := tracker.ReadFile(strings.NewReader(body), "bindings")
	if err != nil {
		t.Fatalf("/v1/bindings is not a bindings file: %v\n%s", err, body)
	}
	if diff := cmp.Diff(describe(want.Bindings), describe(f.Hosts[0].Bindings)); diff != "" {
		t.Errorf("bindings file view (-want +got):\n%s", diff)
	}
}

func TestHistoryWindow(t *testing.T) {
	tt := newTestTracker(t, "web1", "", tracker.Options{})
	a := addrs("192.0.2.10")
	web, old := proc(100, "web"), proc(101, "oldweb")
	tt.step(t, a, listen("0.0.0.0:8080", 1, old))                                       // 1
	tt.step(t, a, listen("0.0.0.0:8080", 1, old))                                       // 2
	tt.step(t, a)                                                                       // 3: old gone
	tt.step(t, a, listen("0.0.0.0:8080", 2, web))                                       // 4
	tt.step(t, a, listen("0.0.0.0:8080", 2, web), udp("0.0.0.0:53", 3, proc(5, "dns"))) // 5
	ts := startServer(t, ServerOptions{Source: tt})
	c := newClient(t, ts.URL, ClientOptions{})
	ctx := context.Background()

	tests := []struct {
		name     string
		from, to time.Time
	}{
		{"all", time.Time{}, time.Time{}},
		{"before the restart of the port", at(1), at(2)},
		{"after", at(4), at(4.5)},
		{"open start", time.Time{}, at(3.5)},
		{"open end", at(4.5), time.Time{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var want []tracker.Binding
			err := tt.History(ctx, tc.from, tc.to, func(b tracker.Binding) error {
				want = append(want, b)
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			hosts, err := c.HostHistory(ctx, tc.from, tc.to)
			if err != nil {
				t.Fatalf("HostHistory: %v", err)
			}
			if len(hosts) != 1 || hosts[0].Host != "web1" {
				t.Fatalf("hosts = %+v, want web1 only", hosts)
			}
			if diff := cmp.Diff(describe(want), describe(hosts[0].Bindings)); diff != "" {
				t.Errorf("history (-tracker +client):\n%s", diff)
			}
			if len(hosts[0].Addrs) != 1 {
				t.Errorf("addresses = %v, want 192.0.2.10", hosts[0].Addrs)
			}
			// Export is byte for byte what the tracker exports.
			var local, remote bytes.Buffer
			if err := tt.Export(ctx, &local, tc.from, tc.to); err != nil {
				t.Fatal(err)
			}
			if err := c.Export(ctx, &remote, tc.from, tc.to); err != nil {
				t.Fatalf("Export: %v", err)
			}
			if diff := cmp.Diff(local.String(), remote.String()); diff != "" {
				t.Errorf("export (-local +remote):\n%s", diff)
			}
		})
	}
	// The windows differ: the old owner is in the first, not the second.
	h1, _ := c.HostHistory(ctx, at(1), at(2))
	h2, _ := c.HostHistory(ctx, at(4), at(4.5))
	if got := describe(h1[0].Bindings); len(got) != 1 || !strings.Contains(got[0], "oldweb") {
		t.Errorf("window 1-2 = %v, want oldweb only", got)
	}
	if got := describe(h2[0].Bindings); len(got) != 1 || !strings.Contains(got[0], " web") {
		t.Errorf("window 4-4.5 = %v, want web only", got)
	}
}

func TestEventStream(t *testing.T) {
	tt := webTracker(t, tracker.Options{})
	ts := startServer(t, ServerOptions{Source: tt, Heartbeat: 50 * time.Millisecond})
	c := newClient(t, ts.URL, ClientOptions{})
	ctx := context.Background()
	v, err := c.Bindings(ctx)
	if err != nil {
		t.Fatal(err)
	}
	st, err := c.Events(ctx, v.Seq)
	if err != nil {
		t.Fatalf("Events: %v", err)
	}
	defer st.Close()
	if st.Host != "web1" {
		t.Errorf("stream host = %q", st.Host)
	}
	time.Sleep(120 * time.Millisecond) // heartbeats pass unseen
	a := addrs("192.0.2.10", "2001:db8::10")
	nginx2 := proc(101, "nginx")
	tt.step(t, a, listen("0.0.0.0:80", 1, nginx2), listen("[::]:443", 4, nginx2))
	want, err := tt.EventsSince(v.Seq)
	if err != nil {
		t.Fatal(err)
	}
	var got []tracker.Event
	for range want {
		e, err := st.Next()
		if err != nil {
			t.Fatalf("Next: %v", err)
		}
		got = append(got, e)
	}
	if diff := cmp.Diff(want, got, viewOpts...); diff != "" {
		t.Errorf("events (-tracker +client):\n%s", diff)
	}
	// A sequence number that left the ring (or is ahead) asks for a resync.
	if _, err := c.Events(ctx, v.Seq+1000); !errors.Is(err, ErrResync) {
		t.Errorf("Events(ahead) = %v, want ErrResync", err)
	}
}

func TestStreamOutlivesReadTimeout(t *testing.T) {
	tt := webTracker(t, tracker.Options{})
	ts := startServer(t, ServerOptions{Source: tt, Heartbeat: 50 * time.Millisecond, ReadTimeout: 100 * time.Millisecond})
	c := newClient(t, ts.URL, ClientOptions{StreamIdleTimeout: time.Second})
	st, err := c.Events(context.Background(), tt.Current().Seq)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	time.Sleep(300 * time.Millisecond)
	tt.step(t, addrs("192.0.2.10"))
	if _, err := st.Next(); err != nil {
		t.Fatalf("stream ended after the read timeout: %v", err)
	}
}

func TestMalformedParameters(t *testing.T) {
	tt := webTracker(t, tracker.Options{})
	ts := startServer(t, ServerOptions{Source: tt})
	tests := []struct {
		path, param string
	}{
		{"/v1/events?since=abc", `"since"`},
		{"/v1/events?since=-1", `"since"`},
		{"/v1/events?since=18446744073709551616", `"since"`},
		{"/v1/events?from=1", `"from"`},
		{"/v1/history?from=yesterday", `"from"`},
		{"/v1/history?to=2023-13-01T00:00:00Z", `"to"`},
		{"/v1/history?from=2023-11-14T22:00:00Z&to=2023-11-14T21:00:00Z", `"to"`},
		{"/v1/history?form=2023-11-14T22:00:00Z", `"form"`},
		{"/v1/history?from=2023-11-14T22:00:00Z&from=2023-11-14T22:00:00Z", `"from"`},
		{"/v1/history?from=%zz", `"from"`},
		{"/v1/bindings?x=1", `"x"`},
		// url.Values drops pairs with ';': the value checked must be the
		// value used, not silently ignored.
		{"/v1/events?since=abc;", `"since"`},
		{"/v1/history?to=garbage;", `"to"`},
		{"/v1/history?from=2023-11-14T22:00:00Z&to=2023-11-14T21:00:00Z;", `"to"`},
	}
	for _, tc := range tests {
		t.Run(tc.path, func(t *testing.T) {
			code, body := rawGet(t, http.DefaultClient, ts.URL+tc.path, "")
			var eb errorBody
			json.Unmarshal([]byte(body), &eb)
			if code != http.StatusBadRequest || !strings.HasPrefix(eb.Error, "parameter "+tc.param) {
				t.Errorf("GET %s = %d %s, want 400 naming %s", tc.path, code, body, tc.param)
			}
		})
	}
	// Good parameters pass.
	for _, p := range []string{"/v1/history?from=2023-11-14T22:00:00Z&to=2023-11-14T23:00:00.5%2B01:00", "/v1/bindings", "/healthz"} {
		if code, body := rawGet(t, http.DefaultClient, ts.URL+p, ""); code != http.StatusOK {
			t.Errorf("GET %s = %d %s, want 200", p, code, body)
		}
	}
}

func TestAuth(t *testing.T) {
	tt := webTracker(t, tracker.Options{})
	const token = "s3cret-token-0123456789abcdef"
	ts := startServer(t, ServerOptions{Source: tt, Token: token})
	hc := http.DefaultClient
	for _, path := range []string{"/v1/bindings", "/v1/history", "/v1/events?since=0", "/metrics", "/nothing"} {
		t.Run(path, func(t *testing.T) {
			if code, _ := rawGet(t, hc, ts.URL+path, ""); code != http.StatusUnauthorized {
				t.Errorf("no token: %d, want 401", code)
			}
			if code, _ := rawGet(t, hc, ts.URL+path, token+"x"); code != http.StatusUnauthorized {
				t.Errorf("wrong token: %d, want 401", code)
			}
			if code, _ := rawGet(t, hc, ts.URL+path, strings.ToUpper(token)); code != http.StatusUnauthorized {
				t.Errorf("wrong case token: %d, want 401", code)
			}
		})
	}
	if code, _ := rawGet(t, hc, ts.URL+"/healthz", ""); code != http.StatusOK {
		t.Errorf("healthz without token: %d, want 200", code)
	}
	if code, body := rawGet(t, hc, ts.URL+"/v1/bindings", token); code != http.StatusOK {
		t.Errorf("right token: %d %s", code, body)
	}
	// Scheme names are case-insensitive.
	req, _ := http.NewRequest(http.MethodGet, ts.URL+"/v1/bindings", nil)
	req.Header.Set("Authorization", "bearer "+token)
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("lower-case scheme: %d", resp.StatusCode)
	}
	// The client reports 401 as ErrUnauthorized, saying whether a token
	// was sent and where it came from (and no flag it was not given by).
	for _, tc := range []struct {
		name string
		opts ClientOptions
		want string
	}{
		{"wrong token", ClientOptions{Token: "wrong"}, "unauthorized (HTTP 401): the tracker refused the token"},
		{"wrong token from the environment", ClientOptions{Token: "wrong", TokenSource: "$NETDUMPER_TOKEN"},
			"unauthorized (HTTP 401): the tracker refused the token of $NETDUMPER_TOKEN"},
		{"no token", ClientOptions{}, "unauthorized (HTTP 401): no token was sent, and the tracker requires one"},
	} {
		c := newClient(t, ts.URL, tc.opts)
		_, err := c.Bindings(context.Background())
		if !errors.Is(err, ErrUnauthorized) || err == nil || !strings.HasSuffix(err.Error(), tc.want) ||
			strings.Contains(err.Error(), "--token-file") || strings.Contains(err.Error(), "unreachable") {
			t.Errorf("%s: %v, want ErrUnauthorized ending in %q", tc.name, err, tc.want)
		}
	}
	c := newClient(t, ts.URL, ClientOptions{Token: token})
	if _, err := c.Bindings(context.Background()); err != nil {
		t.Errorf("client with the token: %v", err)
	}
}

func TestMetrics(t *testing.T) {
	tt := webTracker(t, tracker.Options{})
	ts := startServer(t, ServerOptions{Source: tt})
	c := newClient(t, ts.URL, ClientOptions{})
	if _, err := c.Bindings(context.Background()); err != nil {
		t.Fatal(err)
	}
	st, err := c.Events(context.Background(), tt.Current().Seq)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	code, body := rawGet(t, http.DefaultClient, ts.URL+"/metrics", "")
	if code != http.StatusOK {
		t.Fatalf("/metrics: %d", code)
	}
	for _, want := range []string{
		"netdumper_bindings 3",
		"netdumper_scans_total 2",
		`netdumper_scan_duration_seconds{phase="scan"}`,
		`netdumper_http_requests_total{code="200",endpoint="bindings"} 1`,
		"netdumper_event_streams 1",
		"netdumper_subscribers 1",
		"netdumper_subscribers_dropped_total 0",
		"netdumper_events_total",
		"go_goroutines",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

// withEventSource is a Source whose tracker has an event source.
type withEventSource struct {
	Source
	es tracker.EventSourceStats
}

func (w withEventSource) Stats() tracker.Stats {
	s := w.Source.Stats()
	s.EventSource = w.es
	return s
}

// TestMetricsEventSource: the event source's counters are exported when
// the tracker has one, and absent when it only polls.
func TestMetricsEventSource(t *testing.T) {
	tt := webTracker(t, tracker.Options{})
	es := tracker.EventSourceStats{Name: "ebpf", Delivered: 11, RingbufDrops: 2, KernelDrops: 3, QueueDrops: 4,
		Unowned: 5, Lost: 6, Open: 7, MissedCloses: 8, Evictions: 9, Applied: 10, Ignored: 12}
	for _, tc := range []struct {
		name string
		src  Source
		want []string
		not  []string
	}{
		{"ebpf", withEventSource{tt, es}, []string{
			`netdumper_source_events_total{source="ebpf"} 11`,
			`netdumper_source_drops_total{source="ebpf",where="ringbuf"} 2`,
			`netdumper_source_drops_total{source="ebpf",where="kernel"} 3`,
			`netdumper_source_drops_total{source="ebpf",where="queue"} 4`,
			`netdumper_source_unowned_total{source="ebpf"} 5`,
			`netdumper_source_lost_total{source="ebpf"} 6`,
			`netdumper_source_sockets{source="ebpf"} 7`,
			`netdumper_source_evictions_total{reason="missed-close",source="ebpf"} 8`,
			`netdumper_source_evictions_total{reason="bound",source="ebpf"} 9`,
			`netdumper_source_applied_total{source="ebpf"} 10`,
			`netdumper_source_ignored_total{source="ebpf"} 12`,
		}, nil},
		{"poll", tt, nil, []string{"netdumper_source_"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ts := startServer(t, ServerOptions{Source: tc.src})
			code, body := rawGet(t, http.DefaultClient, ts.URL+"/metrics", "")
			if code != http.StatusOK {
				t.Fatalf("/metrics: %d", code)
			}
			for _, want := range tc.want {
				if !strings.Contains(body, want) {
					t.Errorf("/metrics lacks %q", want)
				}
			}
			for _, not := range tc.not {
				if strings.Contains(body, not) {
					t.Errorf("/metrics has %q", not)
				}
			}
		})
	}
}

func TestListenPolicy(t *testing.T) {
	tests := []struct {
		addr          string
		token, noAuth bool
		ok            bool
	}{
		{"127.0.0.1:7701", false, false, true},
		{"[::1]:7701", false, false, true},
		{"localhost:7701", false, false, true},
		{"127.0.0.2:7701", false, false, true},
		{"0.0.0.0:7701", false, false, false},
		{":7701", false, false, false},
		{"[::]:7701", false, false, false},
		{"192.0.2.1:7701", false, false, false},
		{"web1:7701", false, false, false},
		{"192.0.2.1:7701", true, false, true},
		{"192.0.2.1:7701", false, true, true},
	}
	for _, tc := range tests {
		err := CheckListen(tc.addr, tc.token, tc.noAuth)
		if (err == nil) != tc.ok || (err != nil && !errors.Is(err, ErrInsecureListen)) {
			t.Errorf("CheckListen(%q, token %v, no-auth %v) = %v, want ok %v", tc.addr, tc.token, tc.noAuth, err, tc.ok)
		}
	}
	// Serve applies it to its listener.
	tt := webTracker(t, tracker.Options{})
	srv, err := NewServer(ServerOptions{Source: tt})
	if err != nil {
		t.Fatal(err)
	}
	ln := &fakeAddrListener{Listener: mustListen(t), addr: "192.0.2.1:7701"}
	if err := srv.Serve(context.Background(), ln); !errors.Is(err, ErrInsecureListen) {
		t.Errorf("Serve on a non-loopback address without a token = %v, want ErrInsecureListen", err)
	}
}

func TestClientURLs(t *testing.T) {
	for _, bad := range []string{"ftp://x", "http://", "web1:7701", "http://x/?a=1", "http://u:p@x/"} {
		if _, err := NewClient(bad, ClientOptions{}); err == nil {
			t.Errorf("NewClient(%q) accepted", bad)
		}
	}
	c, err := NewClient("https://web1:7701/prefix/", ClientOptions{})
	if err != nil || c.URL() != "https://web1:7701/prefix" {
		t.Errorf("NewClient with prefix: %v %v", c, err)
	}
}

// TestErrorsAreJSON: an unknown path (404) and a method an endpoint does
// not take (405) are answered with a JSON error body, as every error.
func TestErrorsAreJSON(t *testing.T) {
	tt := webTracker(t, tracker.Options{})
	ts := startServer(t, ServerOptions{Source: tt})
	hc := &http.Client{Timeout: 5 * time.Second}
	defer hc.CloseIdleConnections()
	for _, tc := range []struct {
		method, path string
		code         int
		want, allow  string
	}{
		{http.MethodGet, "/nope", http.StatusNotFound, "not found: /nope", ""},
		{http.MethodGet, "/v1/", http.StatusNotFound, "not found: /v1/", ""},
		{http.MethodPost, "/v1/bindings", http.StatusMethodNotAllowed, "method not allowed: /v1/bindings takes GET, not POST", "GET, HEAD"},
		{http.MethodDelete, "/v1/history", http.StatusMethodNotAllowed, "method not allowed", "GET, HEAD"},
		{http.MethodPut, "/metrics", http.StatusMethodNotAllowed, "method not allowed", "GET, HEAD"},
		{http.MethodPost, "/v1/events", http.StatusMethodNotAllowed, "method not allowed", "GET"},
	} {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			req, err := http.NewRequest(tc.method, ts.URL+tc.path, nil)
			if err != nil {
				t.Fatal(err)
			}
			resp, err := hc.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			var eb errorBody
			if resp.StatusCode != tc.code || resp.Header.Get("Content-Type") != "application/json" ||
				json.Unmarshal(body, &eb) != nil || !strings.HasPrefix(eb.Error, tc.want) {
				t.Errorf("= %d %q %s, want %d and a JSON error starting %q", resp.StatusCode, resp.Header.Get("Content-Type"), body, tc.code, tc.want)
			}
			if got := resp.Header.Get("Allow"); got != tc.allow {
				t.Errorf("Allow %q, want %q", got, tc.allow)
			}
		})
	}
}

// TestEventsRefusesHead: HEAD on the event stream is refused. Answered as
// a stream, it would write into net/http's discard, never notice its
// client going, and hold one of the MaxStreams slots until shutdown.
func TestEventsRefusesHead(t *testing.T) {
	tt := webTracker(t, tracker.Options{})
	ts := startServer(t, ServerOptions{Source: tt, MaxStreams: 1})
	hc := &http.Client{Timeout: 5 * time.Second}
	defer hc.CloseIdleConnections()
	for range 3 {
		resp, err := hc.Head(ts.URL + "/v1/events")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != http.MethodGet {
			t.Fatalf("HEAD /v1/events = %d (Allow %q), want 405 allowing GET", resp.StatusCode, resp.Header.Get("Allow"))
		}
	}
	// The only stream slot is still free.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, ts.URL+"/v1/events", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("GET /v1/events after HEADs = %d, want 200", resp.StatusCode)
	}
}
