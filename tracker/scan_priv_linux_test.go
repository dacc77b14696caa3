package tracker

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// TestScanUnprivileged runs a scan as user nobody while a root helper
// holds sockets: the scan must work, attribute the unprivileged process's
// own socket, list the root helper among the denied pids and leave its
// sockets without owner.
func TestScanUnprivileged(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to start a process as nobody (uid 65534); run the tests as root to cover the unprivileged scan")
	}
	h := startHelper(t, helperOpts{comm: "nd-root-srv"})
	// nobody must be able to reach the binary: copy it to a world-readable
	// directory of its own.
	dir, err := os.MkdirTemp("", "nd-unpriv-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	exe := copyBinary(t, dir, "nd-unpriv-scan")
	cmd := exec.Command(exe, helperRun)
	cmd.Env = append(os.Environ(), helperEnv+"=scan")
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("unprivileged scan: %v\nstderr:\n%s", err, stderr.String())
		}
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		<-done
		t.Fatal("unprivileged scan did not finish within 30s")
	}
	var rep unprivReport
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatalf("report %q: %v", stdout.String(), err)
	}
	if rep.UID != 65534 {
		t.Fatalf("scan ran as uid %d", rep.UID)
	}
	if !slices.Contains(rep.Denied, h.pid()) {
		t.Errorf("denied pids %v lack the root helper %d", rep.Denied, h.pid())
	}
	var ownFound, rootFound bool
	for _, s := range rep.Sockets {
		switch {
		case s.Proto == "udp" && s.Local == rep.Own:
			ownFound = true
			if s.PID != int32(cmd.Process.Pid) || s.User != "nobody" {
				t.Errorf("own socket %s: pid %d user %q, want %d nobody", s.Local, s.PID, s.User, cmd.Process.Pid)
			}
		case s.Proto == "tcp" && s.Local == h.info.TCP4:
			rootFound = true
			if s.PID != 0 {
				t.Errorf("root helper's socket attributed to pid %d without privileges", s.PID)
			}
		}
	}
	if n := bytes.Count(stderr.Bytes(), []byte("permission denied")); n != 1 {
		t.Errorf("the denial was logged %d times in two scans, want once:\n%s", n, stderr.String())
	}
	if !ownFound || !rootFound {
		t.Errorf("own socket found %v, root helper's socket found %v", ownFound, rootFound)
	}
}

// TestScanOtherNetNS starts a helper in a network namespace of its own
// (clone with CLONE_NEWNET, as unshare -n does) and checks that its
// sockets are listed, with that namespace and owner, only with AllNetNS.
func TestScanOtherNetNS(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to create a network namespace (CLONE_NEWNET) and to setns into it; run the tests as root to cover other namespaces")
	}
	h := startHelper(t, helperOpts{role: "serve-any", comm: "nd-netns-srv", attr: &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET}})
	link, err := os.Readlink("/proc/" + strconv.Itoa(int(h.pid())) + "/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	ns := parseNSLink(link)
	if ns == 0 || ns == ownNetNS(t) {
		t.Fatalf("helper netns %q is not a new namespace", link)
	}
	for _, source := range []string{SourceNetlink, SourceProcfs} {
		for _, all := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/all=%v", source, all), func(t *testing.T) {
				s := newTestScanner(t, ScanOptions{Source: source, AllNetNS: all})
				snap := scan(t, s)
				for _, c := range []struct {
					proto Proto
					addr  string
				}{{ProtoTCP, h.info.TCP4}, {ProtoUDP, h.info.UDP4}} {
					var got []Observed
					for _, o := range find(snap, c.proto, c.addr, "") {
						if o.NetNS == ns {
							got = append(got, o)
						}
					}
					if !all {
						if len(got) != 0 {
							t.Errorf("%s %s of netns %d listed without AllNetNS", c.proto, c.addr, ns)
						}
						continue
					}
					if len(got) != 1 {
						t.Fatalf("%s %s in netns %d: %d sockets, want 1", c.proto, c.addr, ns, len(got))
					}
					if o := got[0]; o.Owner == nil || o.Owner.PID != h.pid() || o.Owner.Name != "nd-netns-srv" {
						t.Errorf("%s %s owner %+v, want pid %d nd-netns-srv", c.proto, c.addr, o.Owner, h.pid())
					}
				}
				// A second scan reuses the namespace's source.
				if all {
					before := len(s.netns)
					scan(t, s)
					if len(s.netns) != before || before == 0 {
						t.Errorf("namespace sources %d then %d", before, len(s.netns))
					}
				}
			})
		}
	}
	// When the namespace's last process is gone, its source is closed.
	s := newTestScanner(t, ScanOptions{AllNetNS: true})
	scan(t, s)
	if _, ok := s.netns[ns]; !ok {
		t.Fatalf("no source for netns %d", ns)
	}
	h.stop()
	scan(t, s)
	if _, ok := s.netns[ns]; ok {
		t.Errorf("source of netns %d kept after its last process exited", ns)
	}
}

// TestScanExec checks that a socket owner that execs another program
// keeps its sockets and gets its new name, with the proc connector
// (which also reports the exec and the exit on Changes) and without it
// (polling the executable's inode).
func TestScanExec(t *testing.T) {
	for _, events := range []bool{false, true} {
		t.Run(fmt.Sprintf("events=%v", events), func(t *testing.T) {
			if events && os.Geteuid() != 0 {
				t.Skip("the proc connector needs root (CAP_NET_ADMIN); run the tests as root to cover it")
			}
			target := copyBinary(t, t.TempDir(), "nd-exec-target")
			h := startHelper(t, helperOpts{comm: "nd-before-exec"})
			s := newTestScanner(t, ScanOptions{ProcEvents: events})
			if events && s.events == nil {
				t.Fatal("proc connector not subscribed")
			}
			snap := scan(t, s)
			if o := findOne(t, snap, ProtoTCP, h.info.TCP4, ""); o.Owner == nil || o.Owner.Name != "nd-before-exec" {
				t.Fatalf("before exec: owner %+v", o.Owner)
			}
			for len(s.Changes()) > 0 {
				<-s.Changes()
			}
			if _, err := fmt.Fprintln(h.in, "exec "+target); err != nil {
				t.Fatal(err)
			}
			if events {
				// The connector must report the exec of this very pid, and
				// Changes must fire (other owners on the host may make it
				// fire too, so that alone proves little).
				waitFor(t, "the proc connector to report the helper's exec", func() bool {
					s.events.mu.Lock()
					defer s.events.mu.Unlock()
					return s.events.changed[h.pid()]
				})
				select {
				case <-s.Changes():
				case <-time.After(10 * time.Second):
					t.Fatal("no change reported within 10s of the owner's exec")
				}
			}
			// A scan during the exec itself may see the process without its
			// fds for a moment; the next ones must show the new program.
			var o Observed
			waitFor(t, "the exec'd helper to show under its new name", func() bool {
				o = findOne(t, scan(t, s), ProtoTCP, h.info.TCP4, "")
				return o.Owner != nil && o.Owner.Name == "nd-exec-target"
			})
			if o.Owner == nil || o.Owner.PID != h.pid() || o.Owner.Name != "nd-exec-target" || o.Owner.Exe != target {
				t.Fatalf("after exec: owner %+v, want pid %d nd-exec-target", o.Owner, h.pid())
			}
			if events {
				for len(s.Changes()) > 0 {
					<-s.Changes()
				}
				h.stop()
				select {
				case <-s.Changes():
				case <-time.After(10 * time.Second):
					t.Fatal("no change reported within 10s of the owner's exit")
				}
				if got := find(scan(t, s), ProtoTCP, h.info.TCP4, ""); len(got) != 0 {
					t.Errorf("listener still listed after its owner exited: %+v", got)
				}
			}
		})
	}
}

// waitFor polls cond every 20ms for up to 10s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestScanSetuid checks that an owner that drops root after binding (as
// daemons do) gets its new user: at the next scan with the proc
// connector, within execPollEvery scans without it.
func TestScanSetuid(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to start a helper that drops root")
	}
	for _, events := range []bool{false, true} {
		t.Run(fmt.Sprintf("events=%v", events), func(t *testing.T) {
			h := startHelper(t, helperOpts{comm: "nd-setuid-srv"})
			s := newTestScanner(t, ScanOptions{ProcEvents: events})
			if o := findOne(t, scan(t, s), ProtoTCP, h.info.TCP4, ""); o.Owner == nil || o.Owner.User != "root" {
				t.Fatalf("before setuid: owner %+v", o.Owner)
			}
			h.command(t, "setuid")
			scans := execPollEvery
			if events {
				waitFor(t, "the proc connector to report the helper's setuid", func() bool {
					s.events.mu.Lock()
					defer s.events.mu.Unlock()
					return s.events.changed[h.pid()]
				})
				scans = 1
			}
			var o Observed
			for range scans {
				if o = findOne(t, scan(t, s), ProtoTCP, h.info.TCP4, ""); o.Owner != nil && o.Owner.UID == 65534 {
					break
				}
			}
			if o.Owner == nil || o.Owner.UID != 65534 || o.Owner.User != "nobody" || o.Owner.PID != h.pid() {
				t.Errorf("%d scans after setuid: owner %+v, want pid %d uid 65534 nobody", scans, o.Owner, h.pid())
			}
		})
	}
}
