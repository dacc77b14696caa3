//go:build linux

package ebpf

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	cebpf "github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// clockSlack allows for the boot-to-wall conversion and clock reads.
const clockSlack = 50 * time.Millisecond

// seen is the part of an event the attribution tests compare.
type seen struct {
	Kind      Kind
	Proto     uint8
	Local     netip.AddrPort
	Remote    netip.AddrPort
	State     uint8
	TGID      int32
	Comm      string
	Hook      Hook
	Inherited bool
}

func project(ev *ConnEvent) seen {
	s := seen{Kind: ev.Kind, Proto: ev.Proto, Local: ev.Local, Remote: ev.Remote, State: ev.State, Inherited: ev.Inherited}
	if ev.Owner != nil {
		s.TGID, s.Comm, s.Hook = ev.Owner.TGID, ev.Owner.Comm, ev.Owner.Hook
	}
	return s
}

// diffSeen compares two projections (-want +got).
func diffSeen(want, got seen) string {
	return cmp.Diff(want, got, cmpopts.EquateComparable(netip.AddrPort{}))
}

// between fails the test unless t is within [from-clockSlack, to+clockSlack].
func between(t *testing.T, what string, got, from, to time.Time) {
	t.Helper()
	if got.Before(from.Add(-clockSlack)) || got.After(to.Add(clockSlack)) {
		t.Errorf("%s = %v, want between %v and %v", what, got.Format(time.StampMicro),
			from.Format(time.StampMicro), to.Format(time.StampMicro))
	}
}

// TestTCPClientShortLived: a child that connects, sends a byte and closes
// within milliseconds, then exits, is attributed by pid and name with the
// exact 4-tuple, and so is the accepting side (this test process).
func TestTCPClientShortLived(t *testing.T) {
	src, col := startSource(t, Options{})
	dir := buildHelpers(t)
	for _, tc := range []struct{ name, network, listen string }{
		{"ipv4", "tcp4", "127.0.0.1:0"},
		{"ipv6", "tcp6", "[::1]:0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ln, err := net.Listen(tc.network, tc.listen)
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
			server := netip.MustParseAddrPort(ln.Addr().String())

			before := time.Now()
			ch := startChild(t, dir, "nd-bpf-tcpcli", server.String())
			local := ch.addrPort(t, "local")
			ch.stop(t)
			after := time.Now()
			pid := int32(ch.cmd.Process.Pid)

			conn := col.waitN(t, 1, "connect", func(e *ConnEvent) bool {
				return e.Kind == KindConnect && e.Local == local
			})[0]
			want := seen{Kind: KindConnect, Proto: ProtoTCP, Local: local, Remote: server, State: StateEstablished,
				TGID: pid, Comm: "nd-bpf-tcpcli", Hook: HookConnect}
			if diff := diffSeen(want, project(&conn)); diff != "" {
				t.Errorf("connect event (-want +got):\n%s", diff)
			}
			between(t, "connect time", conn.Time, before, after)
			if conn.Owner != nil {
				between(t, "owner start time", conn.Owner.StartTime, before, after)
			}

			acc := col.waitN(t, 1, "accept", func(e *ConnEvent) bool {
				return e.Kind == KindAccept && e.Remote == local
			})[0]
			want = seen{Kind: KindAccept, Proto: ProtoTCP, Local: server, Remote: local, State: StateEstablished,
				TGID: int32(os.Getpid()), Comm: selfComm(t), Hook: HookListen, Inherited: true}
			if diff := diffSeen(want, project(&acc)); diff != "" {
				t.Errorf("accept event (-want +got):\n%s", diff)
			}

			cl := col.waitN(t, 1, "close", func(e *ConnEvent) bool {
				return e.Kind == KindClose && e.Cookie == conn.Cookie
			})[0]
			if cl.Owner == nil || cl.Owner.TGID != pid || cl.Local != local || cl.Remote != server {
				t.Errorf("close event %s, want owner %d and %s -> %s", cl.String(), pid, local, server)
			}
		})
	}
	if st := src.Stats(); st.Events == 0 || st.Submitted < st.Events {
		t.Errorf("stats %+v: want events delivered and submitted >= delivered", st)
	}
}

// TestUDPClientOneDatagram: a child sends a single datagram from a socket
// it never binds (sendto binds on the fly; connect binds at connect time)
// and exits; the datagram is attributed to it.
func TestUDPClientOneDatagram(t *testing.T) {
	_, col := startSource(t, Options{})
	dir := buildHelpers(t)
	for _, tc := range []struct {
		name, network, listen, mode string
		state                       uint8
		hook                        Hook
	}{
		{"ipv4 sendto", "udp4", "127.0.0.1:0", "sendto", StateClose, HookCreate},
		{"ipv4 connect", "udp4", "127.0.0.1:0", "connect", StateEstablished, HookConnect},
		{"ipv6 sendto", "udp6", "[::1]:0", "sendto", StateClose, HookCreate},
		{"ipv6 connect", "udp6", "[::1]:0", "connect", StateEstablished, HookConnect},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pc, err := net.ListenPacket(tc.network, tc.listen)
			if err != nil {
				t.Fatal(err)
			}
			defer pc.Close()
			server := netip.MustParseAddrPort(pc.LocalAddr().String())

			before := time.Now()
			ch := startChild(t, dir, "nd-bpf-udpcli", server.String(), tc.mode)
			sock := ch.addrPort(t, "local")
			ch.stop(t)
			after := time.Now()
			pid := int32(ch.cmd.Process.Pid)
			// The packet's source address is the loopback address even
			// when the socket is bound to the wildcard.
			local := netip.AddrPortFrom(server.Addr(), sock.Port())

			dg := col.waitN(t, 1, "datagram", func(e *ConnEvent) bool {
				return e.Kind == KindDatagram && e.Remote == server && e.Local.Port() == local.Port()
			})
			if len(dg) != 1 {
				t.Errorf("%d datagram events, want 1: %v", len(dg), dg)
			}
			want := seen{Kind: KindDatagram, Proto: ProtoUDP, Local: local, Remote: server, State: tc.state,
				TGID: pid, Comm: "nd-bpf-udpcli", Hook: tc.hook}
			if diff := diffSeen(want, project(&dg[0])); diff != "" {
				t.Errorf("datagram event (-want +got):\n%s", diff)
			}
			between(t, "datagram time", dg[0].Time, before, after)

			cl := col.waitN(t, 1, "close", func(e *ConnEvent) bool {
				return e.Kind == KindClose && e.Cookie == dg[0].Cookie
			})[0]
			if cl.Owner == nil || cl.Owner.TGID != pid || cl.Local != local {
				t.Errorf("close event %s, want owner %d, local %s", cl.String(), pid, local)
			}
		})
	}
}

// TestTCPServerPassive: connections accepted by a server child are
// attributed to the server, not to the task that happened to be running
// when the kernel completed the handshake. On loopback the client's final
// ACK is processed in softirq on the client's CPU, typically while the
// client (this test process) is the current task, so an attribution taken
// from the current task there would name the client.
func TestTCPServerPassive(t *testing.T) {
	_, col := startSource(t, Options{})
	dir := buildHelpers(t)
	for _, network := range []string{"tcp4", "tcp6"} {
		t.Run(network, func(t *testing.T) {
			srv := startChild(t, dir, "nd-bpf-tcpsrv", network)
			addr := srv.addrPort(t, "addr")
			pid := int32(srv.cmd.Process.Pid)

			lis := col.waitN(t, 1, "listen", func(e *ConnEvent) bool {
				return e.Kind == KindListen && e.Local == addr
			})[0]
			want := seen{Kind: KindListen, Proto: ProtoTCP, Local: addr, Remote: lis.Remote, State: StateListen,
				TGID: pid, Comm: "nd-bpf-tcpsrv", Hook: HookListen}
			if diff := diffSeen(want, project(&lis)); diff != "" {
				t.Errorf("listen event (-want +got):\n%s", diff)
			}

			var clients []netip.AddrPort
			for range 3 {
				c, err := net.Dial(network, addr.String())
				if err != nil {
					t.Fatal(err)
				}
				clients = append(clients, netip.MustParseAddrPort(c.LocalAddr().String()))
				if _, err := c.Write([]byte("hello")); err != nil {
					t.Fatal(err)
				}
				c.Close()
			}
			for _, cl := range clients {
				acc := col.waitN(t, 1, "accept", func(e *ConnEvent) bool {
					return e.Kind == KindAccept && e.Remote == cl
				})[0]
				want := seen{Kind: KindAccept, Proto: ProtoTCP, Local: addr, Remote: cl, State: StateEstablished,
					TGID: pid, Comm: "nd-bpf-tcpsrv", Hook: HookListen, Inherited: true}
				if diff := diffSeen(want, project(&acc)); diff != "" {
					t.Errorf("accept event (-want +got):\n%s", diff)
				}
				conn := col.waitN(t, 1, "connect", func(e *ConnEvent) bool {
					return e.Kind == KindConnect && e.Local == cl
				})[0]
				if conn.Owner == nil || conn.Owner.TGID != int32(os.Getpid()) {
					t.Errorf("client side %s: want owner %d (this test)", conn.String(), os.Getpid())
				}
			}
		})
	}
}

// TestOwnerIdentity: events carry the process start time exactly as
// /proc/<pid>/stat has it, so the tracker can tell a reused pid apart;
// and when the kernel does hand the same pid to a new process, the two
// are told apart by it.
func TestOwnerIdentity(t *testing.T) {
	_, col := startSource(t, Options{})
	dir := buildHelpers(t)
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
			c.Close()
		}
	}()

	// run starts a client that stays alive until stopped, and returns
	// its connect event and /proc/<pid>/stat start time.
	run := func() (*child, ConnEvent, uint64) {
		ch := startChild(t, dir, "nd-bpf-tcpcli", ln.Addr().String(), "wait")
		local := ch.addrPort(t, "local")
		ticks := procStartTicks(t, ch.cmd.Process.Pid)
		ev := col.waitN(t, 1, "connect", func(e *ConnEvent) bool {
			return e.Kind == KindConnect && e.Local == local
		})[0]
		if ev.Owner == nil {
			t.Fatalf("connect event without owner: %s", ev.String())
		}
		return ch, ev, ticks
	}

	first, ev1, ticks := run()
	if got := ev1.Owner.StartTicks(); got != ticks {
		t.Errorf("StartTicks = %d, /proc/%d/stat starttime = %d", got, ev1.Owner.TGID, ticks)
	}
	if btime := procBootTime(t); !btime.IsZero() {
		fromProc := btime.Add(time.Duration(ticks) * (time.Second / userHZ))
		if d := ev1.Owner.StartTime.Sub(fromProc); d < -time.Second || d > time.Second {
			t.Errorf("StartTime %v differs from /proc's %v by %v", ev1.Owner.StartTime, fromProc, d)
		}
	}
	pid := first.cmd.Process.Pid
	first.stop(t)

	// Ask the kernel to hand out the same pid again (ns_last_pid), and
	// retry a few times: other processes may take it first.
	for attempt := 0; attempt < 10; attempt++ {
		if err := os.WriteFile("/proc/sys/kernel/ns_last_pid", []byte(strconv.Itoa(pid-1)), 0); err != nil {
			t.Skipf("cannot set ns_last_pid to force pid reuse: %v", err)
		}
		second, ev2, _ := run()
		second.stop(t)
		if second.cmd.Process.Pid != pid {
			continue
		}
		if ev2.Owner.TGID != ev1.Owner.TGID {
			t.Fatalf("reused pid: events name pids %d and %d", ev1.Owner.TGID, ev2.Owner.TGID)
		}
		if !ev2.Owner.StartTime.After(ev1.Owner.StartTime) || ev2.Owner.StartBoottime <= ev1.Owner.StartBoottime {
			t.Errorf("reused pid %d: start times %v then %v, want the second later", pid,
				ev1.Owner.StartTime, ev2.Owner.StartTime)
		}
		return
	}
	t.Skipf("pid %d was not reused in 10 attempts (a busy host); start-time identity checked above", pid)
}

// procStartTicks reads field 22 (starttime) of /proc/<pid>/stat.
func procStartTicks(t *testing.T, pid int) uint64 {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		t.Fatal(err)
	}
	// The comm field may hold spaces; fields restart after its ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		t.Fatalf("malformed stat %q", b)
	}
	fields := strings.Fields(string(b[i+1:]))
	if len(fields) < 20 {
		t.Fatalf("short stat %q", b)
	}
	v, err := strconv.ParseUint(fields[19], 10, 64) // field 22 overall
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// procBootTime reads btime from /proc/stat (zero when absent).
func procBootTime(t *testing.T) time.Time {
	t.Helper()
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "btime "); ok {
			s, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			if err == nil {
				return time.Unix(s, 0)
			}
		}
	}
	return time.Time{}
}

// selfComm returns this process's comm.
func selfComm(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("/proc/self/comm")
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// TestUDPDedup: a socket's datagrams to one peer are reported once; each
// new peer is a new conversation.
func TestUDPDedup(t *testing.T) {
	_, col := startSource(t, Options{})
	var peers []netip.AddrPort
	for range 3 {
		pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer pc.Close()
		peers = append(peers, netip.MustParseAddrPort(pc.LocalAddr().String()))
	}
	sender, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer sender.Close()
	local := netip.MustParseAddrPort(sender.LocalAddr().String())
	for range 20 {
		for _, p := range peers {
			if _, err := sender.WriteToUDPAddrPort([]byte("x"), p); err != nil {
				t.Fatal(err)
			}
		}
	}
	fromSender := func(e *ConnEvent) bool { return e.Kind == KindDatagram && e.Local == local }
	col.waitN(t, len(peers), "datagram", fromSender)
	time.Sleep(100 * time.Millisecond) // let any duplicate arrive
	got := col.matching(fromSender)
	var remotes []netip.AddrPort
	for _, e := range got {
		remotes = append(remotes, e.Remote)
	}
	if diff := cmp.Diff(peers, remotes, cmpopts.EquateComparable(netip.AddrPort{})); diff != "" {
		t.Errorf("datagram events' peers (-want +got):\n%s", diff)
	}
}

// TestRingbufDrops: when nobody reads, the kernel counts what it cannot
// queue instead of blocking.
func TestRingbufDrops(t *testing.T) {
	needRoot(t)
	src, err := Open(Options{RingBufferBytes: os.Getpagesize()})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	sender, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer sender.Close()
	const n = 200 // distinct peers: one record each; a page holds ~28
	for port := 1; port <= n; port++ {
		_, _ = sender.WriteToUDPAddrPort([]byte("x"), netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(40000+port)))
	}
	st := src.Stats()
	if st.RingbufDrops == 0 || st.Submitted+st.RingbufDrops < n || st.Events != 0 {
		t.Errorf("stats %+v: want ring-buffer drops, submitted+drops >= %d, nothing delivered", st, n)
	}
}

// TestCloseDetaches: Close leaves nothing attached to the cgroup or the
// tracepoint, and the programs are freed.
func TestCloseDetaches(t *testing.T) {
	needRoot(t)
	src, err := Open(Options{})
	if err != nil {
		t.Fatal(err)
	}
	ids, err := src.programIDs()
	if err != nil {
		src.Close()
		t.Fatal(err)
	}
	ours := map[cebpf.ProgramID]bool{}
	for _, id := range ids {
		ours[id] = true
	}
	cg := cgroupRootForTest(t)
	// attached lists our cgroup attachments and our links.
	attached := func() (cgroup, links []string) {
		f, err := os.Open(cg)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		for _, p := range src.cgroupPrograms() {
			res, err := link.QueryPrograms(link.QueryOptions{Target: int(f.Fd()), Attach: p.attach})
			if err != nil {
				t.Fatalf("query %s: %v", p.name, err)
			}
			for _, ap := range res.Programs {
				if ours[ap.ID] {
					cgroup = append(cgroup, p.name)
				}
			}
		}
		it := new(link.Iterator)
		defer it.Close()
		for it.Next() {
			info, err := it.Link.Info()
			if err == nil && ours[info.Program] {
				links = append(links, fmt.Sprintf("link %d (type %d)", it.ID, info.Type))
			}
		}
		if err := it.Err(); err != nil {
			t.Fatalf("link iteration: %v", err)
		}
		return cgroup, links
	}
	cgroup, links := attached()
	if n := len(src.cgroupPrograms()); len(cgroup) != n || len(links) != n+1 {
		t.Errorf("while open: cgroup attachments %v, links %v; want %d and %d", cgroup, links, n, n+1)
	}
	if err := src.Close(); err != nil {
		t.Fatal(err)
	}
	if cgroup, links := attached(); len(cgroup)+len(links) != 0 {
		t.Errorf("after Close, still attached: %v %v", cgroup, links)
	}
	// Program objects are freed after an RCU grace period.
	for _, id := range ids {
		for attempt := 0; ; attempt++ {
			p, err := cebpf.NewProgramFromID(id)
			if errors.Is(err, os.ErrNotExist) {
				break
			}
			if err == nil {
				p.Close()
			}
			if attempt == 50 {
				t.Errorf("program %d still exists after Close", id)
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// cgroupRootForTest returns the cgroup v2 root this host has mounted.
func cgroupRootForTest(t *testing.T) string {
	t.Helper()
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	p, err := findCgroup2(f)
	if err != nil || p == "" {
		t.Skipf("no cgroup2 mount to inspect (%v)", err)
	}
	return p
}

// TestFallback: where the source cannot load, Open says why with an error
// matching ErrUnsupported, and nothing is left behind.
func TestFallback(t *testing.T) {
	garbage := filepath.Join(t.TempDir(), "garbage.btf")
	if err := os.WriteFile(garbage, []byte("not BTF at all"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name     string
		opts     Options
		reason   string
		cause    error
		notTyped bool // a plain options error, not ErrUnsupported
	}{
		{name: "missing BTF file", opts: Options{KernelBTF: filepath.Join(t.TempDir(), "vmlinux")},
			reason: "kernel BTF", cause: fs.ErrNotExist},
		{name: "corrupt BTF file", opts: Options{KernelBTF: garbage}, reason: "kernel BTF"},
		{name: "not a cgroup2 directory", opts: Options{CgroupPath: t.TempDir()}, reason: "not a cgroup v2 directory"},
		{name: "bad ring size", opts: Options{RingBufferBytes: 1000}, reason: "ring buffer", notTyped: true},
		{name: "bad poll interval", opts: Options{PollInterval: time.Hour}, reason: "poll interval", notTyped: true},
		{name: "bad conversations", opts: Options{Conversations: -1}, reason: "conversations", notTyped: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.opts.CgroupPath != "" {
				needRoot(t) // the load must succeed to reach the attach step
			}
			src, err := Open(tc.opts)
			if err == nil {
				src.Close()
				t.Fatal("Open succeeded, want an error")
			}
			if got := errors.Is(err, ErrUnsupported); got == tc.notTyped {
				t.Errorf("errors.Is(%v, ErrUnsupported) = %t", err, got)
			}
			if !strings.Contains(err.Error(), tc.reason) {
				t.Errorf("error %q does not say %q", err, tc.reason)
			}
			if tc.cause != nil && !errors.Is(err, tc.cause) {
				t.Errorf("error %q does not wrap %v", err, tc.cause)
			}
		})
	}

	t.Run("unprivileged", func(t *testing.T) {
		if os.Geteuid() != 0 {
			_, err := Open(Options{})
			if !errors.Is(err, ErrUnsupported) {
				t.Fatalf("Open as uid %d: %v, want ErrUnsupported", os.Geteuid(), err)
			}
			return
		}
		dir := buildHelpers(t)
		cmd := exec.Command(filepath.Join(dir, "nd-bpf-open"))
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("helper as nobody: %v\n%s", err, out)
		}
		s := string(out)
		if !strings.Contains(s, "open=error unsupported=true") || !strings.Contains(s, "permission denied") {
			t.Errorf("as nobody: %q, want an ErrUnsupported saying permission denied", s)
		}
	})
}

// TestPrivateCgroupMount: on a host without a cgroup2 mount, Open mounts
// one privately, attaches, and removes the mount; the source still works.
func TestPrivateCgroupMount(t *testing.T) {
	needRoot(t)
	unshare, err := exec.LookPath("unshare")
	if err != nil {
		t.Skip("skipped: needs unshare(1) to run a child in its own mount namespace")
	}
	dir := buildHelpers(t)
	before, _ := filepath.Glob(filepath.Join(os.TempDir(), "netdumper-cgroup2-*"))
	// The child unmounts every cgroup2 mount in its private mount
	// namespace (the host's mounts are untouched), then opens the source.
	script := `set -e
grep -q ' - cgroup2 ' /proc/self/mountinfo && awk '$0 ~ / - cgroup2 / {print $5}' /proc/self/mountinfo | while read m; do umount -l "$m"; done
if grep -q ' - cgroup2 ' /proc/self/mountinfo; then echo "cgroup2 still mounted"; exit 1; fi
exec "$1"`
	cmd := exec.Command(unshare, "--mount", "--propagation", "private", "sh", "-c", script, "sh", filepath.Join(dir, "nd-bpf-open"))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "open=ok event=ok") {
		t.Errorf("child without cgroup2 mount: %q, want open=ok event=ok", out)
	}
	after, _ := filepath.Glob(filepath.Join(os.TempDir(), "netdumper-cgroup2-*"))
	if len(after) > len(before) {
		t.Errorf("private mount directories left behind: %v", after)
	}
}

// TestInheritedUDPSocket: a UDP socket made and bound by this process and
// used by a child (fd inheritance, as pre-forked servers do) is attributed
// to the child that sends, not to the binder: sendmsg4 re-records the
// owner when another process sends. With NoSendmsgHook it stays the
// binder's.
func TestInheritedUDPSocket(t *testing.T) {
	needRoot(t)
	dir := buildHelpers(t)
	for _, tc := range []struct {
		name      string
		opts      Options
		childOwns bool
	}{
		{"sendmsg hook", Options{}, true},
		{"no sendmsg hook", Options{NoSendmsgHook: true}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, col := startSource(t, tc.opts)
			pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer pc.Close()
			server := netip.MustParseAddrPort(pc.LocalAddr().String())
			mine, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
			if err != nil {
				t.Fatal(err)
			}
			defer mine.Close()
			local := netip.MustParseAddrPort(mine.LocalAddr().String())
			f, err := mine.File() // a duplicate descriptor for the child's fd 3
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()

			cmd := exec.Command(filepath.Join(dir, "nd-bpf-udpcli"), server.String(), "inherited")
			cmd.ExtraFiles = []*os.File{f}
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("child: %v\n%s", err, out)
			}
			dg := col.waitN(t, 1, "datagram", func(e *ConnEvent) bool {
				return e.Kind == KindDatagram && e.Local == local && e.Remote == server
			})[0]
			want := seen{Kind: KindDatagram, Proto: ProtoUDP, Local: local, Remote: server, State: StateClose,
				TGID: int32(cmd.Process.Pid), Comm: "nd-bpf-udpcli", Hook: HookSendmsg}
			if !tc.childOwns {
				want.TGID, want.Comm, want.Hook = int32(os.Getpid()), selfComm(t), HookBind
			}
			if diff := diffSeen(want, project(&dg)); diff != "" {
				t.Errorf("datagram event (-want +got):\n%s", diff)
			}
		})
	}
}

// TestPreexistingSockets: sockets made before Open have no recorded owner;
// their events come with a nil Owner, and they still get a KindClose.
func TestPreexistingSockets(t *testing.T) {
	needRoot(t)
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	udpSock, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer udpSock.Close()
	_, col := startSource(t, Options{})

	server := netip.MustParseAddrPort(ln.Addr().String())
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			accepted <- c
		}
		close(accepted)
	}()
	c, err := net.Dial("tcp4", server.String())
	if err != nil {
		t.Fatal(err)
	}
	client := netip.MustParseAddrPort(c.LocalAddr().String())
	if sc := <-accepted; sc != nil {
		sc.Close()
	}
	c.Close()
	acc := col.waitN(t, 1, "accept", func(e *ConnEvent) bool { return e.Kind == KindAccept && e.Remote == client })[0]
	if acc.Owner != nil {
		t.Errorf("accept on a listener older than Open: owner %+v, want nil", acc.Owner)
	}
	col.waitN(t, 1, "close of the accepted socket", func(e *ConnEvent) bool {
		return e.Kind == KindClose && e.Cookie == acc.Cookie && e.Owner == nil
	})

	local := netip.MustParseAddrPort(udpSock.LocalAddr().String())
	if _, err := udpSock.WriteToUDPAddrPort([]byte("x"), server); err != nil {
		t.Fatal(err)
	}
	dg := col.waitN(t, 1, "datagram", func(e *ConnEvent) bool { return e.Kind == KindDatagram && e.Local == local })[0]
	if dg.Owner == nil || dg.Owner.TGID != int32(os.Getpid()) {
		t.Errorf("datagram from an older socket: %s, want this process (sendmsg4 records the sender)", dg.String())
	}
	udpSock.Close()
	col.waitN(t, 1, "close of the UDP socket", func(e *ConnEvent) bool { return e.Kind == KindClose && e.Cookie == dg.Cookie })
}
