package tracker

import (
	"os"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestParseStat(t *testing.T) {
	tail := " S 1 1 1 0 -1 4194560 100 0 0 0 10 5 0 0 20 0 1 0 12345 10000 500"
	tests := []struct {
		name, in  string
		wantComm  string
		wantStart uint64
		wantErr   bool
	}{
		{"plain", "42 (sshd)" + tail, "sshd", 12345, false},
		{"comm with spaces and parens", "42 (a (b) c)" + tail, "a (b) c", 12345, false},
		{"empty comm", "42 ()" + tail, "", 12345, false},
		{"no parens", "42 sshd" + tail, "", 0, true},
		{"too few fields", "42 (x) S 1 2", "", 0, true},
		{"bad start", "42 (x) S 1 1 1 0 -1 4194560 100 0 0 0 10 5 0 0 20 0 1 0 abc 1", "", 0, true},
		{"empty", "", "", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			comm, start, err := parseStat([]byte(tt.in))
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %v", err, tt.wantErr)
			}
			if comm != tt.wantComm || start != tt.wantStart {
				t.Errorf("got %q %d, want %q %d", comm, start, tt.wantComm, tt.wantStart)
			}
		})
	}
}

func TestParseStatusUID(t *testing.T) {
	tests := []struct {
		name, in string
		want     uint32
		ok       bool
	}{
		{"effective uid", "Name:\tx\nUid:\t1000\t33\t33\t33\nGid:\t0\t0\t0\t0\n", 33, true},
		{"no uid line", "Name:\tx\n", 0, false},
		{"short uid line", "Uid:\t5\n", 0, false},
		{"bad number", "Uid:\t1\tx\t1\t1\n", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := parseStatusUID([]byte(tt.in))
			if got != tt.want || ok != tt.ok {
				t.Errorf("got %d %v, want %d %v", got, ok, tt.want, tt.ok)
			}
		})
	}
}

func TestParseLinks(t *testing.T) {
	sockets := []struct {
		in   string
		want uint64
		ok   bool
	}{
		{"socket:[12345]", 12345, true},
		{"socket:[]", 0, false},
		{"socket:[12a]", 0, false},
		{"pipe:[12345]", 0, false},
		{"/dev/null", 0, false},
		{"socket:[123456789012345678901]", 0, false},
	}
	for _, tt := range sockets {
		t.Run(tt.in, func(t *testing.T) {
			got, ok := parseSocketLink([]byte(tt.in))
			if got != tt.want || ok != tt.ok {
				t.Errorf("parseSocketLink(%q) = %d %v, want %d %v", tt.in, got, ok, tt.want, tt.ok)
			}
		})
	}
	for in, want := range map[string]uint64{"net:[4026531840]": 4026531840, "net:[x]": 0, "net:4026531840": 0, "": 0} {
		if got := parseNSLink(in); got != want {
			t.Errorf("parseNSLink(%q) = %d, want %d", in, got, want)
		}
	}
	for in, want := range map[string]int32{"1": 1, "4194304": 4194304, "0": 0, "self": 0, "12a": 0, "99999999999": 0, "": 0} {
		got, ok := parsePid([]byte(in))
		if got != want || ok != (want != 0) {
			t.Errorf("parsePid(%q) = %d %v, want %d", in, got, ok, want)
		}
	}
}

// TestReadSocketInodes reads the test process's own fds: a socket it
// opens must be among them, with the inode fstat reports.
func TestReadSocketInodes(t *testing.T) {
	f, err := os.CreateTemp(t.TempDir(), "x")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	s := newTestScanner(t, ScanOptions{Source: SourceProcfs})
	if fi, err := os.Stat("/proc/self/fd"); err == nil && (!s.live || s.counts != (fi.Size() > 0)) {
		t.Errorf("live %v counts %v, /proc/self/fd size %d", s.live, s.counts, fi.Size())
	}
	if fx := newTestScanner(t, ScanOptions{ProcRoot: "testdata/proc", Source: SourceProcfs}); fx.live || fx.counts {
		t.Error("a fixture tree taken for a live procfs")
	}
	d := s.dirs[0]
	before, _, err := d.readSocketInodes(int32(os.Getpid()), nil)
	if err != nil {
		t.Fatal(err)
	}
	fd, ino := openUDPSocket(t)
	after, links, err := d.readSocketInodes(int32(os.Getpid()), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(after) != len(before)+1 || links < len(after) {
		t.Errorf("socket inodes %d then %d (links %d)", len(before), len(after), links)
	}
	found := false
	for _, x := range after {
		found = found || x == ino
	}
	if !found {
		t.Errorf("inode %d of fd %d not among %v", ino, fd, after)
	}
	if _, _, err := d.readSocketInodes(1<<30, nil); err == nil || !isNotExist(err) {
		t.Errorf("missing pid: err %v, want not-exist", err)
	}
	sig, err := d.signal(int32(os.Getpid()))
	if err != nil || sig.count < 4 {
		t.Errorf("own fd signal %+v, %v", sig, err)
	}
	if got := d.netNS(strconv.Itoa(os.Getpid())); got == 0 || got != s.hostNS {
		t.Errorf("own netns %d, scanner's %d", got, s.hostNS)
	}
}

// openUDPSocket opens a raw UDP socket fd, closed when the test ends, and
// returns it with its inode.
func openUDPSocket(t *testing.T) (int, uint64) {
	t.Helper()
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		t.Fatal(err)
	}
	return fd, st.Ino
}

func TestKernelThread(t *testing.T) {
	s := newTestScanner(t, ScanOptions{ProcRoot: "testdata/proc", Source: SourceProcfs})
	d := s.dirs[0]
	if !d.kernelThread(2) {
		t.Error("fixture kthreadd (flags 2129984) not seen as a kernel thread")
	}
	if d.kernelThread(100) {
		t.Error("fixture sshd seen as a kernel thread")
	}
	if d.kernelThread(12345) {
		t.Error("missing pid seen as a kernel thread")
	}
	if live := newTestScanner(t, ScanOptions{Source: SourceProcfs}); live.dirs[0].kernelThread(int32(os.Getpid())) {
		t.Error("the test process seen as a kernel thread")
	} else if _, err := os.Stat("/proc/2/stat"); err == nil && !live.dirs[0].kernelThread(2) {
		t.Error("pid 2 (kthreadd) not seen as a kernel thread")
	}
}

func TestReadLinkLong(t *testing.T) {
	dir := t.TempDir()
	target := "/" + strings.Repeat("x", 300) + "/nd-long-exe"
	if err := os.Symlink(target, dir+"/exe"); err != nil {
		t.Fatal(err)
	}
	root, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(root)
	d := newProcDir(root)
	if got := d.readLink("exe"); got != target {
		t.Errorf("readLink = %q (%d bytes), want %d bytes", got, len(got), len(target))
	}
	if got := d.readLink("missing"); got != "" {
		t.Errorf("readLink of a missing link = %q", got)
	}
}

// TestReadSocketInodesTransient checks that an fd table whose every link
// fails to read (as during an exec from a non-leader thread) is reported
// as transient, not as a process without sockets.
func TestReadSocketInodesTransient(t *testing.T) {
	root := t.TempDir()
	fdDir := root + "/42/fd"
	if err := os.MkdirAll(fdDir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"3", "4"} { // not links: readlink fails
		if err := os.WriteFile(fdDir+"/"+n, nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	rfd, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(rfd)
	d := newProcDir(rfd)
	if _, links, err := d.readSocketInodes(42, nil); err != errTransient || links != 2 {
		t.Fatalf("all links failing: links %d err %v, want 2 and errTransient", links, err)
	}
	if err := os.Symlink("socket:[77]", fdDir+"/5"); err != nil {
		t.Fatal(err)
	}
	inodes, _, err := d.readSocketInodes(42, nil)
	if err != nil || len(inodes) != 1 || inodes[0] != 77 {
		t.Fatalf("one readable link: %v %v, want [77]", inodes, err)
	}
}
