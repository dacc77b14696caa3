package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/netdumper/netdumper/tracker"
)

// lockedBuffer is a bytes.Buffer safe for a writer and a reader.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// startServe runs "netdumper serve" in this process with args, a fresh
// --state, a loopback API on a free port and polling only, until the test
// ends. It returns the state directory and its serve.json once written.
func startServe(t *testing.T, args ...string) (string, tracker.DaemonInfo) {
	t.Helper()
	state := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	var stderr lockedBuffer
	exited := make(chan int, 1)
	args = append([]string{"serve", "--state", state, "--listen", "127.0.0.1:0", "--source", "poll", "--interval", "100ms"}, args...)
	go func() {
		exited <- run(ctx, args, env{stdin: strings.NewReader(""), stdout: &stderr, stderr: &stderr, getenv: os.Getenv})
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			t.Errorf("serve did not stop:\n%s", stderr.String())
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		select {
		case code := <-exited:
			exited <- code
			t.Fatalf("serve exited with %d:\n%s", code, stderr.String())
		default:
		}
		if info, err := tracker.ReadDaemonInfo(state); err == nil {
			return state, info
		}
		if time.Now().After(deadline) {
			t.Fatalf("no serve.json after 10s:\n%s", stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestServeRecordsAbsolutePaths: serve.json names the token file by its
// absolute path, so that enrich and bindings export find it from any
// directory, although serve was given a relative one.
func TestServeRecordsAbsolutePaths(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	if err := os.WriteFile("token", []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	state, info := startServe(t, "--token-file", "token")
	if want := filepath.Join(dir, "token"); info.TokenFile != want {
		t.Errorf("serve.json token_file %q, want %q", info.TokenFile, want)
	}
	t.Chdir(t.TempDir())
	r := runNetdumper(t, "UTC", "bindings", "export", "--state", state, "--from", "1m")
	if r.code != 0 || !strings.Contains(r.stdout, `"version"`) {
		t.Errorf("bindings export from another directory: exit %d\n%s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
}
