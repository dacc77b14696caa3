package tracker

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/netdumper/netdumper/tracker/ebpf"
)

// needEBPF skips a test that loads the eBPF programs unless it can.
func needEBPF(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("skipped: the eBPF event source needs root (CAP_BPF, CAP_PERFMON, CAP_NET_ADMIN, CAP_SYS_ADMIN); run the tests as root")
	}
	if _, err := os.Stat("/sys/kernel/btf/vmlinux"); err != nil {
		t.Skipf("skipped: kernel has no BTF (%v); the eBPF source cannot run here", err)
	}
}

// buildEvClient builds testdata/evclient into a fresh directory and links
// it under each name.
func buildEvClient(t *testing.T, names ...string) string {
	t.Helper()
	dir := t.TempDir()
	bin := filepath.Join(dir, "evclient")
	if out, err := exec.Command("go", "build", "-o", bin, "./testdata/evclient").CombinedOutput(); err != nil {
		t.Fatalf("building evclient: %v\n%s", err, out)
	}
	for _, n := range names {
		if err := os.Link(bin, filepath.Join(dir, n)); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// clientRun is one run of evclient.
type clientRun struct {
	pid   int32
	local netip.AddrPort
}

// runClient runs evclient under name and waits for it to exit.
func runClient(t *testing.T, dir, name, mode string, server netip.AddrPort) clientRun {
	t.Helper()
	cmd := exec.Command(filepath.Join(dir, name), mode, server.String())
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v", name, mode, err)
	}
	s, ok := strings.CutPrefix(strings.TrimSpace(string(out)), "local=")
	if !ok {
		t.Fatalf("%s: output %q", name, out)
	}
	return clientRun{pid: int32(cmd.Process.Pid), local: netip.MustParseAddrPort(s)}
}

// ebpfTracker runs a tracker with the system scanner and the eBPF source
// on dir until stop is called.
type ebpfTracker struct {
	tr     *Tracker
	sc     *SystemScanner
	src    EventSource
	cancel context.CancelFunc
	done   chan error
}

func startEBPFTracker(t *testing.T, dir string) *ebpfTracker {
	t.Helper()
	sc, err := NewSystemScanner(ScanOptions{})
	if err != nil {
		t.Fatal(err)
	}
	src, err := OpenEventSource(EventSourceOptions{Mode: EventsEBPF})
	if err != nil {
		sc.Close()
		t.Fatalf("OpenEventSource: %v", err)
	}
	tr, err := New(Options{Scanner: sc, Events: src, StateDir: dir, Host: "ebpf-test"})
	if err != nil {
		src.Close()
		sc.Close()
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	et := &ebpfTracker{tr: tr, sc: sc, src: src, cancel: cancel, done: make(chan error, 1)}
	go func() { et.done <- tr.Run(ctx) }()
	t.Cleanup(et.stop)
	return et
}

// stop ends Run, then closes the tracker, the source and the scanner.
func (et *ebpfTracker) stop() {
	if et.cancel == nil {
		return
	}
	et.cancel()
	<-et.done
	et.cancel = nil
	et.tr.Close()
	et.src.Close()
	et.sc.Close()
}

// lookupUntil builds an index of src's history (without tolerance) and
// looks k up over [first, last] until
// match accepts the result or a few seconds pass (events reach the store
// with the next scan).
func lookupUntil(t *testing.T, src HistorySource, k FlowKey, first, last time.Time, match func(Match) bool) Match {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		ib := NewIndexBuilder()
		if err := ib.AddHistory(context.Background(), src, first.Add(-time.Minute), last.Add(time.Minute)); err != nil {
			t.Fatal(err)
		}
		m := ib.Build(IndexOptions{Tolerance: -1}).Lookup(k, first, last)
		if match(m) || time.Now().After(deadline) {
			return m
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// describeMatch renders a match for failure messages.
func describeMatch(m Match) string {
	if !m.OK() {
		return "no match"
	}
	return m.Kind.String() + " " + m.Side.String() + " " + describeInterval(m.Binding)
}

// TestEBPFShortLivedClients: with the eBPF source, a TCP client that
// connects, sends and closes within milliseconds and a client that sends
// one UDP datagram, both gone long before the next scan (1 s), are
// attributed by pid and name from the tracker's history, and still are
// after the tracker restarts on the same state directory. A pid reused by
// another process is another owner.
func TestEBPFShortLivedClients(t *testing.T) {
	needEBPF(t)
	dir := buildEvClient(t, "nd-ev-tcpcli", "nd-ev-udpcli", "nd-ev-reuse-a", "nd-ev-reuse-b")
	state := t.TempDir()
	et := startEBPFTracker(t, state)

	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_, _ = io.Copy(io.Discard, c)
			c.Close()
		}
	}()
	tcpServer := netip.MustParseAddrPort(ln.Addr().String())
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	udpServer := netip.MustParseAddrPort(pc.LocalAddr().String())

	type check struct {
		name string
		key  FlowKey
		// The flow happened between first and last (the client's run).
		first, last time.Time
		pid         int32
		kind        MatchKind
		side        Side
	}
	var checks []check
	client := func(name, mode string, server netip.AddrPort) clientRun {
		before := time.Now()
		c := runClient(t, dir, name, mode, server)
		proto := ProtoTCP
		if mode == "udp" {
			proto = ProtoUDP
		}
		checks = append(checks, check{name, FlowKey{Proto: proto, Src: c.local, Dst: server}, before, time.Now(), c.pid, MatchExact, SideSource})
		return c
	}
	client("nd-ev-tcpcli", "tcp", tcpServer)
	tcp := checks[0]
	client("nd-ev-udpcli", "udp", udpServer)
	// The server side of the TCP flow is this process's listener.
	checks = append(checks, check{"server side", FlowKey{Proto: ProtoTCP, Src: tcpServer, Dst: tcp.key.Src}, tcp.first, tcp.last,
		int32(os.Getpid()), MatchListener, SideSource})

	// Pid reuse: a second process under the first one's pid, which the
	// kernel hands out again after ns_last_pid is set just below it.
	a := client("nd-ev-reuse-a", "tcp", tcpServer)
	reused := false
	for range 10 {
		// Start times have /proc's resolution (10 ms): let them differ.
		// (Within one tick, the process names still tell them apart.)
		time.Sleep(30 * time.Millisecond)
		if err := os.WriteFile("/proc/sys/kernel/ns_last_pid", []byte(strconv.Itoa(int(a.pid)-1)), 0); err != nil {
			t.Logf("cannot set ns_last_pid (%v): pid reuse not checked", err)
			break
		}
		if b := client("nd-ev-reuse-b", "tcp", tcpServer); b.pid == a.pid {
			reused = true
			break
		}
		checks = checks[:len(checks)-1]
	}
	if !reused {
		t.Logf("pid %d was not reused in 10 attempts (a busy host): pid reuse not checked", a.pid)
	}

	verify := func(t *testing.T, src HistorySource) {
		var reuseStart []time.Time
		for _, c := range checks {
			want := c.name
			if c.name == "server side" {
				want = ""
			}
			m := lookupUntil(t, src, c.key, c.first, c.last, func(m Match) bool {
				return m.OK() && m.Binding.Owner.PID == c.pid
			})
			if !m.OK() || m.Binding.Owner.PID != c.pid || m.Kind != c.kind || m.Side != c.side ||
				(want != "" && m.Binding.Owner.Name != want) {
				t.Errorf("%s %s->%s during %s-%s: %s; want %s %s, pid %d %s", c.name, c.key.Src, c.key.Dst,
					c.first.Format(time.StampMicro), c.last.Format(time.StampMicro), describeMatch(m), c.kind, c.side, c.pid, want)
				continue
			}
			if c.kind == MatchExact && (m.Binding.Open() || !m.Binding.Covers(c.first, c.last, 0)) {
				t.Errorf("%s: interval [%s, %s) is open or outside the run %s-%s", c.name,
					m.Binding.From.Format(time.StampMicro), m.Binding.Until.Format(time.StampMicro),
					c.first.Format(time.StampMicro), c.last.Format(time.StampMicro))
			}
			if strings.HasPrefix(c.name, "nd-ev-reuse") {
				reuseStart = append(reuseStart, m.Binding.Owner.StartTime)
			}
		}
		if reused && (len(reuseStart) != 2 || !reuseStart[0].Before(reuseStart[1])) {
			t.Errorf("reused pid %d: owner start times %v, want two, the first earlier", a.pid, reuseStart)
		}
	}
	t.Run("live", func(t *testing.T) { verify(t, et.tr) })
	if st := et.tr.Stats().EventSource; st.Name != "ebpf" || st.Delivered == 0 || st.Applied == 0 {
		t.Errorf("event source stats %+v: want events delivered and applied", st)
	}

	et.stop()
	t.Run("after restart", func(t *testing.T) {
		st, err := OpenStore(state, StoreOptions{ReadOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		verify(t, st)
	})
}

// TestEBPFAndScanAgree: a connection that both the eBPF source and the
// scans see is one binding, from the connect event's time, with the
// scanner's details of its owner.
func TestEBPFAndScanAgree(t *testing.T) {
	needEBPF(t)
	et := startEBPFTracker(t, t.TempDir())
	srv := startHelper(t, helperOpts{comm: "nd-ev-server"})
	server := netip.MustParseAddrPort(srv.info.TCP4)
	before := time.Now()
	c, err := net.Dial("tcp4", server.String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	local := netip.MustParseAddrPort(c.LocalAddr().String())
	// Wait for a scan to see it, then close it.
	deadline := time.Now().Add(5 * time.Second)
	for !viewHas(et.tr.Current(), local) {
		if time.Now().After(deadline) {
			t.Fatalf("no scan saw %s", local)
		}
		time.Sleep(50 * time.Millisecond)
	}
	c.Close()
	closed := time.Now()
	var got []string
	deadline = time.Now().Add(5 * time.Second)
	for {
		got = got[:0]
		var ivs []Binding
		err := et.tr.History(context.Background(), before.Add(-time.Minute), time.Time{}, func(b Binding) error {
			if b.Proto == ProtoTCP && b.Local == local && b.Remote == server {
				ivs = append(ivs, b)
				got = append(got, describeInterval(&b))
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(ivs) == 1 && !ivs[0].Open() {
			b := ivs[0]
			if b.Owner == nil || b.Owner.PID != int32(os.Getpid()) || b.Owner.Exe == "" {
				t.Errorf("owner %+v, want this process with its details", b.Owner)
			}
			if b.From.Before(before.Add(-50*time.Millisecond)) || b.From.After(before.Add(100*time.Millisecond)) {
				t.Errorf("from %v, want the connect's time (about %v)", b.From, before)
			}
			if b.Until.After(closed.Add(100 * time.Millisecond)) {
				t.Errorf("until %v, want the close's time (about %v)", b.Until, closed)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("history of %s: %v, want one closed interval", local, got)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func viewHas(v *View, local netip.AddrPort) bool {
	for i := range v.Bindings {
		if v.Bindings[i].Local == local {
			return true
		}
	}
	return false
}

// TestOpenEventSource: the modes, and the fallback of auto when the eBPF
// source cannot load (simulated with a missing kernel BTF file): said
// once, with the reason, and the tracker polls.
func TestOpenEventSource(t *testing.T) {
	missing := ebpf.Options{KernelBTF: filepath.Join(t.TempDir(), "vmlinux")}
	for _, tc := range []struct {
		name     string
		opts     EventSourceOptions
		wantErr  string
		warnings int
	}{
		{name: "poll", opts: EventSourceOptions{Mode: EventsPoll}},
		{name: "auto falls back", opts: EventSourceOptions{Mode: EventsAuto, EBPF: missing}, warnings: 1},
		{name: "empty is auto", opts: EventSourceOptions{EBPF: missing}, warnings: 1},
		{name: "ebpf fails", opts: EventSourceOptions{Mode: EventsEBPF, EBPF: missing}, wantErr: "kernel BTF"},
		{name: "bad mode", opts: EventSourceOptions{Mode: "kprobe"}, wantErr: "unknown event source"},
		{name: "bad options are errors", opts: EventSourceOptions{Mode: EventsAuto, EBPF: ebpf.Options{RingBufferBytes: 1000}}, wantErr: "ring buffer"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var logs strings.Builder
			tc.opts.Logger = slog.New(slog.NewTextHandler(&logs, nil))
			src, err := OpenEventSource(tc.opts)
			if src != nil {
				src.Close()
				t.Fatalf("got a source %s, want none", src.Name())
			}
			if tc.wantErr == "" && err != nil {
				t.Fatalf("error %v", err)
			}
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one saying %q", err, tc.wantErr)
				}
				if tc.opts.Mode == EventsEBPF && !errors.Is(err, ebpf.ErrUnsupported) {
					t.Errorf("error %v does not match ebpf.ErrUnsupported", err)
				}
			}
			if n := strings.Count(logs.String(), "level=WARN"); n != tc.warnings {
				t.Errorf("%d warnings, want %d:\n%s", n, tc.warnings, logs.String())
			}
			if tc.warnings > 0 && (!strings.Contains(logs.String(), "polling only") || !strings.Contains(logs.String(), "kernel BTF")) {
				t.Errorf("the fallback notice does not say polling only and why:\n%s", logs.String())
			}
		})
	}

	t.Run("a tracker without a source polls", func(t *testing.T) {
		src, err := OpenEventSource(EventSourceOptions{EBPF: missing})
		if err != nil || src != nil {
			t.Fatalf("OpenEventSource: %v %v", src, err)
		}
		tr, fs := newTestTracker(t, "", Options{})
		fs.set(at(1), addrs("127.0.0.1"), listen("127.0.0.1:80", 1, proc(1, 0, "web")))
		if err := tr.ScanOnce(context.Background()); err != nil {
			t.Fatal(err)
		}
		if got := historyOf(t, tr); len(got) != 1 || tr.Stats().EventSource.Name != "" {
			t.Errorf("history %v, event source stats %+v", got, tr.Stats().EventSource)
		}
	})

	t.Run("auto loads where it can", func(t *testing.T) {
		needEBPF(t)
		src, err := OpenEventSource(EventSourceOptions{Mode: EventsAuto})
		if err != nil || src == nil {
			t.Fatalf("OpenEventSource(auto) as root: %v, %v", src, err)
		}
		if err := src.Close(); err != nil {
			t.Error(err)
		}
	})
}
