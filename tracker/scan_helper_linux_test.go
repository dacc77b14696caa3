package tracker

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The test binary doubles as the helper process that holds sockets: it is
// run with -test.run=^TestHelperProcess$ and ND_TRACKER_HELPER set to the
// role (a TestMain would clash with other tests of the package).
const helperEnv = "ND_TRACKER_HELPER"

// helperRun is the -test.run argument that selects the helper.
const helperRun = "-test.run=^TestHelperProcess$"

// TestHelperProcess is the helper process when ND_TRACKER_HELPER is set,
// and skips otherwise.
func TestHelperProcess(t *testing.T) {
	role := os.Getenv(helperEnv)
	if role == "" {
		t.Skip("runs only as the helper process of other tests")
	}
	if err := runHelper(role); err != nil {
		fmt.Fprintln(os.Stderr, "helper:", err)
		os.Exit(2)
	}
	os.Exit(0)
}

// helperInfo is what the serving helper prints once its sockets are open.
type helperInfo struct {
	PID        int    `json:"pid"`
	TCP4       string `json:"tcp4"`
	TCP6       string `json:"tcp6"`
	UDP4       string `json:"udp4"`
	UDP6       string `json:"udp6"`
	Pending    string `json:"pending"`     // listener that never accepts
	PendingCli string `json:"pending_cli"` // the helper's own client of it
	Extra      string `json:"extra"`       // answer to a command
	Error      string `json:"error"`
}

// runHelper runs one helper role:
//
//	serve      open the sockets of helperInfo (loopback, v4 and v6), print
//	           them as JSON, then obey stdin commands until EOF
//	serve-any  like serve with wildcard TCP and UDP listeners only (for a
//	           fresh network namespace whose lo is down)
//	hold       hold inherited fds until stdin closes (an exec target)
//	scan       run one scan and print a summary (the unprivileged test)
//
// ND_HELPER_COMM, when set, renames the process (its comm).
func runHelper(role string) error {
	if comm := os.Getenv("ND_HELPER_COMM"); comm != "" {
		// PR_SET_NAME renames the calling thread, and Go may run this on
		// any thread; writing /proc/self/comm renames the main thread,
		// whose comm is the process's, through the same kernel function.
		if err := os.WriteFile("/proc/self/comm", []byte(comm), 0); err != nil {
			return fmt.Errorf("rename process: %w", err)
		}
	}
	switch role {
	case "serve", "serve-any":
		return helperServe(role == "serve-any")
	case "hold":
		_, _ = io.Copy(io.Discard, os.Stdin)
		return nil
	case "scan":
		return helperScan()
	}
	return fmt.Errorf("unknown role %q", role)
}

func helperServe(wildcard bool) error {
	enc := json.NewEncoder(os.Stdout)
	info := helperInfo{PID: os.Getpid()}
	listen := func(network, addr string) (net.Listener, string, error) {
		l, err := net.Listen(network, addr)
		if err != nil {
			return nil, "", err
		}
		return l, l.Addr().String(), nil
	}
	packet := func(network, addr string) (net.PacketConn, string, error) {
		c, err := net.ListenPacket(network, addr)
		if err != nil {
			return nil, "", err
		}
		return c, c.LocalAddr().String(), nil
	}
	var hold []io.Closer
	var tcp4 net.Listener
	var err error
	if wildcard {
		if tcp4, info.TCP4, err = listen("tcp4", "0.0.0.0:0"); err != nil {
			return err
		}
		u, a, err := packet("udp4", "0.0.0.0:0")
		if err != nil {
			return err
		}
		info.UDP4 = a
		hold = append(hold, u)
	} else {
		// ND_HELPER_TCP4 binds the IPv4 listener to a given address (to
		// take over a port another helper held).
		addr4 := "127.0.0.1:0"
		if a := os.Getenv("ND_HELPER_TCP4"); a != "" {
			addr4 = a
		}
		if tcp4, info.TCP4, err = listen("tcp4", addr4); err != nil {
			return err
		}
		l6, a, err := listen("tcp6", "[::1]:0")
		if err != nil {
			return err
		}
		info.TCP6 = a
		u4, a, err := packet("udp4", "127.0.0.1:0")
		if err != nil {
			return err
		}
		info.UDP4 = a
		u6, a, err := packet("udp6", "[::1]:0")
		if err != nil {
			return err
		}
		info.UDP6 = a
		pending, a, err := listen("tcp4", "127.0.0.1:0")
		if err != nil {
			return err
		}
		info.Pending = a
		cli, err := net.Dial("tcp4", a)
		if err != nil {
			return err
		}
		info.PendingCli = cli.LocalAddr().String()
		hold = append(hold, l6, u4, u6, pending, cli)
	}
	hold = append(hold, tcp4)
	if err := enc.Encode(info); err != nil {
		return err
	}
	var extra net.PacketConn
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		cmd, arg, _ := strings.Cut(sc.Text(), " ")
		var reply helperInfo
		switch cmd {
		case "udp": // open one more UDP socket
			var a string
			extra, a, err = packet("udp4", "127.0.0.1:0")
			reply.Extra = a
		case "swap": // close the extra socket and open another: same fd count
			extra.Close()
			extra, reply.Extra, err = packet("udp4", "127.0.0.1:0")
		case "setuid": // drop root, as daemons do after binding
			err = syscall.Setuid(65534)
		case "exec": // exec arg, keeping the tcp4 listener
			f, ferr := tcp4.(*net.TCPListener).File()
			if ferr != nil {
				err = ferr
				break
			}
			if _, ferr := unix.FcntlInt(f.Fd(), unix.F_SETFD, 0); ferr != nil {
				err = ferr
				break
			}
			env := []string{helperEnv + "=hold"}
			for _, kv := range os.Environ() {
				if !strings.HasPrefix(kv, helperEnv+"=") && !strings.HasPrefix(kv, "ND_HELPER_COMM=") {
					env = append(env, kv)
				}
			}
			err = syscall.Exec(arg, []string{arg, helperRun}, env)
		default:
			err = fmt.Errorf("unknown command %q", cmd)
		}
		if err != nil {
			reply.Error = err.Error()
		}
		if err := enc.Encode(reply); err != nil {
			return err
		}
	}
	for _, c := range hold {
		c.Close()
	}
	return sc.Err()
}

// helperScan runs as an unprivileged user: it opens a UDP socket of its
// own, scans twice (logging to stderr), and reports what it could see.
func helperScan() error {
	own, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		return err
	}
	defer own.Close()
	s, err := NewSystemScanner(ScanOptions{Logger: slog.New(slog.NewTextHandler(os.Stderr, nil))})
	if err != nil {
		return err
	}
	defer s.Close()
	// Through a tracker, as every command scans: the second scan must not
	// log the denial again.
	rec := &lastSnapshot{Scanner: s}
	tr, err := New(Options{Scanner: rec, Logger: slog.New(slog.NewTextHandler(os.Stderr, nil))})
	if err != nil {
		return err
	}
	defer tr.Close()
	for range 2 {
		if err := tr.ScanOnce(context.Background()); err != nil {
			return err
		}
	}
	snap := rec.last
	out := unprivReport{UID: os.Getuid(), Denied: snap.Denied}
	for _, o := range snap.Sockets {
		rec := unprivSocket{Local: o.Local.String(), Proto: o.Proto.String()}
		if o.Owner != nil {
			rec.PID = o.Owner.PID
			rec.User = o.Owner.User
		}
		out.Sockets = append(out.Sockets, rec)
	}
	out.Own = own.LocalAddr().String()
	return json.NewEncoder(os.Stdout).Encode(out)
}

// lastSnapshot is a Scanner that keeps the last snapshot it gave.
type lastSnapshot struct {
	Scanner
	last *Snapshot
}

func (l *lastSnapshot) Scan(ctx context.Context) (*Snapshot, error) {
	s, err := l.Scanner.Scan(ctx)
	if err == nil {
		l.last = s
	}
	return s, err
}

type unprivReport struct {
	UID     int            `json:"uid"`
	Own     string         `json:"own"`
	Denied  []int32        `json:"denied"`
	Sockets []unprivSocket `json:"sockets"`
}

type unprivSocket struct {
	Proto string `json:"proto"`
	Local string `json:"local"`
	PID   int32  `json:"pid"`
	User  string `json:"user"`
}

// helper is a running helper process.
type helper struct {
	cmd  *exec.Cmd
	in   io.WriteCloser
	out  *bufio.Scanner
	info helperInfo
}

// helperOpts configures startHelper.
type helperOpts struct {
	exe   string // binary to run; default the test binary
	role  string // default "serve"
	comm  string // new comm
	attr  *syscall.SysProcAttr
	noOut bool   // the role prints nothing at start
	tcp4  string // address of the IPv4 listener (default 127.0.0.1:0)
}

// startHelper starts a helper and waits for its sockets. It is stopped by
// pid when the test ends.
func startHelper(t *testing.T, o helperOpts) *helper {
	t.Helper()
	if o.exe == "" {
		o.exe = testBinary(t)
	}
	if o.role == "" {
		o.role = "serve"
	}
	cmd := exec.Command(o.exe, helperRun, "nd-helper")
	cmd.Env = append(os.Environ(), helperEnv+"="+o.role, "ND_HELPER_COMM="+o.comm, "ND_HELPER_TCP4="+o.tcp4)
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = o.attr
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start helper %s: %v", o.exe, err)
	}
	h := &helper{cmd: cmd, in: in, out: bufio.NewScanner(out)}
	t.Cleanup(func() { h.stop() })
	if !o.noOut {
		h.info = h.read(t)
		if h.info.PID != cmd.Process.Pid {
			t.Fatalf("helper reports pid %d, started %d", h.info.PID, cmd.Process.Pid)
		}
	}
	return h
}

// read reads one JSON line from the helper, with a deadline.
func (h *helper) read(t *testing.T) helperInfo {
	t.Helper()
	type res struct {
		info helperInfo
		err  error
	}
	ch := make(chan res, 1)
	go func() {
		var r res
		if !h.out.Scan() {
			r.err = fmt.Errorf("helper output ended: %v", h.out.Err())
		} else {
			r.err = json.Unmarshal(h.out.Bytes(), &r.info)
		}
		ch <- r
	}()
	select {
	case r := <-ch:
		if r.err != nil {
			t.Fatal(r.err)
		}
		if r.info.Error != "" {
			t.Fatalf("helper: %s", r.info.Error)
		}
		return r.info
	case <-time.After(10 * time.Second):
		t.Fatal("helper did not answer within 10s")
	}
	return helperInfo{}
}

// command sends a command line and returns the answer.
func (h *helper) command(t *testing.T, line string) helperInfo {
	t.Helper()
	if _, err := fmt.Fprintln(h.in, line); err != nil {
		t.Fatal(err)
	}
	return h.read(t)
}

func (h *helper) pid() int32 { return int32(h.cmd.Process.Pid) }

// stop kills the helper by pid and reaps it.
func (h *helper) stop() {
	if h.cmd.ProcessState != nil {
		return
	}
	h.in.Close()
	_ = h.cmd.Process.Kill()
	_ = h.cmd.Wait()
}

// testBinary returns the path of the running test binary.
func testBinary(t *testing.T) string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return exe
}

// copyBinary copies the test binary to dir/name (mode 0755).
func copyBinary(t *testing.T, dir, name string) string {
	t.Helper()
	src, err := os.Open(testBinary(t))
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	p := filepath.Join(dir, name)
	dst, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
	return p
}
