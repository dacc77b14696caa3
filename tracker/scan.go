package tracker

import (
	"context"
	"log/slog"
	"path"
	"strings"
	"time"
)

// Socket sources accepted by ScanOptions.Source.
const (
	// SourceAuto uses netlink sock_diag and falls back to /proc/net when
	// netlink fails (the fallback is logged once and is permanent).
	SourceAuto = "auto"
	// SourceNetlink uses only netlink sock_diag; a netlink error fails the
	// scan.
	SourceNetlink = "netlink"
	// SourceProcfs parses /proc/net/{tcp,tcp6,udp,udp6}.
	SourceProcfs = "procfs"
)

// ScanOptions configures NewSystemScanner. The zero value is valid.
type ScanOptions struct {
	// ProcRoot is where procfs is mounted; default "/proc". Tests point it
	// at a fixture tree (testdata/proc).
	ProcRoot string
	// Source selects the socket source: SourceAuto (default),
	// SourceNetlink or SourceProcfs.
	Source string
	// SocketSource, when set, replaces Source for the scanner's own network
	// namespace (fakes in tests, other collectors).
	SocketSource SocketSource
	// Logger receives warnings (fallback, permission denied) and debug
	// details; nil discards.
	Logger *slog.Logger
	// PasswdFile maps uids to user names; default "/etc/passwd". Uids it
	// does not name are looked up with os/user, then shown as numbers.
	PasswdFile string
	// ProcEvents subscribes to the kernel's proc connector (cn_proc) for
	// exec, uid-change and exit events. Processes that exec'd or changed
	// uid are then re-read at the next scan instead of being found by
	// polling, and SystemScanner.Changes reports at once the exit or exec
	// of a process that owned sockets at the last scan. It needs root
	// (CAP_NET_ADMIN); when the subscription fails the scanner logs it
	// once and polls.
	ProcEvents bool
	// AllNetNS also lists the sockets of every other network namespace
	// that holds a process (found through /proc/<pid>/ns/net). Netlink
	// sockets are opened inside each namespace with setns(2), which needs
	// CAP_SYS_ADMIN; the procfs source reads /proc/<pid>/net/* instead.
	AllNetNS bool
	// WideSearchInterval is the shortest time between two sweeps of every
	// process's fds made to find the owners of socket inodes that no likely
	// candidate holds (see SystemScanner). Default 30s; negative disables
	// such sweeps.
	WideSearchInterval time.Duration
	// Workers is the number of goroutines reading /proc/<pid>/fd and
	// process details when many processes must be read at once (the first
	// scan). Default GOMAXPROCS, at most 4.
	Workers int
}

// ScanStats are counters of the work a SystemScanner has done since it was
// created. They let tests and benchmarks check that rescans are
// incremental.
type ScanStats struct {
	Scans uint64 // completed scans
	// FDDirReads counts reads of a /proc/<pid>/fd directory.
	FDDirReads uint64
	// FDLinkReads counts readlink calls on /proc/<pid>/fd/<n>.
	FDLinkReads uint64
	// DetailReads counts loads of a process's details (comm, exe, ...).
	DetailReads uint64
	// CandidateReads counts fd directory reads made to find the owner of
	// an unknown inode (a subset of FDDirReads).
	CandidateReads uint64
	// WideSearches counts sweeps of all processes for unknown inodes.
	WideSearches uint64
	// Unresolved is the number of socket inodes of the last scan that no
	// readable process holds.
	Unresolved int
	// Source names the socket source in use ("netlink" or "procfs").
	Source string
}

// A SocketSource lists the TCP and UDP sockets, IPv4 and IPv6, of one
// network namespace. Sources return final values: addresses normalised
// with NormalizeAddr, the Remote of a peer-less socket the zero AddrPort,
// unconnected UDP sockets in StateUnconn. They leave Socket.NetNS to the
// scanner.
type SocketSource interface {
	// AppendSockets appends the namespace's sockets to dst.
	AppendSockets(ctx context.Context, dst []Socket) ([]Socket, error)
	// Name names the source in logs and stats.
	Name() string
	// Close releases the source's resources.
	Close() error
}

// commLen is the longest comm the kernel keeps (TASK_COMM_LEN - 1).
const commLen = 15

// processName returns the full name of a process: comm, unless comm has
// the kernel's maximum length (so it may have been cut) and is a prefix
// of the base name of exe or of argv[0], which is then the name. A comm
// shorter than 15 bytes is complete and kept: python3 stays python3 even
// when exe is /usr/bin/python3.11.
func processName(comm, exe, argv0 string) string {
	if len(comm) < commLen {
		return comm
	}
	for _, p := range []string{exe, argv0} {
		if p == "" {
			continue
		}
		// A deleted executable reads as "/path/name (deleted)".
		p = strings.TrimSuffix(p, " (deleted)")
		base := path.Base(p)
		if len(base) > len(comm) && strings.HasPrefix(base, comm) {
			return base
		}
	}
	return comm
}

// containerPrefixes are cgroup path segment prefixes that precede a
// container id: systemd driver scopes of docker, containerd (CRI), CRI-O
// and podman.
var containerPrefixes = []string{"docker-", "cri-containerd-", "crio-", "libpod-", "containerd-"}

// containerID returns the container id a cgroup path names, or "". It
// recognises the systemd forms (docker-<id>.scope, cri-containerd-<id>.scope,
// crio-<id>.scope, libpod-<id>.scope) and the cgroupfs forms
// (/docker/<id>, /kubepods/.../<id>, /libpod_parent/libpod-<id>), with
// ids of 64 hex digits. Podman's conmon scope is not a container.
func containerID(cgroup string) string {
	segs := strings.Split(cgroup, "/")
	for i := len(segs) - 1; i >= 0; i-- {
		s := strings.TrimSuffix(segs[i], ".scope")
		if strings.Contains(s, "conmon") {
			continue
		}
		for _, p := range containerPrefixes {
			if rest, ok := strings.CutPrefix(s, p); ok {
				s = rest
				break
			}
		}
		if isHexID(s) {
			return s
		}
	}
	return ""
}

func isHexID(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// pickCgroup chooses the cgroup path to report from the text of
// /proc/<pid>/cgroup ("id:controllers:path" lines): the unified (v2,
// "0::") hierarchy, else systemd's name=systemd hierarchy, else the first
// non-root path. On a hybrid host whose unified hierarchy holds nothing
// (path "/", the v1 controllers doing the work, as under an older
// Docker), the v1 paths are taken: they name the container.
func pickCgroup(data string) string {
	var unified, named, first string
	for line := range strings.SplitSeq(data, "\n") {
		id, rest, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		ctrl, p, ok := strings.Cut(rest, ":")
		if !ok {
			continue
		}
		switch {
		case id == "0" && ctrl == "":
			unified = p
		case ctrl == "name=systemd" && named == "":
			named = p
		}
		if first == "" && p != "/" {
			first = p
		}
	}
	switch {
	case unified != "" && unified != "/":
		return unified
	case named != "" && named != "/":
		return named
	case first != "":
		return first
	case unified != "":
		return unified
	}
	return named
}
