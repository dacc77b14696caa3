package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/netdumper/netdumper/internal/fixtures"
)

// conn mirrors e2eprog's output line.
type conn struct {
	Class  string    `json:"class"`
	Proto  string    `json:"proto"`
	Local  string    `json:"local"`
	Remote string    `json:"remote"`
	Start  time.Time `json:"start"`
	End    time.Time `json:"end"`
	Error  string    `json:"error"`
}

// proc is a process the test started; it is stopped by pid at the end.
type proc struct {
	name string
	cmd  *exec.Cmd
	in   *os.File
	out  *bufio.Reader
	log  *syncBuffer
}

// syncBuffer is a bytes.Buffer safe for the writer goroutine of exec and a
// reader.
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

func start(t *testing.T, name string, args []string, env ...string) *proc {
	t.Helper()
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = append(os.Environ(), env...)
	log := &syncBuffer{}
	cmd.Stderr = log
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdin = pr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	pr.Close()
	p := &proc{name: name, cmd: cmd, in: pw, out: bufio.NewReader(out), log: log}
	t.Cleanup(func() { p.stop(t) })
	return p
}

// running reports whether the process still exists (a zombie counts as
// gone).
func (p *proc) running() bool {
	if p.cmd.ProcessState != nil {
		return false
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.cmd.Process.Pid))
	return err == nil && !bytes.Contains(b, []byte(") Z "))
}

// stop ends the process by pid: SIGTERM, then SIGKILL after 5 s.
func (p *proc) stop(t *testing.T) {
	if p.cmd.ProcessState != nil {
		return
	}
	p.in.Close()
	p.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { p.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		p.cmd.Process.Kill()
		<-done
	}
}

// readJSON reads one JSON line from the process, within limit.
func (p *proc) readJSON(t *testing.T, v any, limit time.Duration) bool {
	t.Helper()
	type res struct {
		line []byte
		err  error
	}
	ch := make(chan res, 1)
	go func() {
		l, err := p.out.ReadBytes('\n')
		ch <- res{l, err}
	}()
	select {
	case r := <-ch:
		if r.err != nil {
			return false
		}
		if err := json.Unmarshal(r.line, v); err != nil {
			t.Fatalf("%s: %q: %v", p.name, r.line, err)
		}
		return true
	case <-time.After(limit):
		t.Fatalf("%s did not answer within %v; stderr:\n%s", p.name, limit, p.log)
	}
	return false
}

func freePort(t *testing.T, network string) int {
	t.Helper()
	switch network {
	case "udp":
		c, err := net.ListenPacket("udp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return c.LocalAddr().(*net.UDPAddr).Port
	default:
		l, err := net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		return l.Addr().(*net.TCPAddr).Port
	}
}

func need(t *testing.T, bins ...string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("end-to-end test skipped: softflowd needs root to capture on lo (make test runs as root)")
	}
	for _, b := range bins {
		if _, err := exec.LookPath(b); err != nil {
			t.Skipf("end-to-end test skipped: %s not installed (make test installs it)", b)
		}
	}
}

func waitFor(t *testing.T, what string, limit time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", limit, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// build compiles a package of the module into dir.
func build(t *testing.T, root, pkg, out string) {
	t.Helper()
	cmd := exec.Command("go", "build", "-o", out, pkg)
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, b)
	}
}

// TestEndToEnd is the proof that the product works: real traffic, real
// capture, real tracker, real enrichment, checked with the real nfdump.
// Server-side flows must all carry the server's name and long-lived
// client connections the client's; the rates of the shorter classes are
// reported (and asserted when NETDUMPER_E2E_MIN_RATE is set, for sources
// that see short-lived sockets). NETDUMPER_E2E_SOURCE passes --source to
// serve; NETDUMPER_E2E_REPORT names a file that receives the table;
// NETDUMPER_E2E_SCALE multiplies the connections of every class.
func TestEndToEnd(t *testing.T) {
	need(t, "softflowd", "softflowctl", "nfcapd", "nfdump", "go")
	if testing.Short() {
		t.Skip("end-to-end test skipped in -short mode")
	}
	// Each source with its own thresholds: polling sees every server and
	// every long-lived client; the eBPF source sees every connection.
	type run struct {
		source  string
		minRate float64
	}
	runs := []run{{"poll", 0}, {"ebpf", 99}}
	if src := os.Getenv("NETDUMPER_E2E_SOURCE"); src != "" {
		runs = []run{{src, 0}}
	}
	if min := os.Getenv("NETDUMPER_E2E_MIN_RATE"); min != "" {
		for i := range runs {
			fmt.Sscan(min, &runs[i].minRate)
		}
	}
	for _, r := range runs {
		t.Run("source="+r.source, func(t *testing.T) { endToEnd(t, r.source, r.minRate) })
	}
}

func endToEnd(t *testing.T, source string, minRate float64) {
	root, err := fixtures.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "bin")
	os.MkdirAll(bin, 0o755)
	nd := filepath.Join(bin, "netdumper")
	build(t, root, "./cmd/netdumper", nd)
	build(t, root, "./internal/e2e/testdata/e2eprog", filepath.Join(bin, "nd-e2e-web"))
	for _, n := range []string{"nd-e2e-udp", "nd-e2e-cli"} {
		if err := os.Link(filepath.Join(bin, "nd-e2e-web"), filepath.Join(bin, n)); err != nil {
			t.Fatal(err)
		}
	}

	// 1. netdumper serve with a temporary state directory.
	state := filepath.Join(dir, "state")
	api := freePort(t, "tcp")
	serveArgs := []string{nd, "serve", "--state", state, "--listen", fmt.Sprintf("127.0.0.1:%d", api), "--source", source}
	serve := start(t, "netdumper serve", serveArgs)
	waitFor(t, "serve.json", 15*time.Second, func() bool {
		_, err := os.Stat(filepath.Join(state, "serve.json"))
		return err == nil || !serve.running()
	})
	if !serve.running() {
		if source == "ebpf" && strings.Contains(serve.log.String(), "eBPF") {
			t.Skipf("the eBPF source cannot run here: %s", strings.TrimSpace(serve.log.String()))
		}
		t.Fatalf("netdumper serve --source %s exited:\n%s", source, serve.log)
	}

	// 2. The servers, under distinctive names.
	web := start(t, "nd-e2e-web", []string{filepath.Join(bin, "nd-e2e-web"), "web"})
	udp := start(t, "nd-e2e-udp", []string{filepath.Join(bin, "nd-e2e-udp"), "udp"})
	var webAddrs, udpAddrs map[string]string
	web.readJSON(t, &webAddrs, 10*time.Second)
	udp.readJSON(t, &udpAddrs, 10*time.Second)
	port := func(a string) string { return fmt.Sprint(netip.MustParseAddrPort(a).Port()) }
	ports := []string{port(webAddrs["tcp4"]), port(webAddrs["tcp6"]), port(udpAddrs["udp4"]), port(udpAddrs["udp6"])}

	// 3. nfcapd and softflowd on lo, admitting only this test's ports.
	flows := filepath.Join(dir, "flows")
	os.MkdirAll(flows, 0o755)
	nfPort := freePort(t, "udp")
	fillPort := freePort(t, "udp")
	nfcapd := start(t, "nfcapd", []string{"nfcapd", "-w", flows, "-b", "127.0.0.1", "-p", fmt.Sprint(nfPort), "-t", "3600", "-I", "e2e", "-B", "4194304"})
	bpf := fmt.Sprintf("not (udp and port %d) and (tcp or udp) and (port %s or port %d)", nfPort, strings.Join(ports, " or port "), fillPort)
	sfDir := filepath.Join(dir, "sf")
	os.MkdirAll(sfDir, 0o755)
	ctl := filepath.Join(sfDir, "ctl")
	softflowd := start(t, "softflowd", []string{"softflowd", "-d", "-i", "lo", "-n", fmt.Sprintf("127.0.0.1:%d", nfPort),
		"-v", "9", "-T", "full", "-6", "-t", "maxlife=300", "-p", filepath.Join(sfDir, "pid"), "-c", ctl, bpf})
	waitFor(t, "softflowd control socket", 10*time.Second, func() bool {
		return exec.Command("softflowctl", "-c", ctl, "statistics").Run() == nil
	})
	// Let the tracker see the servers before the traffic starts.
	time.Sleep(2 * time.Second)

	// 4. The client's traffic.
	cliArgs := []string{filepath.Join(bin, "nd-e2e-cli"), "cli",
		"-tcp4", webAddrs["tcp4"], "-tcp6", webAddrs["tcp6"], "-udp4", udpAddrs["udp4"], "-udp6", udpAddrs["udp6"]}
	if n := os.Getenv("NETDUMPER_E2E_SCALE"); n != "" {
		cliArgs = append(cliArgs, "-scale", n) // more connections per class, for tighter rates
	}
	cli := start(t, "nd-e2e-cli", cliArgs)
	var conns []conn
	for {
		var c conn
		if !cli.readJSON(t, &c, 30*time.Second) {
			break
		}
		if c.Error != "" {
			t.Logf("client connection %s %s: %s", c.Class, c.Local, c.Error)
		}
		conns = append(conns, c)
	}
	if len(conns) < 90 {
		t.Fatalf("client made %d connections, want 94; stderr:\n%s", len(conns), cli.log)
	}

	// 5. Flush the capture ring (libpcap hands packets over one full
	// block at a time on this kernel), expire every flow, stop the
	// collector so it rotates the file.
	fill, err := net.Dial("udp4", fmt.Sprintf("127.0.0.1:%d", fillPort))
	if err != nil {
		t.Fatal(err)
	}
	blob := bytes.Repeat([]byte("f"), 1400)
	for i := 0; i < 800; i++ {
		fill.Write(blob)
	}
	fill.Close()
	time.Sleep(time.Second)
	exec.Command("softflowctl", "-c", ctl, "expire-all").Run()
	time.Sleep(time.Second)
	exec.Command("softflowctl", "-c", ctl, "shutdown").Run()
	softflowd.stop(t)
	time.Sleep(500 * time.Millisecond)
	nfcapd.stop(t)
	files, _ := filepath.Glob(filepath.Join(flows, "nfcapd.2*"))
	if len(files) != 1 {
		t.Fatalf("nfcapd left %v", files)
	}
	file := files[0]
	// Two scan intervals, so the tracker has recorded the end of the traffic.
	time.Sleep(2500 * time.Millisecond)

	// 6. netdumper enrich --yes, while serve runs (it holds the state
	// directory, so enrich asks it through serve.json).
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	enrich := exec.CommandContext(ctx, nd, "enrich", "--yes", "--state", state, file)
	if out, err := enrich.CombinedOutput(); err != nil {
		t.Fatalf("enrich: %v\n%s\nserve:\n%s", err, out, serve.log)
	} else {
		t.Logf("enrich: %s", strings.TrimSpace(string(out)))
	}

	// 7. What the real nfdump shows.
	out, err := exec.Command("nfdump", "-q", "-r", file, "-o", "fmt:%pr %sa %sp %da %dp %uname").Output()
	if err != nil {
		t.Fatal(err)
	}
	type key struct{ proto, src, dst string }
	unames := map[key]string{}
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(l)
		if len(f) != 6 {
			continue
		}
		src := netip.AddrPortFrom(netip.MustParseAddr(f[1]), mustPort(f[2])).String()
		dst := netip.AddrPortFrom(netip.MustParseAddr(f[3]), mustPort(f[4])).String()
		unames[key{strings.ToLower(f[0]), src, dst}] = f[5]
	}

	// 8. Score every connection, both directions.
	type score struct{ right, wrong, missing int }
	rates := map[string]*score{}
	add := func(class string, got, want string, present bool) {
		s := rates[class]
		if s == nil {
			s = &score{}
			rates[class] = s
		}
		switch {
		case !present:
			s.missing++
		case got == want:
			s.right++
		default:
			s.wrong++
			t.Logf("%s: %q, want %q", class, got, want)
		}
	}
	for _, c := range conns {
		if c.Error != "" || c.Local == "" {
			continue
		}
		server := "nd-e2e-web"
		if c.Proto == "udp" {
			server = "nd-e2e-udp"
		}
		cliSide, ok1 := unames[key{c.Proto, c.Local, c.Remote}]
		srvSide, ok2 := unames[key{c.Proto, c.Remote, c.Local}]
		add("client "+c.Class, cliSide, "nd-e2e-cli", ok1)
		add("server "+c.Proto, srvSide, server, ok2)
	}
	var report strings.Builder
	fmt.Fprintf(&report, "%-16s %6s %6s %8s %7s\n", "class", "right", "wrong", "missing", "rate")
	classes := make([]string, 0, len(rates))
	for c := range rates {
		classes = append(classes, c)
	}
	sort.Strings(classes)
	for _, c := range classes {
		s := rates[c]
		fmt.Fprintf(&report, "%-16s %6d %6d %8d %6.1f%%\n", c, s.right, s.wrong, s.missing, 100*rate(s.right, s.wrong))
	}
	t.Logf("attribution by class (interval 1 s, source %q):\n%s", source, report.String())
	if p := os.Getenv("NETDUMPER_E2E_REPORT"); p != "" {
		f, err := os.OpenFile(p, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
		if err == nil {
			fmt.Fprintf(f, "source %s\n%s\n", source, report.String())
			f.Close()
		}
	}

	// Flows softflowd did not export are the capture's fault, not ours;
	// but most must be there for the test to mean anything.
	total, missing := 0, 0
	for _, s := range rates {
		total += s.right + s.wrong + s.missing
		missing += s.missing
	}
	if missing*10 > total {
		t.Fatalf("%d of %d expected flows are missing from the capture", missing, total)
	}
	for _, c := range []string{"server tcp", "server udp", "client long"} {
		s := rates[c]
		if s == nil || s.wrong != 0 || s.right == 0 {
			t.Errorf("%s: %+v, want every flow right", c, s)
		}
	}
	if minRate > 0 {
		for _, c := range classes {
			if r := 100 * rate(rates[c].right, rates[c].wrong); r < minRate {
				t.Errorf("%s: %.1f%% right, want at least %.0f%%", c, r, minRate)
			}
		}
	}

}

func rate(right, wrong int) float64 {
	if right+wrong == 0 {
		return 0
	}
	return float64(right) / float64(right+wrong)
}

func mustPort(s string) uint16 {
	var p uint16
	fmt.Sscan(s, &p)
	return p
}
