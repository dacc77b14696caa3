package tracker

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
	"unsafe"

	"github.com/prometheus/procfs"
	"golang.org/x/sys/unix"
)

// dirent64 layout: ino u64 | off i64 | reclen u16 | type u8 | name (NUL
// terminated).
const (
	direntReclenOff = 16
	direntNameOff   = 19
)

// procDir is an open procfs root with a reusable directory buffer. It is
// not safe for concurrent use; workers use one each (sharing the fd).
type procDir struct {
	root int // O_PATH directory fd of the procfs root, shared
	buf  []byte
	link []byte
	file []byte
}

func newProcDir(root int) *procDir {
	return &procDir{root: root, buf: make([]byte, 32<<10), link: make([]byte, 128)}
}

// forEachName calls fn with every entry name (without "." and "..") of
// the directory open at fd. The name is only valid during the call and is
// followed by a NUL byte in the buffer.
func (d *procDir) forEachName(fd int, fn func(name []byte, nameOff int)) error {
	// Each getdents64 call returns at least one entry, and a directory
	// cannot hold more than a few million: the loop is bounded in practice;
	// the explicit bound guards against a misbehaving filesystem.
	for range 1 << 22 {
		n, err := unix.Getdents(fd, d.buf)
		if err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			return err
		}
		if n <= 0 {
			return nil
		}
		for off := 0; off+direntNameOff < n; {
			reclen := int(binary.NativeEndian.Uint16(d.buf[off+direntReclenOff:]))
			if reclen <= direntNameOff || off+reclen > n {
				return fmt.Errorf("getdents: bad record length %d at offset %d", reclen, off)
			}
			name := d.buf[off+direntNameOff : off+reclen]
			if i := indexByte(name, 0); i >= 0 {
				name = name[:i]
			}
			if len(name) > 0 && name[0] != '.' {
				fn(name, off+direntNameOff)
			}
			off += reclen
		}
	}
	return errors.New("getdents: directory does not end")
}

func indexByte(b []byte, c byte) int {
	for i, x := range b {
		if x == c {
			return i
		}
	}
	return -1
}

// appendPids appends the pids of the procfs root to dst.
func (d *procDir) appendPids(dst []int32) ([]int32, error) {
	fd, err := unix.Openat(d.root, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return dst, fmt.Errorf("open procfs root: %w", err)
	}
	defer unix.Close(fd)
	err = d.forEachName(fd, func(name []byte, _ int) {
		if pid, ok := parsePid(name); ok {
			dst = append(dst, pid)
		}
	})
	if err != nil {
		return dst, fmt.Errorf("list procfs root: %w", err)
	}
	return dst, nil
}

func parsePid(b []byte) (int32, bool) {
	if len(b) == 0 || len(b) > 10 {
		return 0, false
	}
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	if n <= 0 || n > 1<<31-1 {
		return 0, false
	}
	return int32(n), true
}

// fdSignal is the cheap per-process change signal: the inode of the
// /proc/<pid>/fd directory (new for a new process with a reused pid) and
// its size, which Linux 6.2 and later set to the number of open fds.
type fdSignal struct {
	ino   uint64
	count int64
	uid   uint32 // owner of /proc/<pid>/fd: the process's euid when dumpable
}

// signal stats /proc/<pid>/fd.
func (d *procDir) signal(pid int32) (fdSignal, error) {
	var st unix.Stat_t
	if err := unix.Fstatat(d.root, pidPath(pid, "fd"), &st, 0); err != nil {
		return fdSignal{}, err
	}
	return fdSignal{ino: st.Ino, count: st.Size, uid: st.Uid}, nil
}

func pidPath(pid int32, name string) string {
	return strconv.Itoa(int(pid)) + "/" + name
}

// errDenied is returned when a process's fds cannot be read.
var errDenied = errors.New("permission denied")

// errTransient is returned when a process's fd table could not be read
// consistently; the read is retried at the next scan.
var errTransient = errors.New("fd table changing")

// readSocketInodes appends the socket inodes that pid holds to dst and
// returns the number of links read. It lists the fd directory with
// getdents64 and reads each link with readlinkat, without allocating.
// (Probing fd numbers 0, 1, 2, ... instead of listing them measured no
// faster: getdents64 instantiates the dentries the readlinks then use.)
func (d *procDir) readSocketInodes(pid int32, dst []uint64) ([]uint64, int, error) {
	fd, err := unix.Openat(d.root, pidPath(pid, "fd"), unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, unix.EACCES) || errors.Is(err, unix.EPERM) {
			return dst, 0, errDenied
		}
		return dst, 0, err
	}
	defer unix.Close(fd)
	links, failed := 0, 0
	var linkErr error
	err = d.forEachName(fd, func(_ []byte, nameOff int) {
		links++
		// The name is NUL-terminated inside d.buf, so it can be passed to
		// the kernel as is.
		r, _, e := unix.Syscall6(unix.SYS_READLINKAT, uintptr(fd),
			uintptr(unsafe.Pointer(&d.buf[nameOff])),
			uintptr(unsafe.Pointer(&d.link[0])), uintptr(len(d.link)), 0, 0)
		if e != 0 {
			failed++
			if (e == unix.EACCES || e == unix.EPERM) && linkErr == nil {
				linkErr = errDenied
			}
			return // ENOENT: the fd was closed meanwhile
		}
		if ino, ok := parseSocketLink(d.link[:r]); ok {
			dst = append(dst, ino)
		}
	})
	if err != nil {
		return dst, links, fmt.Errorf("read /proc/%d/fd: %w", pid, err)
	}
	if linkErr == nil && links > 0 && failed == links {
		// Every fd vanished between getdents and readlink: the process is
		// exiting, or exec'ing from a thread other than the leader (the
		// old leader has dropped its fd table for a moment).
		return dst, links, errTransient
	}
	return dst, links, linkErr
}

// parseSocketLink parses "socket:[12345]".
func parseSocketLink(b []byte) (uint64, bool) {
	const prefix = "socket:["
	if len(b) < len(prefix)+2 || string(b[:len(prefix)]) != prefix || b[len(b)-1] != ']' {
		return 0, false
	}
	var n uint64
	digits := b[len(prefix) : len(b)-1]
	if len(digits) == 0 || len(digits) > 19 {
		return 0, false
	}
	for _, c := range digits {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + uint64(c-'0')
	}
	return n, true
}

// parseNSLink parses "net:[4026531840]".
func parseNSLink(s string) uint64 {
	_, rest, ok := strings.Cut(s, ":[")
	if !ok || !strings.HasSuffix(rest, "]") {
		return 0
	}
	n, err := strconv.ParseUint(strings.TrimSuffix(rest, "]"), 10, 64)
	if err != nil {
		return 0
	}
	return n
}

// netNS returns the network namespace inode of pid ("self" for the
// reader), or 0 when it cannot be read.
func (d *procDir) netNS(pid string) uint64 {
	n, err := unix.Readlinkat(d.root, pid+"/ns/net", d.link)
	if err != nil {
		return 0
	}
	return parseNSLink(string(d.link[:n]))
}

// detailReader turns the files of /proc/<pid> into a Process.
type detailReader struct {
	bootTime time.Time
	users    *userNames
}

// maxProcFile bounds the bytes read from one /proc/<pid> file; a longer
// cmdline is cut.
const maxProcFile = 64 << 10

// readFile reads /proc/<pid>/<name> into the reusable buffer d.file, up
// to maxProcFile bytes.
func (d *procDir) readFile(pid int32, name string) ([]byte, error) {
	fd, err := unix.Openat(d.root, pidPath(pid, name), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	if d.file == nil {
		d.file = make([]byte, 4096)
	}
	n := 0
	for range maxProcFile / 512 {
		if n == len(d.file) {
			if len(d.file) >= maxProcFile {
				break
			}
			d.file = append(d.file, make([]byte, len(d.file))...)
		}
		m, err := unix.Read(fd, d.file[n:])
		if err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			return nil, err
		}
		if m <= 0 {
			break
		}
		n += m
		if n < len(d.file) {
			// The /proc/<pid> files read here (seq files, cmdline) fill
			// the buffer as far as they can: a short read is the end, and
			// saves the read that would return 0.
			break
		}
	}
	return d.file[:n], nil
}

// loadProcess reads the details of pid: stat (comm, start time), status
// (effective uid, unless uid — the owner of /proc/<pid>/fd — is not 0),
// cmdline, the exe link and cgroup. A missing exe
// (kernel thread, or another user's process without privileges) leaves
// Exe empty.
func (d *procDir) loadProcess(r *detailReader, pid int32, uid uint32) (*Process, error) {
	b, err := d.readFile(pid, "stat")
	if err != nil {
		return nil, fmt.Errorf("process %d: %w", pid, err)
	}
	comm, start, err := parseStat(b)
	if err != nil {
		return nil, fmt.Errorf("/proc/%d/stat: %w", pid, err)
	}
	p := &Process{
		PID:       pid,
		StartTime: r.bootTime.Add(time.Duration(start) * (time.Second / clockTicks)),
		Comm:      comm,
	}
	if uid != 0 {
		// /proc/<pid>/fd belongs to the effective uid of a dumpable
		// process; a non-dumpable one shows root, so only root needs
		// the status file.
		p.UID = uid
	} else {
		p.UID, _ = d.statusUID(pid)
	}
	argv0 := ""
	if b, err := d.readFile(pid, "cmdline"); err == nil {
		b = bytesTrimRight(b, 0)
		if i := indexByte(b, 0); i >= 0 {
			argv0 = string(b[:i])
		} else {
			argv0 = string(b)
		}
		for i := range b {
			if b[i] == 0 {
				b[i] = ' '
			}
		}
		p.Cmdline = string(b)
	}
	p.Exe = d.readLink(pidPath(pid, "exe"))
	p.Name = processName(comm, p.Exe, argv0)
	p.User = r.users.name(p.UID)
	if b, err := d.readFile(pid, "cgroup"); err == nil {
		p.Cgroup = pickCgroup(string(b))
		p.Container = containerID(p.Cgroup)
	}
	return p, nil
}

// readLink reads a symbolic link under the procfs root, growing d.link up
// to PATH_MAX; "" when it cannot be read.
func (d *procDir) readLink(name string) string {
	for d.link = d.link[:cap(d.link)]; ; d.link = make([]byte, 2*len(d.link)) {
		n, err := unix.Readlinkat(d.root, name, d.link)
		if err != nil {
			return ""
		}
		if n < len(d.link) || len(d.link) >= unix.PathMax {
			return string(d.link[:n])
		}
	}
}

func bytesTrimRight(b []byte, c byte) []byte {
	for len(b) > 0 && b[len(b)-1] == c {
		b = b[:len(b)-1]
	}
	return b
}

// parseStat returns comm and starttime (clock ticks after boot) from
// /proc/<pid>/stat: "pid (comm) state ppid ... starttime ...". comm may
// hold spaces and parentheses, so it ends at the last ')'.
func parseStat(b []byte) (string, uint64, error) {
	open := indexByte(b, '(')
	end := -1
	for i := len(b) - 1; i > open; i-- {
		if b[i] == ')' {
			end = i
			break
		}
	}
	if open < 0 || end < 0 {
		return "", 0, errors.New("no (comm)")
	}
	comm := string(b[open+1 : end])
	// Fields after comm: state is field 3, starttime field 22.
	f := strings.Fields(string(b[end+1:]))
	if len(f) < 20 {
		return "", 0, fmt.Errorf("%d fields after comm, want at least 20", len(f))
	}
	start, err := strconv.ParseUint(f[19], 10, 64)
	if err != nil {
		return "", 0, fmt.Errorf("starttime: %w", err)
	}
	return comm, start, nil
}

// statusUID reads the effective uid of pid from /proc/<pid>/status.
func (d *procDir) statusUID(pid int32) (uint32, bool) {
	b, err := d.readFile(pid, "status")
	if err != nil {
		return 0, false
	}
	return parseStatusUID(b)
}

// pfKthread is PF_KTHREAD in the flags of /proc/<pid>/stat.
const pfKthread = 0x00200000

// kernelThread reports whether pid is a kernel thread.
func (d *procDir) kernelThread(pid int32) bool {
	b, err := d.readFile(pid, "stat")
	if err != nil {
		return false
	}
	end := -1
	for i := len(b) - 1; i >= 0; i-- {
		if b[i] == ')' {
			end = i
			break
		}
	}
	if end < 0 {
		return false
	}
	// Fields after comm: state ppid pgrp session tty_nr tpgid flags.
	f := strings.Fields(string(b[end+1:]))
	if len(f) < 7 {
		return false
	}
	flags, err := strconv.ParseUint(f[6], 10, 64)
	return err == nil && flags&pfKthread != 0
}

// parseStatusUID returns the effective uid of a /proc/<pid>/status text.
func parseStatusUID(b []byte) (uint32, bool) {
	for line := range strings.SplitSeq(string(b), "\n") {
		rest, ok := strings.CutPrefix(line, "Uid:")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) < 2 {
			return 0, false
		}
		uid, err := strconv.ParseUint(f[1], 10, 32)
		return uint32(uid), err == nil
	}
	return 0, false
}

// clockTicks is USER_HZ, 100 on every Linux architecture Go supports.
const clockTicks = 100

// bootTime reads btime from <root>/stat.
func bootTime(fs procfs.FS) (time.Time, error) {
	st, err := fs.Stat()
	if err != nil {
		return time.Time{}, fmt.Errorf("read boot time: %w", err)
	}
	return time.Unix(int64(st.BootTime), 0), nil
}

// isNotExist reports whether err says the process is gone.
func isNotExist(err error) bool {
	return errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ESRCH) || errors.Is(err, os.ErrNotExist)
}
