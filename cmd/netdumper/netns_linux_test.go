package main

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/netdumper/netdumper/remote"
	"github.com/netdumper/netdumper/tracker"
)

// TestTwoTrackersInNamespaces runs `netdumper serve` in two network
// namespaces made by the test, each with a server process on 0.0.0.0:8080
// and B with a client connected to A's, and checks that one client
// (remote.Pool) routes each flow to the right host and process.
func TestTwoTrackersInNamespaces(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to create network namespaces (ip netns add); run as root")
	}
	if testing.Short() {
		t.Skip("builds binaries and namespaces")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("needs the ip command (iproute2)")
	}
	bin := t.TempDir()
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("needs the go command to build the test's programs")
	}
	for _, b := range [][2]string{{"netdumper", "."}, {"nd-ns-web", "./testdata/nsprog"}} {
		out, err := exec.Command(goBin, "build", "-o", filepath.Join(bin, b[0]), b[1]).CombinedOutput()
		if err != nil {
			t.Fatalf("go build %s: %v\n%s", b[1], err, out)
		}
	}
	if err := os.Link(filepath.Join(bin, "nd-ns-web"), filepath.Join(bin, "nd-ns-cli")); err != nil {
		t.Fatal(err)
	}

	// Namespaces A and B, each linked to this namespace and to the other.
	id := os.Getpid() % 10000
	net8 := 100 + os.Getpid()%100
	nsA, nsB := fmt.Sprintf("ndtA%d", id), fmt.Sprintf("ndtB%d", id)
	ip := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	addr := func(subnet, host int) string { return fmt.Sprintf("10.%d.%d.%d", net8, subnet, host) }
	for _, ns := range []string{nsA, nsB} {
		ip("netns", "add", ns)
		t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
		ip("-n", ns, "link", "set", "lo", "up")
	}
	link := func(ifA, nsOfA, ifB, nsOfB string, subnet int) {
		ip("link", "add", ifA, "type", "veth", "peer", "name", ifB)
		t.Cleanup(func() { exec.Command("ip", "link", "del", ifA).Run() })
		for i, end := range [][2]string{{ifA, nsOfA}, {ifB, nsOfB}} {
			cidr := addr(subnet, i+1) + "/24"
			if end[1] == "" {
				ip("addr", "add", cidr, "dev", end[0])
				ip("link", "set", end[0], "up")
				continue
			}
			ip("link", "set", end[0], "netns", end[1])
			ip("-n", end[1], "addr", "add", cidr, "dev", end[0])
			ip("-n", end[1], "link", "set", end[0], "up")
		}
	}
	link(fmt.Sprintf("ndr%da", id), "", fmt.Sprintf("nda%dr", id), nsA, 1)  // root 10.x.1.1, A 10.x.1.2
	link(fmt.Sprintf("ndr%db", id), "", fmt.Sprintf("ndb%dr", id), nsB, 2)  // root 10.x.2.1, B 10.x.2.2
	link(fmt.Sprintf("nda%db", id), nsA, fmt.Sprintf("ndb%da", id), nsB, 3) // A 10.x.3.1, B 10.x.3.2

	logDir := t.TempDir()
	logs := 0
	start := func(ns string, args ...string) (*bufio.Reader, string) {
		t.Helper()
		cmd := exec.Command("ip", append([]string{"netns", "exec", ns}, args...)...)
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		logs++
		logFile := filepath.Join(logDir, fmt.Sprintf("%d-%s.log", logs, filepath.Base(args[0])))
		stderr, err := os.Create(logFile)
		if err != nil {
			t.Fatal(err)
		}
		defer stderr.Close()
		cmd.Stderr = stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { // stopped by pid
			cmd.Process.Kill()
			cmd.Wait()
			if out, _ := os.ReadFile(logFile); t.Failed() && len(out) > 0 {
				t.Logf("%s in %s: %s", filepath.Base(args[0]), ns, out)
			}
		})
		return bufio.NewReader(stdout), logFile
	}
	waitReady := func(what string, r *bufio.Reader) string {
		t.Helper()
		line, err := r.ReadString('\n')
		if err != nil || !strings.HasPrefix(line, "ready ") {
			t.Fatalf("%s: %q %v", what, line, err)
		}
		return strings.TrimSpace(strings.TrimPrefix(line, "ready "))
	}
	r, _ := start(nsA, filepath.Join(bin, "nd-ns-web"), "listen", "0.0.0.0:8080")
	waitReady("server in A", r)
	r, _ = start(nsB, filepath.Join(bin, "nd-ns-web"), "listen", "0.0.0.0:8080")
	waitReady("server in B", r)
	r, _ = start(nsB, filepath.Join(bin, "nd-ns-cli"), "dial", addr(3, 1)+":8080")
	cliAddr := netip.MustParseAddrPort(waitReady("client in B", r))

	// A tracker in each namespace, on a non-loopback address with a token.
	tokFile := writeToken(t, "ns-test-token")
	began := time.Now().Add(-time.Second)
	var urls []string
	var serveLog string
	for _, s := range []struct{ ns, host, listen string }{{nsA, "hostA", addr(1, 2)}, {nsB, "hostB", addr(2, 2)}} {
		_, serveLog = start(s.ns, filepath.Join(bin, "netdumper"), "serve", "--state", t.TempDir(), "--host", s.host,
			"--listen", s.listen+":7701", "--token-file", tokFile, "--interval", "200ms", "--log-level", "warn")
		urls = append(urls, "http://"+s.listen+":7701")
	}
	pool, err := remote.NewPool([]remote.Target{{URL: urls[0]}, {URL: urls[1]}},
		remote.ClientOptions{Token: "ns-test-token", Timeout: 2 * time.Second, DialTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	deadline := time.Now().Add(20 * time.Second)
	for {
		views, err := pool.Bindings(ctx)
		if err == nil && hasProc(views[0], "nd-ns-web") && hasProc(views[1], "nd-ns-web") && hasProc(views[1], "nd-ns-cli") {
			break
		}
		if time.Now().After(deadline) {
			out, _ := os.ReadFile(serveLog)
			t.Fatalf("trackers never showed the test's processes: %v\nserve in B: %s", err, out)
		}
		time.Sleep(200 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond) // a few more scans into the history
	ix, err := pool.Index(ctx, began, time.Now(), tracker.IndexOptions{})
	if err != nil {
		t.Fatalf("Index: %v", err)
	}
	key := func(src, dst netip.AddrPort) tracker.FlowKey {
		return tracker.FlowKey{Proto: tracker.ProtoTCP, Src: src, Dst: dst}
	}
	web := func(host int) netip.AddrPort { return netip.MustParseAddrPort(addr(3, host) + ":8080") }
	outside := netip.MustParseAddrPort("198.51.100.1:5555")
	now := time.Now()
	tests := []struct {
		name       string
		flow       tracker.FlowKey
		host, proc string
	}{
		{"A's server answering B's client", key(web(1), cliAddr), "hostA", "nd-ns-web"},
		{"B's client to A's server", key(cliAddr, web(1)), "hostB", "nd-ns-cli"},
		{"a flow to A's server", key(outside, web(1)), "hostA", "nd-ns-web"},
		{"a flow to B's server", key(outside, web(2)), "hostB", "nd-ns-web"},
	}
	for _, tc := range tests {
		m := ix.Lookup(tc.flow, now.Add(-time.Second), now)
		if !m.OK() || m.Binding.Host != tc.host || m.Binding.Owner == nil || m.Binding.Owner.Name != tc.proc {
			t.Errorf("%s (%v -> %v): matched %+v, want %s on %s", tc.name, tc.flow.Src, tc.flow.Dst, describeMatch(m), tc.proc, tc.host)
		}
	}
}

func hasProc(v *tracker.View, name string) bool {
	if v == nil {
		return false
	}
	for _, b := range v.Bindings {
		if b.Owner != nil && b.Owner.Name == name {
			return true
		}
	}
	return false
}

func describeMatch(m tracker.Match) string {
	if !m.OK() {
		return "nothing"
	}
	name := "?"
	if m.Binding.Owner != nil {
		name = m.Binding.Owner.Name
	}
	return fmt.Sprintf("%s %s on %s", m.Kind, name, m.Binding.Host)
}

// TestBindingsSeeOtherNamespaces: run in the host's own network namespace,
// bindings lists the sockets of a container's namespace too.
func TestBindingsSeeOtherNamespaces(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to create a network namespace (ip netns add); run as root")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("needs the ip command (iproute2)")
	}
	if !inInitNetNS() {
		t.Skip("the test runs outside the host's network namespace")
	}
	ns := fmt.Sprintf("ndtC%d", os.Getpid()%10000)
	if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add: %v\n%s", err, out)
	}
	t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
	// This test binary, listening inside the namespace.
	cmd := exec.Command("ip", "netns", "exec", ns, os.Args[0], "-test.run=^TestHelperListen$")
	cmd.Env = append(os.Environ(), "ND_LISTEN=127.0.0.1:42411")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	if line, err := bufio.NewReader(out).ReadString('\n'); err != nil || !strings.HasPrefix(line, "listening") {
		t.Fatalf("helper did not listen: %q %v", line, err)
	}
	r := runNetdumper(t, "UTC", "bindings")
	if r.code != 0 || !strings.Contains(r.stdout, "127.0.0.1:42411") {
		t.Errorf("bindings (exit %d) lacks the namespace's listener 127.0.0.1:42411:\n%s%s", r.code, r.stdout, r.stderr)
	}
}

// TestHelperListen is the listener of TestBindingsSeeOtherNamespaces.
func TestHelperListen(t *testing.T) {
	addr := os.Getenv("ND_LISTEN")
	if addr == "" {
		t.Skip("helper process")
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	fmt.Println("listening")
	time.Sleep(30 * time.Second) // killed by the test long before
}
