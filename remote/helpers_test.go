package remote

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/netdumper/netdumper/tracker"
)

// t0 is the start of every fake timeline.
var t0 = time.Date(2023, 11, 14, 22, 0, 0, 0, time.UTC)

func at(n float64) time.Time { return t0.Add(time.Duration(n * float64(time.Second))) }

// fakeScanner returns the snapshot set last.
type fakeScanner struct {
	mu   sync.Mutex
	snap tracker.Snapshot
}

func (f *fakeScanner) set(tm time.Time, addrs []netip.Addr, socks ...tracker.Observed) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.snap = tracker.Snapshot{Time: tm, Sockets: socks, Addrs: addrs}
}

func (f *fakeScanner) Scan(ctx context.Context) (*tracker.Snapshot, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s := f.snap
	s.Sockets = slices.Clone(s.Sockets)
	return &s, nil
}

func proc(pid int32, name string) *tracker.Process {
	return &tracker.Process{PID: pid, StartTime: at(-100), Name: name, Comm: name, Exe: "/usr/bin/" + name,
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

// owned sets the socket's uid to its owner's, as the kernel reports it.
func owned(o tracker.Observed) tracker.Observed {
	if o.Owner != nil {
		o.UID = o.Owner.UID
	}
	return o
}

func listen(local string, inode uint64, p *tracker.Process) tracker.Observed {
	return owned(tracker.Observed{Socket: tracker.Socket{Proto: tracker.ProtoTCP, Local: ap(local), State: tracker.StateListen, Inode: inode, NetNS: 1}, Owner: p})
}

func udp(local string, inode uint64, p *tracker.Process) tracker.Observed {
	return owned(tracker.Observed{Socket: tracker.Socket{Proto: tracker.ProtoUDP, Local: ap(local), State: tracker.StateUnconn, Inode: inode, NetNS: 1}, Owner: p})
}

func conn(local, remote string, inode uint64, p *tracker.Process) tracker.Observed {
	return owned(tracker.Observed{Socket: tracker.Socket{Proto: tracker.ProtoTCP, Local: ap(local), Remote: ap(remote), State: tracker.StateEstablished, Inode: inode, NetNS: 1}, Owner: p})
}

// testTracker is a tracker on a fake scanner.
type testTracker struct {
	*tracker.Tracker
	fs  *fakeScanner
	dir string
	now float64
}

func newTestTracker(t *testing.T, host, dir string, opts tracker.Options) *testTracker {
	t.Helper()
	fs := &fakeScanner{}
	if dir == "" {
		dir = t.TempDir()
	}
	opts.Scanner, opts.StateDir, opts.Host = fs, dir, host
	if opts.Clock == nil {
		opts.Clock = func() time.Time { return at(0) }
	}
	tr, err := tracker.New(opts)
	if err != nil {
		t.Fatalf("tracker.New: %v", err)
	}
	t.Cleanup(func() { tr.Close() })
	return &testTracker{Tracker: tr, fs: fs, dir: dir}
}

// step scans the given state one second after the previous one.
func (tt *testTracker) step(t *testing.T, addrs []netip.Addr, socks ...tracker.Observed) {
	t.Helper()
	tt.now++
	tt.fs.set(at(tt.now), addrs, socks...)
	if err := tt.ScanOnce(context.Background()); err != nil {
		t.Fatalf("scan: %v", err)
	}
}

// testServer is a Server on a loopback listener.
type testServer struct {
	*Server
	URL    string
	addr   string
	cancel context.CancelFunc
	done   chan error
}

func startServer(t *testing.T, opts ServerOptions) *testServer {
	t.Helper()
	return startServerAt(t, "127.0.0.1:0", opts)
}

func startServerAt(t *testing.T, addr string, opts ServerOptions) *testServer {
	t.Helper()
	srv, err := NewServer(opts)
	if err != nil {
		t.Fatalf("NewServer: %v", err)
	}
	return serveServerAt(t, addr, srv)
}

// serveServer serves srv on a loopback port.
func serveServer(t *testing.T, srv *Server) *testServer {
	t.Helper()
	return serveServerAt(t, "127.0.0.1:0", srv)
}

func serveServerAt(t *testing.T, addr string, srv *Server) *testServer {
	t.Helper()
	var ln net.Listener
	var err error
	for range 50 { // the port of a restarted server may linger briefly
		ln, err = net.Listen("tcp", addr)
		if err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ts := &testServer{Server: srv, addr: ln.Addr().String(), cancel: cancel, done: make(chan error, 1)}
	scheme := "http"
	if srv.opts.TLS != nil {
		scheme = "https"
	}
	ts.URL = scheme + "://" + ts.addr
	go func() { ts.done <- srv.Serve(ctx, ln) }()
	t.Cleanup(ts.stop)
	return ts
}

// stop shuts the server down and waits for Serve to return.
func (ts *testServer) stop() {
	ts.cancel()
	if ts.done != nil {
		<-ts.done
		ts.done = nil
	}
}

func newClient(t *testing.T, url string, opts ClientOptions) *Client {
	t.Helper()
	c, err := NewClient(url, opts)
	if err != nil {
		t.Fatalf("NewClient: %v", err)
	}
	t.Cleanup(c.CloseIdleConnections)
	return c
}

// rawGet sends a GET with an optional token and returns status and body.
func rawGet(t *testing.T, hc *http.Client, url, token string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// viewOpts compare views: the wire carries neither comm nor cgroup, and
// owners are compared by value.
var viewOpts = []cmp.Option{
	cmpopts.EquateComparable(netip.Addr{}, netip.AddrPort{}),
	cmpopts.IgnoreFields(tracker.Process{}, "Comm", "Cgroup"),
	cmpopts.EquateEmpty(),
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// describe renders bindings compactly.
func describe(bs []tracker.Binding) []string {
	out := []string{}
	for _, b := range bs {
		s := fmt.Sprintf("%s %s", b.Proto, b.Local)
		if b.Connected() {
			s += "->" + b.Remote.String()
		}
		if b.Owner != nil {
			s += " " + b.Owner.Name
		}
		out = append(out, s)
	}
	slices.Sort(out)
	return out
}

// fakeAddrListener reports another address than it listens on.
type fakeAddrListener struct {
	net.Listener
	addr string
}

func (l *fakeAddrListener) Addr() net.Addr {
	a, _ := net.ResolveTCPAddr("tcp", l.addr)
	return a
}

func mustListen(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}
