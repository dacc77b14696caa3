package tracker

import (
	"context"
	"net/netip"
	"os"
	"os/user"
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
