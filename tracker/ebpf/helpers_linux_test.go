//go:build linux

package ebpf

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// eventWait bounds how long a test waits for an event.
const eventWait = 5 * time.Second

// needRoot skips a test that loads BPF programs when not root.
func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("skipped: loading eBPF programs needs root (CAP_BPF, CAP_PERFMON, CAP_NET_ADMIN, CAP_SYS_ADMIN); run the tests as root")
	}
	if _, err := os.Stat(kernelBTFPath); err != nil {
		t.Skipf("skipped: kernel has no BTF (%v); the eBPF source cannot run here", err)
	}
}

// collector keeps the events a Source delivers.
type collector struct {
	mu     sync.Mutex
	events []ConnEvent
}

func (c *collector) add(ev ConnEvent) {
	c.mu.Lock()
	c.events = append(c.events, ev)
	c.mu.Unlock()
}

// matching returns the events for which keep is true.
func (c *collector) matching(keep func(*ConnEvent) bool) []ConnEvent {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []ConnEvent
	for i := range c.events {
		if keep(&c.events[i]) {
			out = append(out, c.events[i])
		}
	}
	return out
}

// waitN waits until at least n events match keep, and returns them.
func (c *collector) waitN(t *testing.T, n int, what string, keep func(*ConnEvent) bool) []ConnEvent {
	t.Helper()
	deadline := time.Now().Add(eventWait)
	for {
		got := c.matching(keep)
		if len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("waited %v for %d %s event(s), got %d", eventWait, n, what, len(got))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// startSource opens a Source and runs it into a collector until the test
// ends. On a root host with BTF a load failure fails the test: it is most
// likely a verifier rejection after a change to the BPF code.
func startSource(t *testing.T, opts Options) (*Source, *collector) {
	t.Helper()
	needRoot(t)
	src, err := Open(opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	c := &collector{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- src.Run(ctx, c.add) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("Run returned %v, want context.Canceled", err)
		}
		if err := src.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return src, c
}

// helperNames are the names the helper binary is linked under.
var helperNames = []string{"nd-bpf-tcpcli", "nd-bpf-udpcli", "nd-bpf-tcpsrv", "nd-bpf-open"}

// buildHelpers builds testdata/helper into a fresh directory, readable and
// executable by every user, and links it under each name of helperNames.
func buildHelpers(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	bin := filepath.Join(dir, "nd-bpf-helper")
	cmd := exec.Command("go", "build", "-o", bin, "./testdata/helper")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building helper: %v\n%s", err, out)
	}
	for _, n := range helperNames {
		if err := os.Link(bin, filepath.Join(dir, n)); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// child is a running helper process.
type child struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	lines *bufio.Scanner
}

// startChild starts helper name with args. The test's cleanup closes its
// stdin, and kills it (by pid) if it has not exited a few seconds later.
func startChild(t *testing.T, dir, name string, args ...string) *child {
	t.Helper()
	cmd := exec.Command(filepath.Join(dir, name), args...)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &child{cmd: cmd, stdin: stdin, lines: bufio.NewScanner(stdout)}
	t.Cleanup(func() { c.stop(t) })
	return c
}

// value reads the child's next output line, "key=value", and returns value.
func (c *child) value(t *testing.T, key string) string {
	t.Helper()
	got := make(chan string, 1)
	go func() {
		if c.lines.Scan() {
			got <- c.lines.Text()
		}
		close(got)
	}()
	select {
	case line, ok := <-got:
		v, found := strings.CutPrefix(line, key+"=")
		if !ok || !found {
			t.Fatalf("%s: want a %q line, got %q (err %v)", c.cmd.Path, key, line, c.lines.Err())
		}
		return v
	case <-time.After(eventWait):
		t.Fatalf("%s: no output after %v", c.cmd.Path, eventWait)
	}
	return ""
}

// addrPort reads a "key=ADDR:PORT" line.
func (c *child) addrPort(t *testing.T, key string) netip.AddrPort {
	t.Helper()
	s := c.value(t, key)
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		t.Fatalf("%s: %s=%q: %v", c.cmd.Path, key, s, err)
	}
	return ap
}

// stop closes the child's stdin and waits for it; a child still running
// after a few seconds is killed by pid.
func (c *child) stop(t *testing.T) {
	if c.cmd.ProcessState != nil {
		return
	}
	c.stdin.Close()
	done := make(chan error, 1)
	go func() { done <- c.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("%s: %v", c.cmd.Path, err)
		}
	case <-time.After(eventWait):
		_ = c.cmd.Process.Kill()
		<-done
		t.Errorf("%s: killed after %v", c.cmd.Path, eventWait)
	}
}
