package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/netdumper/netdumper/remote"
	"github.com/netdumper/netdumper/tracker"
)

// fakeScanner returns a fixed snapshot.
type fakeScanner struct {
	mu   sync.Mutex
	snap tracker.Snapshot
}

func (f *fakeScanner) Scan(ctx context.Context) (*tracker.Snapshot, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := f.snap
	s.Sockets = slices.Clone(s.Sockets)
	return &s, nil
}

var cmdT0 = time.Date(2023, 11, 14, 22, 0, 0, 0, time.UTC)

// fakeTracker returns a tracker of host with a listener of process name,
// after a scan at cmdT0.
func fakeTracker(t *testing.T, dir, host, name string) *tracker.Tracker {
	t.Helper()
	p := &tracker.Process{PID: 42, StartTime: cmdT0.Add(-time.Hour), Name: name, Exe: "/usr/bin/" + name, UID: 0, User: "root"}
	fs := &fakeScanner{snap: tracker.Snapshot{Time: cmdT0, Addrs: []netip.Addr{netip.MustParseAddr("192.0.2.1")},
		Sockets: []tracker.Observed{{Socket: tracker.Socket{Proto: tracker.ProtoTCP, Local: netip.MustParseAddrPort("0.0.0.0:22"),
			State: tracker.StateListen, Inode: 7}, Owner: p}}}}
	tr, err := tracker.New(tracker.Options{Scanner: fs, StateDir: dir, Host: host, Clock: func() time.Time { return cmdT0 }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close() })
	if err := tr.ScanOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	return tr
}

// serveTracker serves tr on loopback with token until the test ends.
func serveTracker(t *testing.T, tr *tracker.Tracker, token string) string {
	t.Helper()
	srv, err := remote.NewServer(remote.ServerOptions{Source: tr, Token: token})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { srv.Serve(ctx, ln); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return "http://" + ln.Addr().String()
}

func writeToken(t *testing.T, tok string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(p, []byte(tok+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestBindingsFromTrackers(t *testing.T) {
	u1 := serveTracker(t, fakeTracker(t, t.TempDir(), "web1", "sshd"), "tok1")
	u2 := serveTracker(t, fakeTracker(t, t.TempDir(), "db1", "sshd-db"), "tok2")
	tok1, tok2 := writeToken(t, "tok1"), writeToken(t, "tok2")

	r := runNetdumper(t, "UTC", "bindings", "--tracker", u1, "--token-file", tok1)
	want := "PROTO  LOCAL       REMOTE  STATE   PID  PROCESS  USER\ntcp    0.0.0.0:22  *       listen  42   sshd     root\n"
	if r.code != 0 || r.stdout != want {
		t.Errorf("bindings --tracker: exit %d\n%s\nstderr: %s\nwant:\n%s", r.code, r.stdout, r.stderr, want)
	}
	// Two trackers with their own tokens: a HOST column.
	r = runNetdumper(t, "UTC", "bindings", "--tracker", u1, "--token-file", tok1, "--tracker", u2+"#token-file="+tok2)
	if r.code != 0 || !strings.Contains(r.stdout, "HOST") || !strings.Contains(r.stdout, "db1 ") || !strings.Contains(r.stdout, "sshd-db") {
		t.Errorf("two trackers: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	// JSON is a bindings file.
	r = runNetdumper(t, "UTC", "bindings", "--json", "--tracker", u1, "--token-file", tok1)
	f, err := tracker.ReadFile(strings.NewReader(r.stdout), "stdout")
	if r.code != 0 || err != nil || len(f.Hosts) != 1 || f.Hosts[0].Host != "web1" || len(f.Hosts[0].Bindings) != 1 {
		t.Errorf("--json: exit %d, %v\n%s", r.code, err, r.stdout)
	}
	// A wrong token fails clearly; a tracker that answers is still shown.
	r = runNetdumper(t, "UTC", "bindings", "--tracker", u1, "--token-file", tok2, "--tracker", u2+"#token-file="+tok2)
	if r.code != 1 || !strings.Contains(r.stderr, u1) || !strings.Contains(r.stderr, "unauthorized") || !strings.Contains(r.stdout, "sshd-db") {
		t.Errorf("wrong token: exit %d\nstdout %s\nstderr %s", r.code, r.stdout, r.stderr)
	}
	r = runNetdumper(t, "UTC", "bindings", "--tracker", "web1:7701")
	if r.code != 2 {
		t.Errorf("bad URL: exit %d, want 2: %s", r.code, r.stderr)
	}
}

// TestBindingsTrackerFailures: each tracker that fails is named once, on
// its own line, with the right reason (a refused token is not
// "unreachable", and names where the token came from); when none
// answers, stdout stays empty.
func TestBindingsTrackerFailures(t *testing.T) {
	u1 := serveTracker(t, fakeTracker(t, t.TempDir(), "web1", "sshd"), "tok1")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := "http://" + ln.Addr().String()
	ln.Close()
	wrong := writeToken(t, "wrong")
	for _, tc := range []struct {
		name string
		env  string // $NETDUMPER_TOKEN
		args []string
		want []string // one line each, in order, then the summary
		not  []string
	}{
		{"down and no token", "", []string{"--tracker", down, "--tracker", u1},
			[]string{"tracker " + down + ": dial tcp", "tracker " + u1 + ": unauthorized (HTTP 401): no token was sent, and the tracker requires one"},
			[]string{"--token-file", "unreachable"}},
		{"token from the environment", "wrong", []string{"--tracker", u1},
			[]string{"tracker " + u1 + ": unauthorized (HTTP 401): the tracker refused the token of $NETDUMPER_TOKEN"},
			[]string{"--token-file", "unreachable"}},
		{"token file", "", []string{"--tracker", u1, "--token-file", wrong},
			[]string{"tracker " + u1 + ": unauthorized (HTTP 401): the tracker refused the token of --token-file " + wrong},
			[]string{"unreachable"}},
		{"json", "", []string{"--json", "--tracker", down},
			[]string{"tracker " + down + ": dial tcp"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			getenv := func(k string) string {
				if k == tokenEnv {
					return tc.env
				}
				return ""
			}
			code := run(context.Background(), append([]string{"bindings", "--tracker-timeout", "5s"}, tc.args...),
				env{stdin: strings.NewReader(""), stdout: &stdout, stderr: &stderr, getenv: getenv})
			if code != exitFailure || stdout.Len() != 0 {
				t.Errorf("exit %d, stdout %q; want %d and nothing", code, stdout.String(), exitFailure)
			}
			lines := strings.Split(strings.TrimSuffix(stderr.String(), "\n"), "\n")
			if len(lines) != len(tc.want)+1 {
				t.Fatalf("stderr has %d lines, want %d:\n%s", len(lines), len(tc.want)+1, stderr.String())
			}
			for i, w := range tc.want {
				if !strings.HasPrefix(lines[i], "netdumper: "+w) {
					t.Errorf("line %d: %q, want it to start with %q", i+1, lines[i], "netdumper: "+w)
				}
			}
			trackers := fmt.Sprintf("%d trackers", len(tc.want))
			if len(tc.want) == 1 {
				trackers = "1 tracker"
			}
			if sum := fmt.Sprintf("netdumper: %d of %s failed", len(tc.want), trackers); lines[len(tc.want)] != sum {
				t.Errorf("last line %q, want %q", lines[len(tc.want)], sum)
			}
			for _, n := range tc.not {
				if strings.Contains(stderr.String(), n) {
					t.Errorf("stderr mentions %q:\n%s", n, stderr.String())
				}
			}
		})
	}
}

func TestExport(t *testing.T) {
	dir := t.TempDir()
	tr := fakeTracker(t, dir, "web1", "sshd")
	var want bytes.Buffer
	if err := tr.Export(context.Background(), &want, time.Time{}, time.Time{}); err != nil {
		t.Fatal(err)
	}
	url := serveTracker(t, tr, "tok")
	tok := writeToken(t, "tok")

	// From a tracker.
	r := runNetdumper(t, "UTC", "bindings", "export", "--tracker", url, "--token-file", tok)
	if r.code != 0 || r.stdout != want.String() {
		t.Errorf("export --tracker: exit %d\n%s\nstderr %s\nwant\n%s", r.code, r.stdout, r.stderr, want.String())
	}
	// The store is locked by the running tracker: through serve.json.
	if err := tracker.WriteDaemonInfo(dir, tracker.DaemonInfo{PID: os.Getpid(), Host: "web1", API: url, TokenFile: tok}); err != nil {
		t.Fatal(err)
	}
	r = runNetdumper(t, "UTC", "bindings", "export", "--state", dir, "--from", "2023-11-14T21:00:00Z")
	if r.code != 0 || r.stdout != want.String() {
		t.Errorf("export while serve runs: exit %d\n%s\nstderr %s", r.code, r.stdout, r.stderr)
	}
	// Once the tracker is gone: from the store, where what was still open
	// ends at the last scan (nothing has watched it since).
	tr.Close()
	ro, err := tracker.OpenStore(dir, tracker.StoreOptions{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	last := *tracker.FileTime(ro.LastScan())
	ro.Close()
	closed := strings.ReplaceAll(want.String(), `"until": null`, `"until": "`+last+`"`)
	if closed == want.String() {
		t.Fatalf("no open interval in the export:\n%s", closed)
	}
	r = runNetdumper(t, "UTC", "bindings", "export", "--state", dir, "--to", "1m")
	if r.code != 0 || r.stdout != closed {
		t.Errorf("export from the store: exit %d\n%s\nstderr %s\nwant\n%s", r.code, r.stdout, r.stderr, closed)
	}
	for _, bad := range [][]string{{"--from", "yesterday"}, {"--from", "2023-11-14T22:00:00Z", "--to", "2023-11-14T21:00:00Z"},
		{"--tracker", url, "--token-file", tok}} { // --state and --tracker: one source or the other
		if r := runNetdumper(t, "UTC", append([]string{"bindings", "export", "--state", dir}, bad...)...); r.code != 2 {
			t.Errorf("export %v: exit %d, want 2", bad, r.code)
		}
	}
}

// TestTrackerClientCertFlagsPaired: --tls-cert without --tls-key (or the
// reverse) is a usage error that names both flags, in every command that
// asks trackers, before anything is asked.
func TestTrackerClientCertFlagsPaired(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"bindings", []string{"bindings"}},
		{"export", []string{"bindings", "export"}},
		{"enrich", []string{"enrich", "--yes", dir}},
		{"tui", []string{"tui", "--dir", dir}},
	} {
		for _, half := range [][]string{{"--tls-cert", "c.pem"}, {"--tls-key", "k.pem"}} {
			t.Run(tc.name+" "+half[0], func(t *testing.T) {
				args := append(append(tc.args, "--tracker", "http://127.0.0.1:1"), half...)
				r := runNetdumper(t, "UTC", args...)
				if r.code != exitUsage || !strings.Contains(r.stderr, "--tls-cert") || !strings.Contains(r.stderr, "--tls-key") {
					t.Errorf("exit %d, stderr %q; want %d naming --tls-cert and --tls-key", r.code, r.stderr, exitUsage)
				}
			})
		}
	}
}

func TestServeRefusesInsecureListen(t *testing.T) {
	r := runNetdumper(t, "UTC", "serve", "--state", t.TempDir(), "--listen", "0.0.0.0:7799")
	if r.code != 2 || !strings.Contains(r.stderr, "non-loopback") || !strings.Contains(r.stderr, "--insecure-no-auth") {
		t.Errorf("serve on 0.0.0.0 without a token: exit %d, stderr %s", r.code, r.stderr)
	}
	r = runNetdumper(t, "UTC", "serve", "--state", t.TempDir(), "--tls-cert", "x.crt")
	if r.code != 2 {
		t.Errorf("--tls-cert without --tls-key: exit %d, stderr %s", r.code, r.stderr)
	}
	r = runNetdumper(t, "UTC", "serve", "--state", t.TempDir(), "--log-format", "xml")
	if r.code != 2 {
		t.Errorf("--log-format xml: exit %d, stderr %s", r.code, r.stderr)
	}
	r = runNetdumper(t, "UTC", "serve", "--state", t.TempDir(), "--source", "kprobe")
	if r.code != 2 || !strings.Contains(r.stderr, "auto, ebpf or poll") {
		t.Errorf("--source kprobe: exit %d, stderr %s", r.code, r.stderr)
	}
}
