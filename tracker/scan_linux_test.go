package tracker

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"os"
	"os/user"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// find returns the observed sockets of proto with the given local address
// and remote address ("" for none).
func find(snap *Snapshot, proto Proto, local, remote string) []Observed {
	var out []Observed
	for _, o := range snap.Sockets {
		if o.Proto != proto || o.Local.String() != local {
			continue
		}
		if (remote == "" && o.Connected()) || (remote != "" && o.Remote.String() != remote) {
			continue
		}
		out = append(out, o)
	}
	return out
}

// findOne is find that expects exactly one socket.
func findOne(t *testing.T, snap *Snapshot, proto Proto, local, remote string) Observed {
	t.Helper()
	got := find(snap, proto, local, remote)
	if len(got) != 1 {
		t.Fatalf("%s %s -> %q: found %d sockets, want 1 (%d sockets in the snapshot)", proto, local, remote, len(got), len(snap.Sockets))
	}
	return got[0]
}

func newTestScanner(t *testing.T, opts ScanOptions) *SystemScanner {
	t.Helper()
	s, err := NewSystemScanner(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return s
}

func scan(t *testing.T, s *SystemScanner) *Snapshot {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	snap, err := s.Scan(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return snap
}

func ownNetNS(t *testing.T) uint64 {
	t.Helper()
	l, err := os.Readlink("/proc/self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	return parseNSLink(l)
}

// TestScanHelperSockets starts a helper holding TCP and UDP sockets, v4
// and v6, and checks that a scan attributes each one to it, with the
// right name in both naming cases: comm renamed (differs from the exe),
// and comm cut from a long executable name.
func TestScanHelperSockets(t *testing.T) {
	me, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	longDir := t.TempDir()
	longExe := copyBinary(t, longDir, "nd-test-server-long-name")
	netns := ownNetNS(t)
	namings := []struct {
		name              string
		opts              helperOpts
		wantComm, wantExe string
		wantName          string
	}{
		{"renamed", helperOpts{comm: "nd-renamed-srv"}, "nd-renamed-srv", testBinary(t), "nd-renamed-srv"},
		{"long exe name", helperOpts{exe: longExe}, "nd-test-server-", longExe, "nd-test-server-long-name"},
	}
	for _, nm := range namings {
		t.Run(nm.name, func(t *testing.T) {
			start := time.Now()
			h := startHelper(t, nm.opts)
			for _, source := range []string{SourceNetlink, SourceProcfs} {
				t.Run(source, func(t *testing.T) {
					s := newTestScanner(t, ScanOptions{Source: source})
					snap := scan(t, s)
					if got := s.Stats().Source; got != source {
						t.Fatalf("source %q, want %q", got, source)
					}
					checkOwner := func(o Observed, inherited bool) {
						t.Helper()
						if o.Owner == nil {
							t.Fatalf("%s %s %s: no owner", o.Proto, o.Local, o.State)
						}
						p := o.Owner
						if p.PID != h.pid() || p.Name != nm.wantName || p.Comm != nm.wantComm || p.Exe != nm.wantExe {
							t.Errorf("%s %s: owner pid %d name %q comm %q exe %q, want %d %q %q %q",
								o.Proto, o.Local, p.PID, p.Name, p.Comm, p.Exe, h.pid(), nm.wantName, nm.wantComm, nm.wantExe)
						}
						if strconv.Itoa(int(p.UID)) != me.Uid || p.User != me.Username {
							t.Errorf("%s %s: owner uid %d user %q, want %s %q", o.Proto, o.Local, p.UID, p.User, me.Uid, me.Username)
						}
						if !strings.Contains(p.Cmdline, "nd-helper") {
							t.Errorf("cmdline %q lacks the helper's argument", p.Cmdline)
						}
						if p.StartTime.Before(start.Add(-3*time.Second)) || p.StartTime.After(time.Now().Add(3*time.Second)) {
							t.Errorf("start time %v, helper started at %v", p.StartTime, start)
						}
						if o.Inherited != inherited {
							t.Errorf("%s %s %s: inherited %v, want %v", o.Proto, o.Local, o.State, o.Inherited, inherited)
						}
						if o.NetNS != netns {
							t.Errorf("netns %d, want %d", o.NetNS, netns)
						}
					}
					for _, c := range []struct {
						proto Proto
						addr  string
						state State
					}{
						{ProtoTCP, h.info.TCP4, StateListen},
						{ProtoTCP, h.info.TCP6, StateListen},
						{ProtoUDP, h.info.UDP4, StateUnconn},
						{ProtoUDP, h.info.UDP6, StateUnconn},
						{ProtoTCP, h.info.Pending, StateListen},
					} {
						o := findOne(t, snap, c.proto, c.addr, "")
						if o.State != c.state || o.Inode == 0 || o.Connected() {
							t.Errorf("%s %s: state %s inode %d remote %s, want %s with an inode and no peer", c.proto, c.addr, o.State, o.Inode, o.Remote, c.state)
						}
						checkOwner(o, false)
					}
					// The helper's client socket is its own; the server side,
					// never accepted, has inode 0 and goes to the listener.
					cli := findOne(t, snap, ProtoTCP, h.info.PendingCli, h.info.Pending)
					if cli.State != StateEstablished || cli.Inode == 0 {
						t.Errorf("client: state %s inode %d", cli.State, cli.Inode)
					}
					checkOwner(cli, false)
					queued := findOne(t, snap, ProtoTCP, h.info.Pending, h.info.PendingCli)
					if queued.Inode != 0 {
						t.Errorf("accept-queue socket has inode %d, want 0", queued.Inode)
					}
					checkOwner(queued, true)
					for _, a := range []string{"127.0.0.1", "::1"} {
						found := false
						for _, x := range snap.Addrs {
							found = found || x == netip.MustParseAddr(a)
						}
						if !found {
							t.Errorf("host addresses %v lack %s", snap.Addrs, a)
						}
					}
				})
			}
		})
	}
}

// TestScanIncremental checks that rescans read only what changed: a
// stable process is not re-read, a process that opens a socket is re-read
// once (its fd count changed), and a socket swapped for another at the
// same fd count is found by a short candidate search.
func TestScanIncremental(t *testing.T) {
	h := startHelper(t, helperOpts{comm: "nd-incr-srv"})
	waitFDsStable(t, h.pid())
	s := newTestScanner(t, ScanOptions{Source: SourceNetlink, WideSearchInterval: -1})
	scan(t, s)
	st1 := s.Stats()
	e := s.procs[h.pid()]
	if e == nil || e.readScan != 1 {
		t.Fatalf("helper not read by the first scan: %+v", e)
	}

	scan(t, s)
	st2 := s.Stats()
	if e.readScan != 1 {
		t.Errorf("unchanged helper re-read in scan %d", e.readScan)
	}
	if d := st2.FDDirReads - st1.FDDirReads; d*2 >= st1.FDDirReads {
		t.Errorf("steady rescan read %d fd dirs, the first scan %d", d, st1.FDDirReads)
	}
	t.Logf("fd dirs read: first scan %d, rescan %d; links %d", st1.FDDirReads, st2.FDDirReads-st1.FDDirReads, st1.FDLinkReads)

	extra := h.command(t, "udp").Extra
	snap := scan(t, s)
	st3 := s.Stats()
	if e.readScan != 3 {
		t.Errorf("helper with a new socket last read in scan %d, want 3", e.readScan)
	}
	if o := findOne(t, snap, ProtoUDP, extra, ""); o.Owner == nil || o.Owner.PID != h.pid() {
		t.Errorf("new socket %s owner %+v, want pid %d", extra, o.Owner, h.pid())
	}
	if d := st3.CandidateReads - st2.CandidateReads; d != 0 {
		t.Errorf("%d candidate reads for a socket the fd count signalled", d)
	}

	swapped := h.command(t, "swap").Extra
	if s.procs[h.pid()].sig.count != e.sig.count {
		t.Logf("fd count changed across the swap; the candidate path may not be exercised")
	}
	snap = scan(t, s)
	st4 := s.Stats()
	if o := findOne(t, snap, ProtoUDP, swapped, ""); o.Owner == nil || o.Owner.PID != h.pid() {
		t.Errorf("swapped socket %s owner %+v, want pid %d", swapped, o.Owner, h.pid())
	}
	if d := st4.CandidateReads - st3.CandidateReads; d > 8 {
		t.Errorf("%d candidate reads to find a socket of the most recently active process, want at most 8", d)
	}
	t.Logf("candidate reads for the swapped socket: %d", st4.CandidateReads-st3.CandidateReads)

	scan(t, s)
	st5 := s.Stats()
	if e.readScan > 4 {
		t.Errorf("helper re-read in scan %d with nothing changed", e.readScan)
	}
	if d := st5.CandidateReads - st4.CandidateReads; d != 0 {
		t.Errorf("%d candidate reads with nothing changed", d)
	}
}

// fakeSource is a SocketSource returning fixed sockets.
type fakeSource struct {
	socks []Socket
	err   error
	calls int
}

func (f *fakeSource) AppendSockets(_ context.Context, dst []Socket) ([]Socket, error) {
	f.calls++
	if f.err != nil {
		return dst, f.err
	}
	return append(dst, f.socks...), nil
}
func (f *fakeSource) Name() string { return "fake" }
func (f *fakeSource) Close() error { return nil }

// TestScanUnknownInodeNoStorm checks that inodes no process holds cost
// one bounded search, never a rescan per scan.
func TestScanUnknownInodeNoStorm(t *testing.T) {
	known := Socket{Proto: ProtoTCP, Local: netip.MustParseAddrPort("0.0.0.0:22"), State: StateListen, Inode: 1001}
	orphan := func(ino uint64, uid uint32) Socket {
		return Socket{Proto: ProtoUDP, Local: netip.MustParseAddrPort("0.0.0.0:" + strconv.Itoa(int(ino%60000))), State: StateUnconn, Inode: ino, UID: uid}
	}
	const fixturePids = 6 // testdata/proc: 2 100 200 300 400 500
	tests := []struct {
		name      string
		wide      time.Duration
		newUID    uint32 // uid of the inode that appears at scan 3
		wantScan3 uint64 // fd dir reads in scan 3
		wantWide  uint64
	}{
		// The fixture's fd directories belong to the tester (root), so
		// every fixture process is a candidate for uid 0 and none for 1000.
		{"candidates of the uid, no sweep", -1, 0, fixturePids, 0},
		{"no candidate, no sweep", -1, 1000, 0, 0},
		{"no candidate, one sweep", time.Nanosecond, 1000, fixturePids, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := &fakeSource{socks: []Socket{known, orphan(9999, 0)}}
			s := newTestScanner(t, ScanOptions{ProcRoot: "testdata/proc", SocketSource: src, PasswdFile: "testdata/passwd", WideSearchInterval: tt.wide})
			reads := func() uint64 { return s.Stats().FDDirReads }
			snap := scan(t, s)
			if got := reads(); got != fixturePids {
				t.Fatalf("first scan read %d fd dirs, want %d", got, fixturePids)
			}
			if o := findOne(t, snap, ProtoTCP, "0.0.0.0:22", ""); o.Owner == nil || o.Owner.PID != 100 {
				t.Fatalf("fixture listener owner %+v, want pid 100", o.Owner)
			}
			scan(t, s)
			if got := reads(); got != fixturePids {
				t.Errorf("second scan read %d fd dirs for an inode the first scan could not find", got-fixturePids)
			}
			src.socks = append(src.socks, orphan(8888, tt.newUID))
			scan(t, s)
			if got := reads() - fixturePids; got != tt.wantScan3 {
				t.Errorf("scan with a new unknown inode read %d fd dirs, want %d", got, tt.wantScan3)
			}
			before := reads()
			for range 3 {
				scan(t, s)
			}
			if got := reads() - before; got != 0 {
				t.Errorf("3 more scans read %d fd dirs for inodes already searched", got)
			}
			st := s.Stats()
			if st.WideSearches != tt.wantWide || st.Unresolved != 2 {
				t.Errorf("wide searches %d unresolved %d, want %d and 2", st.WideSearches, st.Unresolved, tt.wantWide)
			}
		})
	}
}

// TestScanFallback checks that in auto mode a failing netlink source is
// replaced by /proc/net once, with one warning.
func TestScanFallback(t *testing.T) {
	var logs bytes.Buffer
	s := newTestScanner(t, ScanOptions{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if !s.canFall || s.source.Name() != SourceNetlink {
		t.Fatalf("auto mode: source %s, fallback allowed %v", s.source.Name(), s.canFall)
	}
	s.source.Close()
	s.source = &fakeSource{err: errors.New("EPROTONOSUPPORT, say")}
	h := startHelper(t, helperOpts{comm: "nd-fallback"})
	for range 2 {
		snap := scan(t, s)
		if o := findOne(t, snap, ProtoTCP, h.info.TCP4, ""); o.Owner == nil || o.Owner.PID != h.pid() {
			t.Errorf("owner %+v after fallback, want pid %d", o.Owner, h.pid())
		}
	}
	if got := s.Stats().Source; got != SourceProcfs {
		t.Errorf("source %q after the netlink failure, want procfs", got)
	}
	if n := strings.Count(logs.String(), "reading /proc/net from now on"); n != 1 {
		t.Errorf("fallback logged %d times, want once:\n%s", n, logs.String())
	}

	// An explicit netlink source never falls back.
	s2 := newTestScanner(t, ScanOptions{Source: SourceNetlink})
	s2.source.Close()
	s2.source = &fakeSource{err: errors.New("boom")}
	if _, err := s2.Scan(t.Context()); err == nil || !strings.Contains(err.Error(), "boom") {
		t.Errorf("scan error %v, want the source's", err)
	}
}

// TestScanExecPoll checks the slow backstop of exec detection without the
// proc connector: a socket owner's executable is compared within
// execPollEvery scans even when its fds do not change.
func TestScanExecPoll(t *testing.T) {
	h := startHelper(t, helperOpts{comm: "nd-poll-srv"})
	s := newTestScanner(t, ScanOptions{Source: SourceNetlink})
	scan(t, s)
	e := s.procs[h.pid()]
	if e == nil || e.proc == nil {
		t.Fatal("helper has no details after a scan")
	}
	real := e.proc.Exe
	fake := *e.proc
	fake.Exe = "/nonexistent/old-exe" // pretend the process exec'd since
	e.proc = &fake
	before := s.Stats().DetailReads
	for range execPollEvery {
		scan(t, s)
	}
	if e.proc == &fake || e.proc.Exe != real {
		t.Errorf("details not reloaded within %d scans of an exe change: exe %q, want %q", execPollEvery, e.proc.Exe, real)
	}
	if d := s.Stats().DetailReads - before; d == 0 {
		t.Error("no detail reads")
	}
}

func TestScanOptionsErrors(t *testing.T) {
	for _, tt := range []struct {
		name string
		opts ScanOptions
		want string
	}{
		{"unknown source", ScanOptions{Source: "ebpf"}, "unknown socket source"},
		{"missing proc root", ScanOptions{ProcRoot: "/nonexistent/proc"}, "/nonexistent/proc"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s, err := NewSystemScanner(tt.opts)
			if err == nil {
				s.Close()
				t.Fatal("no error")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q lacks %q", err, tt.want)
			}
		})
	}
	s := newTestScanner(t, ScanOptions{ProcRoot: "testdata/proc", Source: SourceProcfs})
	s.Close()
	if _, err := s.Scan(t.Context()); err == nil {
		t.Error("scan after close succeeded")
	}
}

// waitFDsStable waits until the number of open fds of pid stays the same
// for 200ms: the Go runtime of a fresh helper may still open files (cgroup
// CPU limits, the race detector's).
func waitFDsStable(t *testing.T, pid int32) {
	t.Helper()
	count := func() int64 {
		fi, err := os.Stat("/proc/" + strconv.Itoa(int(pid)) + "/fd")
		if err != nil {
			t.Fatal(err)
		}
		return fi.Size()
	}
	last := count()
	for range 25 {
		time.Sleep(200 * time.Millisecond)
		n := count()
		if n == last {
			return
		}
		last = n
	}
	t.Fatalf("fd count of pid %d still changing after 5s", pid)
}

func TestDedup(t *testing.T) {
	ap := netip.MustParseAddrPort
	l := Socket{Proto: ProtoTCP, Local: ap("0.0.0.0:80"), State: StateListen, Inode: 7}
	l2 := Socket{Proto: ProtoTCP, Local: ap("0.0.0.0:80"), State: StateListen, Inode: 8} // SO_REUSEPORT
	syn := Socket{Proto: ProtoTCP, Local: ap("10.0.0.1:80"), Remote: ap("10.0.0.2:5000"), State: StateSynRecv}
	est := syn
	est.State = StateEstablished
	other := Socket{Proto: ProtoTCP, Local: ap("10.0.0.1:80"), Remote: ap("10.0.0.2:5000"), State: StateEstablished, NetNS: 99}
	s := &SystemScanner{}
	for _, tt := range []struct {
		name     string
		in, want []Socket
	}{
		{"inode twice", []Socket{l, l2, l}, []Socket{l, l2}},
		{"request then child", []Socket{syn, l, est}, []Socket{est, l}},
		{"child then request", []Socket{est, syn}, []Socket{est}},
		{"same tuple in another netns", []Socket{est, other}, []Socket{est, other}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := s.dedup(slices.Clone(tt.in))
			if !slices.Equal(got, tt.want) {
				t.Errorf("dedup = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestInodeSet(t *testing.T) {
	var h inodeSet
	for round, n := range []int{0, 10, 5000, 3} { // grows, then is reused
		h.reset(n)
		want := map[uint64]bool{}
		for i := range 3 * n {
			ino := uint64(i*7919%(2*n+1) + 1) // repeats values
			if got := h.add(ino); got != !want[ino] {
				t.Fatalf("round %d: add(%d) = %v, want %v", round, ino, got, !want[ino])
			}
			want[ino] = true
		}
	}
}

// TestNetlinkTCPOneWalk checks that the one-walk TCP dump (TCPDIAG_GETSOCK)
// reports the helper's TCP sockets, v4 and v6, exactly as the per-family
// SOCK_DIAG_BY_FAMILY dumps do.
func TestNetlinkTCPOneWalk(t *testing.T) {
	h := startHelper(t, helperOpts{comm: "nd-walk-srv"})
	src, err := newNetlinkSource(t.Context(), true)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	one, err := src.dumpTCP(t.Context(), src.c, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !src.compat {
		t.Skip("this kernel does not answer TCPDIAG_GETSOCK; the scanner dumps TCP per family")
	}
	src.compat = false
	perFamily, err := src.dumpTCP(t.Context(), src.c, nil)
	if err != nil {
		t.Fatal(err)
	}
	pick := func(socks []Socket) []Socket {
		var out []Socket
		for _, s := range socks {
			for _, c := range [][2]string{
				{h.info.TCP4, ""}, {h.info.TCP6, ""}, {h.info.Pending, ""},
				{h.info.PendingCli, h.info.Pending}, {h.info.Pending, h.info.PendingCli},
			} {
				if s.Local.String() == c[0] && ((c[1] == "" && !s.Connected()) || s.Remote.String() == c[1]) {
					out = append(out, s)
				}
			}
		}
		slices.SortFunc(out, func(a, b Socket) int {
			return strings.Compare(a.Local.String()+a.Remote.String(), b.Local.String()+b.Remote.String())
		})
		return out
	}
	got, want := pick(one), pick(perFamily)
	if len(want) != 5 { // 3 listeners, the client and the queued connection
		t.Fatalf("per-family dumps found %d of the helper's TCP sockets, want 5: %+v", len(want), want)
	}
	if !slices.Equal(got, want) {
		t.Errorf("one-walk dump:\n%+v\nper-family dumps:\n%+v", got, want)
	}
}
