package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/netdumper/netdumper/remote"
	"github.com/netdumper/netdumper/tracker"
)

func TestTUIDir(t *testing.T) {
	for _, tc := range []struct {
		name       string
		files      []string // created in the working directory
		given      string
		want       string
		wantSample bool
	}{
		{"source tree", []string{"go.mod", "testdata/flows/2023/11/14/nfcapd.202311142210"}, "", sampleDir, true},
		{"flow directory", []string{"nfcapd.202311142210", "testdata/flows/x"}, "", ".", false},
		{"nfcapd -S layout", []string{"2023/11/14/nfcapd.202311142210"}, "", ".", false},
		{"empty", nil, "", ".", false},
		{"given", []string{"testdata/flows/x"}, "/var/cache/nfdump", "/var/cache/nfdump", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wd := t.TempDir()
			for _, f := range tc.files {
				p := filepath.Join(wd, f)
				if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(p, nil, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			t.Chdir(wd)
			dir, sample := tuiDir(tc.given)
			if dir != tc.want || sample != tc.wantSample {
				t.Errorf("tuiDir(%q) = %q, %v; want %q, %v", tc.given, dir, sample, tc.want, tc.wantSample)
			}
		})
	}
}

func TestTUIUsage(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"tui"}, "tui needs a terminal"},
		{[]string{"tui", "extra"}, "unknown command"},
		{[]string{"tui", "--nope"}, "unknown flag"},
		// Flag values are checked before the terminal, and as serve checks
		// them.
		{[]string{"tui", "--interval", "1ms"}, "--interval 1ms: at least 100ms"},
		{[]string{"tui", "--tolerance", "-1s"}, "--tolerance -1s"},
		{[]string{"tui", "--tracker-timeout", "0s"}, "--tracker-timeout 0s"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			var out, errb bytes.Buffer
			code := run(context.Background(), tc.args, env{stdin: strings.NewReader(""), stdout: &out, stderr: &errb,
				getenv: func(string) string { return "" }})
			if code != exitUsage || !strings.Contains(errb.String(), tc.want) {
				t.Errorf("exit %d, stderr %q; want %d and %q", code, errb.String(), exitUsage, tc.want)
			}
		})
	}
}

func TestCopyTree(t *testing.T) {
	src, dst := t.TempDir(), t.TempDir()
	for _, f := range []string{"a/b/nfcapd.202311142210", "bindings.json"} {
		p := filepath.Join(src, f)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(f), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := copyTree(src, dst); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"a/b/nfcapd.202311142210", "bindings.json"} {
		if b, err := os.ReadFile(filepath.Join(dst, f)); err != nil || string(b) != f {
			t.Errorf("%s: %q %v", f, b, err)
		}
	}
}

// fixedScanner is a scanner with nothing to see.
type fixedScanner struct{}

func (fixedScanner) Scan(context.Context) (*tracker.Snapshot, error) {
	return &tracker.Snapshot{Time: time.Now()}, nil
}

func TestTUILiveSources(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	e := env{stdin: strings.NewReader(""), stdout: io.Discard, stderr: io.Discard, getenv: func(string) string { return "" }}

	t.Run("follows a running serve", func(t *testing.T) {
		state := t.TempDir()
		trk, err := tracker.New(tracker.Options{Scanner: fixedScanner{}, Host: "served", StateDir: state})
		if err != nil {
			t.Fatal(err)
		}
		defer trk.Close()
		srv, err := remote.NewServer(remote.ServerOptions{Source: trk})
		if err != nil {
			t.Fatal(err)
		}
		ts := httptest.NewServer(srv)
		defer ts.Close()
		if err := tracker.WriteDaemonInfo(state, tracker.DaemonInfo{PID: os.Getpid(), Host: "served", API: ts.URL}); err != nil {
			t.Fatal(err)
		}
		live, srcs, runs, notes, closeAll, err := liveSources(e, &tuiOptions{state: state}, log)
		if err != nil {
			t.Fatal(err)
		}
		defer closeAll()
		if len(live) != 1 || live[0].Name() != "serve" || len(srcs) != 1 || srcs[0].Name() != state || len(runs) != 1 {
			t.Fatalf("live %v, sources %v, runs %d", live, srcs, len(runs))
		}
		// The serve holds the state directory: its history comes through
		// its API.
		if err := srcs[0].Add(t.Context(), tracker.NewIndexBuilder(), time.Now().Add(-time.Minute), time.Now()); err != nil {
			t.Errorf("history from the running serve: %v", err)
		}
		if len(notes) != 1 || !strings.Contains(notes[0], ts.URL) {
			t.Errorf("notes %q", notes)
		}
	})

	t.Run("no tracker", func(t *testing.T) {
		live, srcs, runs, _, closeAll, err := liveSources(e, &tuiOptions{state: t.TempDir(), noTracker: true}, log)
		if err != nil {
			t.Fatal(err)
		}
		defer closeAll()
		if len(live) != 0 || len(srcs) != 0 || len(runs) != 0 {
			t.Fatalf("live %v, sources %v, runs %d", live, srcs, len(runs))
		}
	})

	t.Run("state locked: private history", func(t *testing.T) {
		state := t.TempDir()
		holder, err := tracker.New(tracker.Options{Scanner: fixedScanner{}, StateDir: state})
		if err != nil {
			t.Fatal(err)
		}
		defer holder.Close()
		live, srcs, runs, notes, closeAll, err := liveSources(e, &tuiOptions{state: state, interval: time.Second}, log)
		if err != nil {
			t.Fatal(err)
		}
		defer closeAll()
		if len(live) == 0 {
			t.Skipf("no embedded tracker here: %q", notes)
		}
		if len(runs) != 1 || len(srcs) != 2 || !strings.Contains(strings.Join(notes, " "), "temporary history") {
			t.Fatalf("sources %v, runs %d, notes %q", srcs, len(runs), notes)
		}
		// The serve's history is still read through the state directory
		// (it answers "locked" until the daemon's API is known).
		if srcs[1].Name() != state {
			t.Errorf("second source %q, want the state directory", srcs[1].Name())
		}
	})
}

// oneListener is a scanner that sees one listener, owned by "recorded".
type oneListener struct{ port uint16 }

func (s oneListener) Scan(context.Context) (*tracker.Snapshot, error) {
	return &tracker.Snapshot{Time: time.Now(), Sockets: []tracker.Observed{{
		Socket: tracker.Socket{Proto: tracker.ProtoTCP, Local: netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), s.port),
			State: tracker.StateListen, Inode: 1},
		Owner: &tracker.Process{PID: 42, Name: "recorded"},
	}}}, nil
}

// TestTUIServeStopped: the TUI started while a serve ran; once that serve
// has stopped, the preview and the commit still find the history it
// recorded in the state directory (as enrich does), instead of failing
// on the serve's closed API.
func TestTUIServeStopped(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	e := env{stdin: strings.NewReader(""), stdout: io.Discard, stderr: io.Discard, getenv: func(string) string { return "" }}
	state := t.TempDir()
	// What the serve recorded before it stopped.
	rec, err := tracker.New(tracker.Options{Scanner: oneListener{port: 7777}, StateDir: state, Host: "served"})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	if err := rec.ScanOnce(ctx); err != nil {
		t.Fatal(err)
	}
	if err := rec.Close(); err != nil {
		t.Fatal(err)
	}
	srv, err := remote.NewServer(remote.ServerOptions{Source: rec})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv)
	if err := tracker.WriteDaemonInfo(state, tracker.DaemonInfo{PID: os.Getpid(), Host: "served", API: ts.URL}); err != nil {
		t.Fatal(err)
	}
	_, srcs, _, _, closeAll, err := liveSources(e, &tuiOptions{state: state}, log)
	if err != nil {
		t.Fatal(err)
	}
	defer closeAll()
	// The serve stops (its API goes away, serve.json stays if it was
	// killed).
	ts.Close()
	ib := tracker.NewIndexBuilder()
	for _, s := range srcs {
		if err := s.Add(ctx, ib, time.Now().Add(-time.Hour), time.Now().Add(time.Minute)); err != nil {
			t.Fatalf("source %s: %v", s.Name(), err)
		}
	}
	k := tracker.FlowKey{Proto: tracker.ProtoTCP, Src: netip.MustParseAddrPort("10.0.0.1:40000"), Dst: netip.MustParseAddrPort("127.0.0.1:7777")}
	now := time.Now()
	if m := ib.Build(tracker.IndexOptions{}).Lookup(k, now.Add(-time.Second), now); !m.OK() || m.Binding.Owner.Name != "recorded" {
		t.Errorf("flow to the recorded listener: %+v", m)
	}
}
