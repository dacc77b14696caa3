package tracker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/procfs"
	"golang.org/x/sys/unix"
)

// SystemScanner is the Scanner of the running Linux host. Each Scan lists
// the host's TCP and UDP sockets (netlink sock_diag, or /proc/net) and
// finds the process that holds each one through /proc/<pid>/fd.
//
// Finding owners is incremental. The scanner keeps, for every process,
// the socket inodes it held when its fds were last read, and reads the
// fds only of
//   - processes it has not seen before, or whose pid was reused (the
//     inode of /proc/<pid>/fd changed);
//   - processes whose number of open fds changed (the size Linux 6.2+
//     reports for /proc/<pid>/fd: one fstatat per process and scan;
//     kernel threads are skipped);
//   - processes that exec'd (with ScanOptions.ProcEvents);
//   - when a socket inode is still unknown after that: the likely
//     candidates, in order, until every unknown inode is found — the
//     owners of a TCP listener on the connection's local port, then the
//     processes of the socket's uid, most recently socket-active first.
//
// Inodes that no candidate holds are remembered and never trigger a
// search again; at most every WideSearchInterval, one sweep of the
// remaining processes looks for all of them at once. A steady state
// therefore costs the sock_diag dumps, one getdents64 of /proc and one
// fstatat per process.
//
// Process details (Process) are read once per process and again after an
// exec or a uid change, which the proc connector reports; without it the
// executable's inode and the status uid of each owner are compared when
// its fds change and every 16 scans.
//
// Sockets with inode 0 (accept queue, TIME-WAIT, orphaned) get the owner
// that held the same connection at the previous scan, else the owner of
// the TCP listener on their local port (Observed.Inherited).
//
// A SystemScanner is safe for concurrent use; scans are serialised.
type SystemScanner struct {
	mu   sync.Mutex
	opts ScanOptions
	log  *slog.Logger

	root    int // O_PATH fd of opts.ProcRoot
	fs      procfs.FS
	dirs    []*procDir // one per worker; dirs[0] for sequential work
	details detailReader
	hostNS  uint64
	// live is true when ProcRoot is a procfs mount (not a fixture tree).
	live bool
	// counts is true when the kernel reports the number of open fds as
	// the size of /proc/<pid>/fd (Linux 6.2+): a process with none is
	// then not read.
	counts bool

	source   SocketSource // sockets of the scanner's own namespace
	canFall  bool         // auto mode: fall back to procfs on netlink errors
	addrs    *addrLister  // nil: use net.InterfaceAddrs
	netns    map[uint64]*nsSource
	netnsErr bool
	events   *procEvents
	changes  chan struct{}

	procs      map[int32]*procEntry
	known      ownerCache // owners' details, shared with ResolveOwner
	owners     map[uint64]owners
	unresolved map[uint64]*unresolvedInode
	lastWide   time.Time
	scanNo     uint64

	prevTuples, curTuples map[scanConnKey]*Process
	seenInodes            inodeSet
	seenConns             map[scanConnKey]int

	pidBuf  []int32
	entBuf  []*procEntry
	sockBuf []Socket
	readBuf []*procEntry
	stats   ScanStats
}

// procEntry is what the scanner knows of one process.
type procEntry struct {
	pid        int32
	sig        fdSignal
	inodes     []uint64 // socket inodes at the last fd read, sorted
	readScan   uint64   // scan of the last fd read
	activeScan uint64   // scan in which inodes last changed
	seenScan   uint64
	denied     bool
	needRead   bool
	proc       *Process // details; nil until the process owns a socket
	exeScan    uint64   // scan of the last exec check
	visitScan  uint64   // scan in which loadDetails last looked at it
	stale      bool     // details must be re-read (exec)
	netns      uint64
	kthread    bool // a kernel thread: its fd signal is rarely checked
}

// owners are the pids holding one socket inode; usually one.
type owners struct {
	pid  int32
	e    *procEntry // the entry of pid, saving a lookup per socket
	more []int32
}

func (o owners) each(fn func(int32)) {
	fn(o.pid)
	for _, p := range o.more {
		fn(p)
	}
}

// unresolvedInode is a socket inode no searched process held.
type unresolvedInode struct {
	seenScan uint64
	wideDone bool // a sweep of every process did not find it either
}

// scanConnKey identifies a connection, to carry its owner over to the inode-0
// socket (TIME-WAIT, orphan) it becomes, and to find duplicates. It holds
// no pointers, so maps hash it as plain memory.
type scanConnKey struct {
	local, remote [16]byte
	netns         uint64
	lport, rport  uint16
	proto         Proto
}

func scanKeyOf(s *Socket) scanConnKey {
	return scanConnKey{
		local: s.Local.Addr().As16(), remote: s.Remote.Addr().As16(),
		netns: s.NetNS, lport: s.Local.Port(), rport: s.Remote.Port(), proto: s.Proto,
	}
}

// scanPortKey identifies the listeners of one port.
type scanPortKey struct {
	netns uint64
	port  uint16
	proto Proto
}

// nsSource lists the sockets of another network namespace.
type nsSource struct {
	src      SocketSource
	usedScan uint64
}

// NewSystemScanner opens the procfs root and the socket source. With
// Source "auto" (or empty) a netlink failure falls back to /proc/net.
func NewSystemScanner(opts ScanOptions) (*SystemScanner, error) {
	if opts.ProcRoot == "" {
		opts.ProcRoot = "/proc"
	}
	if opts.Source == "" {
		opts.Source = SourceAuto
	}
	if opts.WideSearchInterval == 0 {
		opts.WideSearchInterval = 30 * time.Second
	}
	if opts.Workers <= 0 {
		opts.Workers = min(runtime.GOMAXPROCS(0), 4)
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	switch opts.Source {
	case SourceAuto, SourceNetlink, SourceProcfs:
	default:
		return nil, fmt.Errorf("unknown socket source %q (want auto, netlink or procfs)", opts.Source)
	}
	fs, err := procfs.NewFS(opts.ProcRoot)
	if err != nil {
		return nil, fmt.Errorf("procfs at %s: %w", opts.ProcRoot, err)
	}
	bt, err := bootTime(fs)
	if err != nil {
		return nil, err
	}
	root, err := unix.Open(opts.ProcRoot, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", opts.ProcRoot, err)
	}
	s := &SystemScanner{
		opts:       opts,
		log:        log,
		root:       root,
		fs:         fs,
		details:    detailReader{bootTime: bt, users: newUserNames(opts.PasswdFile)},
		netns:      map[uint64]*nsSource{},
		procs:      map[int32]*procEntry{},
		owners:     map[uint64]owners{},
		unresolved: map[uint64]*unresolvedInode{},
		prevTuples: map[scanConnKey]*Process{},
		curTuples:  map[scanConnKey]*Process{},
		changes:    make(chan struct{}, 1),
	}
	for range opts.Workers {
		s.dirs = append(s.dirs, newProcDir(root))
	}
	s.known.init(root)
	s.hostNS = s.dirs[0].netNS("self")
	var sfs unix.Statfs_t
	s.live = unix.Fstatfs(root, &sfs) == nil && sfs.Type == unix.PROC_SUPER_MAGIC
	if sig, err := s.dirs[0].signal(int32(os.Getpid())); err == nil && s.live {
		s.counts = sig.count > 0
	}
	if err := s.openSource(context.Background()); err != nil {
		unix.Close(root)
		return nil, err
	}
	if s.live {
		if a, err := newAddrLister(); err == nil {
			s.addrs = a
		} else {
			log.Warn("rtnetlink unavailable; listing addresses with net.InterfaceAddrs", "err", err)
		}
	}
	if opts.ProcEvents {
		ev, err := startProcEvents(log, s.changes)
		if err != nil {
			log.Warn("proc connector unavailable; detecting exec by polling", "err", err)
		} else {
			s.events = ev
		}
	}
	s.stats.Source = s.source.Name()
	return s, nil
}

func (s *SystemScanner) openSource(ctx context.Context) error {
	if s.opts.SocketSource != nil {
		s.source = s.opts.SocketSource
		return nil
	}
	if s.opts.Source != SourceProcfs {
		src, err := newNetlinkSource(ctx, s.opts.Source == SourceNetlink)
		if err == nil {
			s.source = src
			s.canFall = s.opts.Source == SourceAuto
			return nil
		}
		if s.opts.Source == SourceNetlink {
			return fmt.Errorf("netlink socket source: %w", err)
		}
		s.log.Warn("netlink sock_diag unavailable; reading /proc/net instead", "err", err)
	}
	s.source = NewProcNetSource(s.fs)
	return nil
}

// Close stops the proc connector and closes the sockets and fds the
// scanner holds. A closed scanner must not be used.
func (s *SystemScanner) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var errs []error
	if s.events != nil {
		errs = append(errs, s.events.close())
		s.events = nil
	}
	if s.source != nil && s.opts.SocketSource == nil {
		errs = append(errs, s.source.Close())
	}
	s.source = nil
	for ns, src := range s.netns {
		errs = append(errs, src.src.Close())
		delete(s.netns, ns)
	}
	if s.addrs != nil {
		errs = append(errs, s.addrs.close())
		s.addrs = nil
	}
	if s.root >= 0 {
		s.known.close()
		errs = append(errs, unix.Close(s.root))
		s.root = -1
	}
	return errors.Join(errs...)
}

// Changes delivers a value (coalesced) when the proc connector reports
// that a process owning sockets at the last scan exited or exec'd, so the
// caller may scan early to close its bindings on time. Without ProcEvents
// it never fires.
func (s *SystemScanner) Changes() <-chan struct{} { return s.changes }

// Stats returns the scanner's counters.
func (s *SystemScanner) Stats() ScanStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats
}

// Scan implements Scanner.
func (s *SystemScanner) Scan(ctx context.Context) (*Snapshot, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.root < 0 {
		return nil, errors.New("scan: scanner is closed")
	}
	s.scanNo++
	now := time.Now()

	if err := s.refreshProcs(ctx); err != nil {
		return nil, err
	}
	// The host's socket dump and the fd reads of new or changed processes
	// are independent kernel work: overlap them when there is fd work.
	var socks []Socket
	var err error
	if n := s.countNeedRead(); n > 0 {
		done := make(chan struct{})
		go func() {
			defer close(done)
			socks, err = s.listHostSockets(ctx, s.sockBuf[:0])
		}()
		rerr := s.readChanged(ctx)
		<-done
		if err == nil {
			err = rerr
		}
	} else {
		socks, err = s.listHostSockets(ctx, s.sockBuf[:0])
	}
	if err != nil {
		return nil, err
	}
	if s.opts.AllNetNS {
		socks = s.listOtherNetNS(ctx, socks)
	}
	socks = s.dedup(socks)
	s.sockBuf = socks
	snap := &Snapshot{Time: now}
	if snap.Sockets, err = s.attribute(ctx, socks, now); err != nil {
		return nil, err
	}
	snap.Addrs = s.hostAddrs(ctx)
	snap.Denied = s.denied()
	if s.events != nil {
		owners := map[int32]bool{}
		for i := range snap.Sockets {
			if p := snap.Sockets[i].Owner; p != nil {
				owners[p.PID] = true
			}
		}
		s.events.setOwners(owners)
	}
	s.stats.Scans++
	s.stats.Source = s.source.Name()
	return snap, nil
}

// refreshProcs lists the processes and checks each one's fd signal.
func (s *SystemScanner) refreshProcs(ctx context.Context) error {
	d := s.dirs[0]
	pids, err := d.appendPids(s.pidBuf[:0])
	if err != nil {
		return err
	}
	s.pidBuf = pids
	var changed map[int32]bool
	if s.events != nil {
		var lost bool
		changed, lost = s.events.drain()
		if lost {
			s.log.Debug("proc connector lost events; checking executables by polling once")
			for _, e := range s.procs {
				e.exeScan = 0
			}
		}
	}
	for i, pid := range pids {
		if i&255 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		e := s.procs[pid]
		if e != nil && e.kthread && (uint64(pid)+s.scanNo)%kthreadCheckEvery != 0 {
			e.seenScan = s.scanNo // kernel threads never open files
			continue
		}
		sig, err := d.signal(pid)
		if err != nil {
			if e != nil {
				s.dropProc(e)
			}
			continue // gone, or a kernel without this file
		}
		switch {
		case e == nil:
			e = &procEntry{pid: pid, needRead: true}
			s.procs[pid] = e
		case sig.ino != e.sig.ino:
			// A new process under a reused pid (or a recycled dentry):
			// forget everything about the old one.
			s.dropProc(e)
			e = &procEntry{pid: pid, needRead: true}
			s.procs[pid] = e
		case sig.count != e.sig.count:
			e.needRead = true
		case e.denied && sig.uid != e.sig.uid:
			e.needRead = true // setuid: it may be readable now
		}
		if e.proc != nil && sig.uid != e.sig.uid {
			e.stale = true // setuid: reload its user
		}
		if changed[pid] {
			e.needRead = true
			e.stale = true
		}
		if e.needRead && s.counts && sig.count == 0 && e.readScan == 0 {
			e.kthread = d.kernelThread(pid)
		}
		if e.needRead && s.opts.AllNetNS {
			e.netns = d.netNS(pidString(pid))
		}
		e.sig = sig
		e.seenScan = s.scanNo
	}
	for pid, e := range s.procs {
		if e.seenScan != s.scanNo {
			s.dropProc(e)
			delete(s.procs, pid)
		}
	}
	return nil
}

// kthreadCheckEvery is how many scans apart a kernel thread's fd signal is
// checked (to notice its pid reused by a process, which needs the pid
// counter to wrap around first).
const kthreadCheckEvery = 64

func pidString(pid int32) string { return strconv.Itoa(int(pid)) }

// dropProc removes a process's inodes from the owner index.
func (s *SystemScanner) dropProc(e *procEntry) {
	s.known.drop(e.pid, e.proc)
	s.setInodes(e, nil)
	delete(s.procs, e.pid)
}

// setInodes replaces the socket inodes of e (sorted) and updates the
// owner index.
func (s *SystemScanner) setInodes(e *procEntry, inodes []uint64) {
	old := e.inodes
	i, j := 0, 0
	changed := false
	for i < len(old) || j < len(inodes) {
		switch {
		case j == len(inodes) || (i < len(old) && old[i] < inodes[j]):
			s.removeOwner(old[i], e.pid)
			i++
			changed = true
		case i == len(old) || inodes[j] < old[i]:
			s.addOwner(inodes[j], e)
			j++
			changed = true
		default:
			i++
			j++
		}
	}
	if changed {
		e.activeScan = s.scanNo
	}
	e.inodes = inodes
}

func (s *SystemScanner) addOwner(ino uint64, e *procEntry) {
	o, ok := s.owners[ino]
	if !ok {
		s.owners[ino] = owners{pid: e.pid, e: e}
		delete(s.unresolved, ino)
		return
	}
	if o.pid == e.pid || slices.Contains(o.more, e.pid) {
		return
	}
	o.more = append(o.more, e.pid)
	s.owners[ino] = o
}

func (s *SystemScanner) removeOwner(ino uint64, pid int32) {
	o, ok := s.owners[ino]
	if !ok {
		return
	}
	if o.pid == pid {
		if len(o.more) == 0 {
			delete(s.owners, ino)
			return
		}
		o.pid, o.more = o.more[0], o.more[1:]
		o.e = s.procs[o.pid]
	} else if k := slices.Index(o.more, pid); k >= 0 {
		o.more = slices.Delete(slices.Clone(o.more), k, k+1)
	}
	if len(o.more) == 0 {
		o.more = nil
	}
	s.owners[ino] = o
}

// readChanged re-reads the fd directories of new and changed processes,
// in parallel when there are many (the first scan).
func (s *SystemScanner) readChanged(ctx context.Context) error {
	list := s.readBuf[:0]
	for _, e := range s.procs {
		if !e.needRead {
			continue
		}
		if s.counts && e.sig.count == 0 {
			// No open fd at all (a kernel thread): nothing to read.
			e.needRead, e.readScan, e.denied = false, s.scanNo, false
			s.setInodes(e, nil)
			continue
		}
		list = append(list, e)
	}
	s.readBuf = list
	err := s.readFDs(ctx, list, false)
	clear(list)
	return err
}

// fdResult is the outcome of reading one process's fds.
type fdResult struct {
	inodes []uint64
	links  int
	err    error
}

// readFDs reads the fds of the given processes and updates the index.
func (s *SystemScanner) readFDs(ctx context.Context, list []*procEntry, candidate bool) error {
	if len(list) == 0 {
		return nil
	}
	results := make([]fdResult, len(list))
	err := s.parallel(ctx, len(list), func(d *procDir, i int) {
		r := &results[i]
		r.inodes, r.links, r.err = d.readSocketInodes(list[i].pid, nil)
	})
	if err != nil {
		return err
	}
	for i, e := range list {
		r := results[i]
		s.stats.FDDirReads++
		if candidate {
			s.stats.CandidateReads++
		}
		s.stats.FDLinkReads += uint64(r.links)
		e.needRead = false
		e.readScan = s.scanNo
		switch {
		case r.err == nil:
			e.denied = false
		case errors.Is(r.err, errDenied):
			e.denied = true
		case errors.Is(r.err, errTransient):
			e.needRead = true // keep what we knew; read again next scan
			continue
		case isNotExist(r.err):
			s.dropProc(e)
			continue
		default:
			s.log.Debug("cannot read fds", "pid", e.pid, "err", r.err)
		}
		slices.Sort(r.inodes)
		r.inodes = slices.Compact(r.inodes)
		if len(r.inodes) == 0 {
			r.inodes = nil
		}
		s.setInodes(e, r.inodes)
	}
	return nil
}

// listHostSockets dumps the sockets of the scanner's own namespace,
// falling back to /proc/net in auto mode.
func (s *SystemScanner) listHostSockets(ctx context.Context, dst []Socket) ([]Socket, error) {
	dst, err := s.source.AppendSockets(ctx, dst)
	if err != nil && s.canFall && ctx.Err() == nil {
		s.log.Warn("netlink sock_diag failed; reading /proc/net from now on", "err", err)
		s.source.Close()
		s.source = NewProcNetSource(s.fs)
		s.canFall = false
		dst, err = s.source.AppendSockets(ctx, dst[:0])
	}
	if err != nil {
		return dst, fmt.Errorf("list sockets (%s): %w", s.source.Name(), err)
	}
	for i := range dst {
		dst[i].NetNS = s.hostNS
	}
	return dst, nil
}

func (s *SystemScanner) countNeedRead() int {
	n := 0
	for _, e := range s.procs {
		if e.needRead {
			n++
		}
	}
	return n
}

// denied lists the live processes whose fds could not be read. The
// tracker that consumes the snapshots says so, once per change.
func (s *SystemScanner) denied() []int32 {
	var out []int32
	for pid, e := range s.procs {
		if e.denied {
			out = append(out, pid)
		}
	}
	if len(out) == 0 {
		return nil
	}
	slices.Sort(out)
	return out
}

// hostAddrs lists the host's addresses, normalised, sorted and unique.
func (s *SystemScanner) hostAddrs(ctx context.Context) []netip.Addr {
	var out []netip.Addr
	if s.addrs != nil {
		var err error
		out, err = s.addrs.appendAddrs(ctx, nil)
		if err != nil {
			s.log.Warn("rtnetlink address dump failed; using net.InterfaceAddrs from now on", "err", err)
			s.addrs.close()
			s.addrs = nil
			out = out[:0]
		}
	}
	if s.addrs == nil {
		ifas, err := net.InterfaceAddrs()
		if err != nil {
			s.log.Debug("cannot list interface addresses", "err", err)
		}
		for _, a := range ifas {
			if p, err := netip.ParsePrefix(a.String()); err == nil {
				out = append(out, NormalizeAddr(p.Addr()))
			}
		}
	}
	slices.SortFunc(out, func(a, b netip.Addr) int { return a.Compare(b) })
	return slices.Compact(out)
}

var _ Scanner = (*SystemScanner)(nil)
var _ io.Closer = (*SystemScanner)(nil)
