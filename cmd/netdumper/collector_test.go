package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/netdumper/netdumper/internal/fixtures"
)

// The two ways the README sets enrich up beside a collector, run with the
// real nfcapd: as its -x hook, and as a separate --watch process. nfreplay
// sends the flows of a fixture to nfcapd as NetFlow v9, in order; they keep
// their addresses, ports and times (not their usernames), so the fixture's
// ground truth says which process each one must be labelled with.

// collectorTools returns the paths of nfcapd and nfreplay, or skips the
// test; nfdump must be there too, to read the results.
func collectorTools(t *testing.T) (nfcapd, nfreplay string) {
	t.Helper()
	if testing.Short() {
		t.Skip("runs nfcapd and builds the binary; skipped with -short")
	}
	var paths [2]string
	for i, name := range []string{"nfcapd", "nfreplay", "nfdump"} {
		p, err := exec.LookPath(name)
		if err != nil {
			t.Skipf("%s is not installed (apt-get install nfdump): skipping the collector test", name)
		}
		if i < len(paths) {
			paths[i] = p
		}
	}
	return paths[0], paths[1]
}

// freeUDPPort returns a UDP port on 127.0.0.1 that was free a moment ago.
func freeUDPPort(t *testing.T) int {
	t.Helper()
	c, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port
}

// child is a process a test started; it is stopped by pid at cleanup.
type child struct {
	name string
	cmd  *exec.Cmd
	out  *lockedBuffer // stdout and stderr
	done chan struct{}
}

func startChild(t *testing.T, name string, args ...string) *child {
	t.Helper()
	c := &child{name: name, cmd: exec.Command(args[0], args[1:]...), out: &lockedBuffer{}, done: make(chan struct{})}
	c.cmd.Stdout, c.cmd.Stderr = c.out, c.out
	c.cmd.Env = append(os.Environ(), "TZ=UTC")
	if err := c.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() { c.cmd.Wait(); close(c.done) }()
	t.Cleanup(func() { c.stop(t, 10*time.Second) })
	return c
}

// stop sends SIGTERM and waits up to limit, then kills; it reports
// whether the process exited by itself.
func (c *child) stop(t *testing.T, limit time.Duration) bool {
	select {
	case <-c.done:
		return true
	default:
	}
	c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
		return true
	case <-time.After(limit):
		t.Errorf("%s did not exit within %v of SIGTERM; killed", c.name, limit)
		c.cmd.Process.Kill()
		<-c.done
		return false
	}
}

// waitEnriched waits until the summaries in the output ("FILE: enriched N
// flows: M matched ...") add up to flows flows, for at most limit. The
// replay may straddle a rotation, so the flows can come in several files.
func (c *child) waitEnriched(t *testing.T, flows int, limit time.Duration) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		n := 0
		for _, m := range enrichedRE.FindAllStringSubmatch(c.out.String(), -1) {
			k, _ := strconv.Atoi(m[1])
			n += k
		}
		if n >= flows {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s reported %d flows enriched within %v, want %d:\n%s", c.name, n, limit, flows, c.out.String())
		}
		select {
		case <-c.done:
			t.Fatalf("%s exited after %d flows enriched, want %d:\n%s", c.name, n, flows, c.out.String())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// enrichedRE matches enrich's summary of a file.
var enrichedRE = regexp.MustCompile(`: enriched (\d+) flows: `)

// waitOutput waits until the output contains s, for at most limit.
func (c *child) waitOutput(t *testing.T, s string, limit time.Duration) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		if strings.Contains(c.out.String(), s) {
			return
		}
		select {
		case <-c.done:
			if strings.Contains(c.out.String(), s) {
				return
			}
			t.Fatalf("%s exited before printing %q:\n%s", c.name, s, c.out.String())
		case <-time.After(100 * time.Millisecond):
		}
	}
	t.Fatalf("%s did not print %q within %v:\n%s", c.name, s, limit, c.out.String())
}

// collectorSetup writes the bindings of the v9-mixed fixture's ground
// truth and returns the binary, the bindings file, the flow directory
// nfcapd writes into, and the label each replayed flow must get, in order.
func collectorSetup(t *testing.T) (bin, bindings, flows string, want []string) {
	t.Helper()
	work := t.TempDir()
	bin = buildNetdumper(t, work)
	bindings, want = fixtures.TruthBindings(t, filepath.Join(fixtures.Dir(t), "v9-mixed.truth.csv"), work)
	flows = filepath.Join(work, "flows")
	if err := os.Mkdir(flows, 0o755); err != nil {
		t.Fatal(err)
	}
	return bin, bindings, flows, want
}

// replayFixture sends v9-mixed.lz4.nf to nfcapd on port.
func replayFixture(t *testing.T, nfreplay string, port int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	src := filepath.Join(fixtures.Dir(t), "v9-mixed.lz4.nf")
	out, err := exec.CommandContext(ctx, nfreplay, "-r", src, "-H", "127.0.0.1", "-p", fmt.Sprint(port), "-v", "9").CombinedOutput()
	if err != nil {
		t.Fatalf("nfreplay: %v\n%s", err, out)
	}
}

// checkCollected reads the files nfcapd rotated into flows, in order,
// with the real nfdump, checks that their records carry the labels of want
// in order (no username where want has ""), and returns the files that
// hold them (one, or more when the replay straddled a rotation).
func checkCollected(t *testing.T, flows string, want []string) []string {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(flows, "nfcapd.2*")) // in time order
	var lines, with []string
	for _, file := range files {
		if s := strings.TrimSpace(runNfdump(t, "UTC", "-q", "-r", file, "-o", "fmt:%line %uname")); s != "" && s != "No matching flows" {
			lines = append(lines, strings.Split(s, "\n")...)
			with = append(with, file)
		}
	}
	if len(lines) != len(want) {
		t.Fatalf("nfdump printed %d records from %v, want %d", len(lines), with, len(want))
	}
	for i, l := range lines {
		w := want[i]
		if w == "" {
			w = "<empty>"
		}
		if !strings.HasSuffix(l, " "+w) {
			t.Errorf("record %d: nfdump prints %q, want username %q", i+1, l, w)
		}
	}
	if left, _ := filepath.Glob(filepath.Join(flows, ".*")); len(left) > 0 {
		t.Errorf("temporary files left: %v", left)
	}
	return with
}

// TestNfcapdHook runs enrich as nfcapd's -x hook, the way the README sets
// it up, and checks the rotated file with nfdump.
func TestNfcapdHook(t *testing.T) {
	nfcapdBin, nfreplay := collectorTools(t)
	bin, bindings, flows, want := collectorSetup(t)
	port := freeUDPPort(t)
	hook := fmt.Sprintf("%s enrich --yes --bindings %s %%d/%%f", bin, bindings)
	nfcapd := startChild(t, "nfcapd", nfcapdBin, "-w", flows, "-b", "127.0.0.1", "-p", fmt.Sprint(port),
		"-t", "3", "-y", "-I", "nd-hook", "-x", hook)
	nfcapd.waitOutput(t, "Startup nfcapd", 10*time.Second)
	replayFixture(t, nfreplay, port)
	// The hook's summary goes to nfcapd's output.
	nfcapd.waitEnriched(t, len(want), 30*time.Second)
	if !nfcapd.stop(t, 10*time.Second) {
		return
	}
	if strings.Contains(nfcapd.out.String(), "netdumper: ") {
		t.Errorf("the hook reported an error:\n%s", nfcapd.out.String())
	}
	checkCollected(t, flows, want)
}

// TestWatchBesideNfcapd runs enrich --watch on nfcapd's directory, checks
// the rotated file, stops the watcher with SIGTERM, and restarts it: a file
// done before is not rewritten again.
func TestWatchBesideNfcapd(t *testing.T) {
	nfcapdBin, nfreplay := collectorTools(t)
	bin, bindings, flows, want := collectorSetup(t)
	state := t.TempDir()
	watchArgs := []string{bin, "enrich", "--yes", "--watch", flows, "--delay", "1s", "--bindings", bindings, "--state", state}
	watch := startChild(t, "enrich --watch", watchArgs...)
	port := freeUDPPort(t)
	nfcapd := startChild(t, "nfcapd", nfcapdBin, "-w", flows, "-b", "127.0.0.1", "-p", fmt.Sprint(port),
		"-t", "3", "-y", "-I", "nd-watch")
	nfcapd.waitOutput(t, "Startup nfcapd", 10*time.Second)
	replayFixture(t, nfreplay, port)
	watch.waitEnriched(t, len(want), 30*time.Second)
	if !nfcapd.stop(t, 10*time.Second) {
		return
	}
	if !watch.stop(t, 10*time.Second) {
		return
	}
	if code := watch.cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("enrich --watch exited %d after SIGTERM, want 0:\n%s", code, watch.out.String())
	}
	files := checkCollected(t, flows, want)

	// Restarted, the watcher remembers what it did: the files are not
	// rewritten again. (Files nfcapd rotated as it stopped may still be
	// new to it.)
	before := map[string]os.FileInfo{}
	for _, f := range files {
		fi, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		before[f] = fi
	}
	again := startChild(t, "enrich --watch (again)", watchArgs...)
	time.Sleep(3 * time.Second)
	if !again.stop(t, 10*time.Second) {
		return
	}
	for f, fi := range before {
		if strings.Contains(again.out.String(), f) {
			t.Errorf("the restarted watcher took %s again:\n%s", f, again.out.String())
		}
		after, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		if !os.SameFile(fi, after) || !after.ModTime().Equal(fi.ModTime()) {
			t.Errorf("%s was rewritten by the restarted watcher", f)
		}
	}
}
