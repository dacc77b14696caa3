package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/netdumper/netdumper/internal/fixtures"
	"github.com/netdumper/netdumper/tracker"
)

// The two ways the README sets enrich up beside a collector, run with the
// real nfcapd: as its -x hook, and as a separate --watch process. nfreplay
// sends the flows of a fixture to nfcapd as NetFlow v9; the flows keep
// their addresses, ports and times (not their usernames), so the fixture's
// ground truth says which process each one must be labelled with.

// collectorTools returns the paths of nfcapd, nfreplay and nfdump, or
// skips the test.
func collectorTools(t *testing.T) (nfcapd, nfreplay, nfdump string) {
	t.Helper()
	if testing.Short() {
		t.Skip("runs nfcapd and builds the binary; skipped with -short")
	}
	var paths [3]string
	for i, name := range []string{"nfcapd", "nfreplay", "nfdump"} {
		p, err := exec.LookPath(name)
		if err != nil {
			t.Skipf("%s is not installed (apt-get install nfdump): skipping the collector test", name)
		}
		paths[i] = p
	}
	return paths[0], paths[1], paths[2]
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

// collectorSetup writes the bindings of the sample directory (built from
// the fixtures' ground truth) and returns the binary, the bindings file
// and the flow directory nfcapd writes into.
func collectorSetup(t *testing.T) (bin, bindings, flows string) {
	t.Helper()
	work := t.TempDir()
	bin = buildNetdumper(t, work)
	var bf bytes.Buffer
	if err := tracker.WriteFile(&bf, sampleBindingsHosts(t, fixtures.Dir(t))); err != nil {
		t.Fatal(err)
	}
	bindings = filepath.Join(work, "bindings.json")
	if err := os.WriteFile(bindings, bf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	flows = filepath.Join(work, "flows")
	if err := os.Mkdir(flows, 0o755); err != nil {
		t.Fatal(err)
	}
	return bin, bindings, flows
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

// truthLabels maps "proto src sport dst dport start" of each TCP and UDP
// flow of v9-mixed to the process it must be labelled with, from the
// ground truth. The truth names the owner of the flow's local end; when
// both ends are local (loopback), enrich tries the source first, so such a
// flow belongs to the owner of its source.
func truthLabels(t *testing.T) map[string]string {
	t.Helper()
	f, err := os.Open(filepath.Join(fixtures.Dir(t), "v9-mixed.truth.csv"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	proto := map[string]string{"6": "TCP", "17": "UDP"}
	owners := map[string]string{} // "proto addr port" of a local end: its process
	for _, r := range rows[1:] {
		if p, ok := proto[r[2]]; ok {
			owners[p+" "+r[12]+" "+r[13]] = r[14]
		}
	}
	want := map[string]string{}
	for _, r := range rows[1:] {
		p, ok := proto[r[2]]
		if !ok {
			continue
		}
		var ms int64
		fmt.Sscan(r[10], &ms)
		ts := time.UnixMilli(ms).UTC().Format("2006-01-02 15:04:05.000")
		process := r[14]
		if o, ok := owners[p+" "+r[3]+" "+r[4]]; ok {
			process = o
		}
		want[strings.Join([]string{p, r[3], r[4], r[5], r[6], ts}, " ")] = process
	}
	if len(want) != 1424 {
		t.Fatalf("ground truth has %d TCP/UDP flows, want 1424", len(want))
	}
	return want
}

// checkCollected finds the file in flows that holds the replayed flows,
// checks with the real nfdump that each TCP and UDP flow carries the
// process of the ground truth and the others no username, and returns its
// path.
func checkCollected(t *testing.T, nfdump, flows string) string {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(flows, "nfcapd.2*"))
	want := truthLabels(t)
	found := ""
	for _, file := range files {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		cmd := exec.CommandContext(ctx, nfdump, "-6", "-q", "-r", file, "-o", "fmt:%pr %sa %sp %da %dp %ts %uname")
		cmd.Env = append(os.Environ(), "TZ=UTC")
		out, err := cmd.Output()
		cancel()
		if err != nil {
			t.Fatalf("nfdump -r %s: %v", file, err)
		}
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		if len(lines) < 1500 {
			continue // a rotation without the replayed flows
		}
		found = file
		if len(lines) != 1500 {
			t.Fatalf("%s: nfdump printed %d records, want 1500", file, len(lines))
		}
		labelled := 0
		for i, l := range lines {
			f := strings.Fields(l)
			if len(f) < 8 {
				t.Fatalf("%s: record %d: unexpected line %q", file, i+1, l)
			}
			got := strings.Join(f[7:], " ") // labels may hold spaces
			switch f[0] {
			case "TCP", "UDP":
				key := strings.Join(f[:7], " ")
				w, ok := want[key]
				if !ok {
					t.Fatalf("%s: record %d (%s) is not in the ground truth", file, i+1, l)
				}
				if got != w {
					t.Errorf("%s: record %d: nfdump prints %q, want username %q", file, i+1, l, w)
				}
				labelled++
			default:
				if got != "<empty>" {
					t.Errorf("%s: record %d: %q: an %s flow got a username", file, i+1, l, f[0])
				}
			}
		}
		if labelled != len(want) {
			t.Errorf("%s: %d TCP/UDP records, want %d", file, labelled, len(want))
		}
	}
	if found == "" {
		t.Fatalf("no file in %s holds the 1500 replayed flows: %v", flows, files)
	}
	if left, _ := filepath.Glob(filepath.Join(flows, ".*")); len(left) > 0 {
		t.Errorf("temporary files left: %v", left)
	}
	return found
}

// TestNfcapdHook runs enrich as nfcapd's -x hook, the way the README sets
// it up, and checks the rotated file with nfdump.
func TestNfcapdHook(t *testing.T) {
	nfcapdBin, nfreplay, nfdump := collectorTools(t)
	bin, bindings, flows := collectorSetup(t)
	port := freeUDPPort(t)
	hook := fmt.Sprintf("%s enrich --yes --bindings %s %%d/%%f", bin, bindings)
	nfcapd := startChild(t, "nfcapd", nfcapdBin, "-w", flows, "-b", "127.0.0.1", "-p", fmt.Sprint(port),
		"-t", "3", "-y", "-I", "nd-hook", "-x", hook)
	nfcapd.waitOutput(t, "Startup nfcapd", 10*time.Second)
	replayFixture(t, nfreplay, port)
	// The hook's summary goes to nfcapd's output.
	nfcapd.waitOutput(t, "enriched 1500 flows: 1424 matched", 30*time.Second)
	if !nfcapd.stop(t, 10*time.Second) {
		return
	}
	if strings.Contains(nfcapd.out.String(), "netdumper: ") {
		t.Errorf("the hook reported an error:\n%s", nfcapd.out.String())
	}
	checkCollected(t, nfdump, flows)
}

// TestWatchBesideNfcapd runs enrich --watch on nfcapd's directory, checks
// the rotated file, stops the watcher with SIGTERM, and restarts it: a file
// done before is not rewritten again.
func TestWatchBesideNfcapd(t *testing.T) {
	nfcapdBin, nfreplay, nfdump := collectorTools(t)
	bin, bindings, flows := collectorSetup(t)
	state := t.TempDir()
	watchArgs := []string{bin, "enrich", "--yes", "--watch", flows, "--delay", "1s", "--bindings", bindings, "--state", state}
	watch := startChild(t, "enrich --watch", watchArgs...)
	port := freeUDPPort(t)
	nfcapd := startChild(t, "nfcapd", nfcapdBin, "-w", flows, "-b", "127.0.0.1", "-p", fmt.Sprint(port),
		"-t", "3", "-y", "-I", "nd-watch")
	nfcapd.waitOutput(t, "Startup nfcapd", 10*time.Second)
	replayFixture(t, nfreplay, port)
	watch.waitOutput(t, "enriched 1500 flows: 1424 matched", 30*time.Second)
	if !nfcapd.stop(t, 10*time.Second) {
		return
	}
	if !watch.stop(t, 10*time.Second) {
		return
	}
	if code := watch.cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("enrich --watch exited %d after SIGTERM, want 0:\n%s", code, watch.out.String())
	}
	file := checkCollected(t, nfdump, flows)

	// Restarted, the watcher remembers what it did: the file is not
	// rewritten again. (Files nfcapd rotated as it stopped may still be
	// new to it.)
	before, err := os.Stat(file)
	if err != nil {
		t.Fatal(err)
	}
	again := startChild(t, "enrich --watch (again)", watchArgs...)
	time.Sleep(3 * time.Second)
	if !again.stop(t, 10*time.Second) {
		return
	}
	if strings.Contains(again.out.String(), file) {
		t.Errorf("the restarted watcher took %s again:\n%s", file, again.out.String())
	}
	after, err := os.Stat(file)
	if err != nil {
		t.Fatal(err)
	}
	if !os.SameFile(before, after) || !after.ModTime().Equal(before.ModTime()) {
		t.Errorf("%s was rewritten by the restarted watcher", file)
	}
}
