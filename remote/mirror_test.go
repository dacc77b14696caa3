package remote

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/netdumper/netdumper/tracker"
)

// runMirror runs a mirror of url until the test ends.
func runMirror(t *testing.T, url string, copts ClientOptions, mopts MirrorOptions) *Mirror {
	t.Helper()
	if mopts.MinBackoff == 0 {
		mopts.MinBackoff, mopts.MaxBackoff = 20*time.Millisecond, 100*time.Millisecond
	}
	m := NewMirror(newClient(t, url, copts), mopts)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		m.Run(ctx)
		close(done)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return m
}

// waitMirror waits until the mirror shows the tracker's current view
// and its stream is up.
func waitMirror(t *testing.T, m *Mirror, tt *testTracker) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		want := tt.Current()
		got := m.Current()
		// Connected too: the view is installed just before the status is
		// set, and a test that stops the server next must find the stream
		// up, or it cannot see a reconnect.
		if got != nil && got.Seq == want.Seq && m.Status().Connected {
			if diff := cmp.Diff(describe(want.Bindings), describe(got.Bindings)); diff != "" {
				t.Fatalf("mirror at seq %d differs (-tracker +mirror):\n%s", got.Seq, diff)
			}
			return
		}
		if time.Now().After(deadline) {
			var seq uint64
			if got != nil {
				seq = got.Seq
			}
			t.Fatalf("mirror at seq %d, tracker at %d; status %+v", seq, want.Seq, m.Status())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// churn scans n times, each binding one more port.
func churn(t *testing.T, tt *testTracker, n int) {
	t.Helper()
	p := proc(500, "churn")
	base := len(tt.Current().Bindings)
	for i := range n {
		socks := []tracker.Observed{}
		for j := range i%5 + 1 {
			socks = append(socks, listen(fmt.Sprintf("10.0.0.1:%d", 1000+base+i+j), uint64(10000+base+i+j), p))
		}
		tt.step(t, addrs("10.0.0.1"), socks...)
	}
}

func TestMirrorFollowsEvents(t *testing.T) {
	tt := webTracker(t, tracker.Options{})
	ts := startServer(t, ServerOptions{Source: tt})
	m := runMirror(t, ts.URL, ClientOptions{}, MirrorOptions{})
	waitMirror(t, m, tt)
	churn(t, tt, 20)
	waitMirror(t, m, tt)
	if s := m.Status(); !s.Connected || s.Resyncs != 0 || s.Host != "web1" {
		t.Errorf("status %+v, want connected, no resync", s)
	}
}

func TestMirrorReconnectsAfterServerRestart(t *testing.T) {
	tt := webTracker(t, tracker.Options{})
	ts := startServer(t, ServerOptions{Source: tt})
	m := runMirror(t, ts.URL, ClientOptions{}, MirrorOptions{})
	waitMirror(t, m, tt)

	ts.stop()
	waitFor(t, "the mirror to notice", 5*time.Second, func() bool { return !m.Status().Connected })
	churn(t, tt, 5) // within the ring: no resync needed
	startServerAt(t, ts.addr, ServerOptions{Source: tt})
	waitMirror(t, m, tt)
	s := m.Status()
	if !s.Connected || s.Resyncs != 0 || s.Reconnect == 0 {
		t.Errorf("status %+v, want reconnected without resync", s)
	}
}

func TestMirrorResyncsAfterGap(t *testing.T) {
	tt := webTracker(t, tracker.Options{RingSize: 8})
	ts := startServer(t, ServerOptions{Source: tt})
	m := runMirror(t, ts.URL, ClientOptions{}, MirrorOptions{})
	waitMirror(t, m, tt)

	ts.stop()
	waitFor(t, "the mirror to notice", 5*time.Second, func() bool { return !m.Status().Connected })
	churn(t, tt, 20) // far more events than the ring holds
	startServerAt(t, ts.addr, ServerOptions{Source: tt})
	waitMirror(t, m, tt)
	if s := m.Status(); s.Resyncs == 0 {
		t.Errorf("status %+v, want a resync", s)
	}
}

func TestMirrorResyncsAfterTrackerRestart(t *testing.T) {
	dir := t.TempDir()
	tt := newTestTracker(t, "web1", dir, tracker.Options{})
	tt.step(t, addrs("10.0.0.1"), listen("0.0.0.0:22", 1, proc(1, "sshd")))
	ts := startServer(t, ServerOptions{Source: tt})
	m := runMirror(t, ts.URL, ClientOptions{}, MirrorOptions{})
	waitMirror(t, m, tt)

	ts.stop()
	tt.Close()
	tt2 := newTestTracker(t, "web1", dir, tracker.Options{})
	tt2.now = 10
	tt2.step(t, addrs("10.0.0.1"), listen("0.0.0.0:22", 1, proc(1, "sshd")), listen("0.0.0.0:25", 2, proc(2, "smtpd")))
	startServerAt(t, ts.addr, ServerOptions{Source: tt2})
	waitMirror(t, m, tt2)
	if s := m.Status(); s.Resyncs == 0 {
		t.Errorf("status %+v, want a resync after the tracker restarted", s)
	}
}

// TestMirrorBacksOffInStreamResyncs: a tracker that drops the mirror's
// stream with a resync as soon as it is up (a client it finds too slow)
// must not make the mirror fetch the whole view in a tight loop: in-stream
// resyncs back off like refused streams.
func TestMirrorBacksOffInStreamResyncs(t *testing.T) {
	tt := webTracker(t, tracker.Options{})
	srv, err := NewServer(ServerOptions{Source: tt})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	views := 0
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/events" {
			if r.URL.Path == "/v1/bindings" {
				mu.Lock()
				views++
				mu.Unlock()
			}
			srv.ServeHTTP(w, r)
			return
		}
		seq := tt.Current().Seq
		w.Header().Set("Content-Type", "application/x-ndjson")
		enc := json.NewEncoder(w)
		enc.Encode(Message{Type: MsgHello, Seq: seq, Host: "web1"})
		enc.Encode(Message{Type: MsgResync, Seq: seq, Error: "subscriber too slow"})
	}))
	defer ts.Close()
	m := runMirror(t, ts.URL, ClientOptions{}, MirrorOptions{MinBackoff: 20 * time.Millisecond, MaxBackoff: 100 * time.Millisecond})
	time.Sleep(time.Second)
	mu.Lock()
	n := views
	mu.Unlock()
	// With backoff (10 ms .. 100 ms between tries): about 12 in a second.
	if n < 2 || n > 40 {
		t.Errorf("the mirror fetched the view %d times in 1 s of resyncs, want a few (backing off)", n)
	}
	if s := m.Status(); s.Resyncs == 0 {
		t.Errorf("status %+v, want resyncs counted", s)
	}
}

func TestMirrorReportsDownOnce(t *testing.T) {
	ln := mustListen(t)
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	var logs syncBuffer
	logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	m := runMirror(t, "http://"+addr, ClientOptions{}, MirrorOptions{Logger: logger})
	waitFor(t, "several attempts", 5*time.Second, func() bool {
		return m.Status().Err != nil
	})
	time.Sleep(300 * time.Millisecond) // a few retries at 20-100 ms
	tt := webTracker(t, tracker.Options{})
	startServerAt(t, addr, ServerOptions{Source: tt})
	waitMirror(t, m, tt)
	// The mirror may hold the tracker's state a moment before it records
	// the connection (and logs the recovery): wait for the report.
	waitFor(t, "the recovery report", 5*time.Second, func() bool {
		return strings.Contains(logs.String(), "tracker answers again")
	})
	out := logs.String()
	if n := strings.Count(out, "tracker failed"); n != 1 {
		t.Errorf("down reported %d times, want once:\n%s", n, out)
	}
	if !strings.Contains(out, addr) || !strings.Contains(out, "connection refused") {
		t.Errorf("report does not name the URL and the reason:\n%s", out)
	}
}

// syncBuffer is a bytes.Buffer safe for concurrent use.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// smallBuffers makes the server's connections to chosen clients use a
// small send buffer, and those clients a small receive buffer, so that a
// client that does not read blocks the server's writes soon. The server's
// writes to a patient client have no deadline: they wait for it however
// long the test takes to start reading.
type smallBuffers struct {
	net.Listener
	mu      sync.Mutex
	small   map[string]bool
	patient map[string]bool
}

func (l *smallBuffers) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &smallConn{Conn: c, l: l}, nil
}

type smallConn struct {
	net.Conn
	l    *smallBuffers
	once sync.Once
}

func (c *smallConn) Write(p []byte) (int, error) {
	c.once.Do(func() {
		c.l.mu.Lock()
		small := c.l.small[c.RemoteAddr().String()]
		c.l.mu.Unlock()
		if small {
			c.Conn.(*net.TCPConn).SetWriteBuffer(4096)
		}
	})
	return c.Conn.Write(p)
}

func (c *smallConn) isPatient() bool {
	c.l.mu.Lock()
	defer c.l.mu.Unlock()
	return c.l.patient[c.RemoteAddr().String()]
}

func (c *smallConn) SetWriteDeadline(t time.Time) error {
	if c.isPatient() {
		return nil
	}
	return c.Conn.SetWriteDeadline(t)
}

func (c *smallConn) SetDeadline(t time.Time) error {
	if c.isPatient() {
		return c.Conn.SetReadDeadline(t)
	}
	return c.Conn.SetDeadline(t)
}

// transport dials connections the listener treats as small (and, with
// patient, as never timing out the server's writes).
func (l *smallBuffers) transport(patient bool) *http.Transport {
	d := &net.Dialer{}
	return &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := d.DialContext(ctx, network, addr)
		if err == nil {
			c.(*net.TCPConn).SetReadBuffer(4096)
			l.mu.Lock()
			l.small[c.LocalAddr().String()] = true
			l.patient[c.LocalAddr().String()] = patient
			l.mu.Unlock()
		}
		return c, err
	}}
}

func TestSlowClientDroppedOthersUnaffected(t *testing.T) {
	tt := webTracker(t, tracker.Options{RingSize: 500})
	ln := &smallBuffers{Listener: mustListen(t), small: map[string]bool{}, patient: map[string]bool{}}
	srv, err := NewServer(ServerOptions{Source: tt, StreamBuffer: 1000, WriteTimeout: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	sctx, stop := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(sctx, ln) }()
	defer func() { stop(); <-served }()
	url := "http://" + ln.Addr().String()
	ctx := context.Background()
	since := tt.Current().Seq

	fast := runMirror(t, url, ClientOptions{}, MirrorOptions{})
	waitMirror(t, fast, tt)
	// Two slow clients: A reads once it has been dropped, B never reads.
	// The server's writes to A wait without a deadline: otherwise A would
	// have to start reading within WriteTimeout of its first blocked
	// write, which a loaded machine does not always manage (A is then
	// dropped for the write timeout too and sees EOF, not a resync).
	slowA, err := newClient(t, url, ClientOptions{Transport: ln.transport(true)}).Events(ctx, since)
	if err != nil {
		t.Fatal(err)
	}
	defer slowA.Close()
	slowClient := newClient(t, url, ClientOptions{Transport: ln.transport(false)})
	slowB, err := slowClient.Events(ctx, since)
	if err != nil {
		t.Fatal(err)
	}
	defer slowB.Close()

	p := proc(600, "burst")
	for i := range 30 {
		socks := []tracker.Observed{}
		// 600 events (200 kB), more than the small buffers take: the
		// slow clients' streams block on the first batch.
		for j := range 300 {
			socks = append(socks, listen(fmt.Sprintf("10.1.%d.%d:%d", i, j%250, 2000+j), uint64(20000+i*1000+j), p))
		}
		tt.step(t, addrs("10.0.0.1"), socks...)
		waitMirror(t, fast, tt) // the fast client keeps up meanwhile
		if tt.Stats().DroppedSubscribers >= 2 {
			break
		}
	}
	if d := tt.Stats().DroppedSubscribers; d != 2 {
		t.Fatalf("tracker dropped %d subscribers, want the 2 slow ones", d)
	}
	if s := fast.Status(); s.Resyncs != 0 || !s.Connected {
		t.Errorf("fast client: %+v, want no resync", s)
	}

	// A, reading now, is told to resync at the end of what was sent.
	var errA error
	for errA == nil {
		_, errA = slowA.Next()
	}
	if !errors.Is(errA, ErrResync) {
		t.Errorf("slow client A: stream ended with %v, want ErrResync", errA)
	}
	// B's writes time out; when it comes back, its events are gone.
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, body := rawGet(t, http.DefaultClient, url+"/metrics", "")
		if strings.Contains(body, `netdumper_event_streams_dropped_total{reason="write-timeout"} 1`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the write timeout did not drop B:\n%s", grepLines(body, "stream"))
		}
		time.Sleep(50 * time.Millisecond)
	}
	if _, err := slowClient.Events(ctx, slowB.Last()); !errors.Is(err, ErrResync) {
		t.Errorf("slow client B reconnecting: %v, want ErrResync", err)
	}
	_, body := rawGet(t, http.DefaultClient, url+"/metrics", "")
	for _, want := range []string{
		`netdumper_event_streams_dropped_total{reason="slow"} 1`,
		"netdumper_subscribers_dropped_total 2",
		"netdumper_event_streams 1", // the fast one
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %q:\n%s", want, grepLines(body, "stream"))
		}
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

func TestStreamLimit(t *testing.T) {
	tt := webTracker(t, tracker.Options{})
	ts := startServer(t, ServerOptions{Source: tt, MaxStreams: 2})
	c := newClient(t, ts.URL, ClientOptions{})
	ctx := context.Background()
	for range 2 {
		st, err := c.Events(ctx, tt.Current().Seq)
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
	}
	_, err := c.Events(ctx, tt.Current().Seq)
	var se *StatusError
	if !errors.As(err, &se) || se.Code != http.StatusServiceUnavailable || !se.Temporary() {
		t.Errorf("third stream: %v, want 503", err)
	}
}
