package tracker

import (
	"cmp"
	"context"
	"math/bits"
	"net/netip"
	"slices"
	"sync"
	"time"
)

// dedup drops sockets listed twice. Dumps are not atomic (/proc/net files
// are read page by page, netlink dumps datagram by datagram), so a socket
// can show up twice when the tables change meanwhile, or a new connection
// both as a syn-recv request and as the established child. Of two entries
// with the same inode one is kept; of two inode-0 entries of the same
// connection, the one past syn-recv. TIME-WAIT entries never move within
// the tables and are not checked (a busy server has tens of thousands).
func (s *SystemScanner) dedup(socks []Socket) []Socket {
	s.seenInodes.reset(len(socks))
	if s.seenConns == nil {
		s.seenConns = map[scanConnKey]int{}
	}
	clear(s.seenConns)
	out := socks[:0]
	for _, sk := range socks {
		switch {
		case sk.Inode != 0:
			if !s.seenInodes.add(sk.Inode) {
				continue
			}
		case sk.State != StateTimeWait:
			k := scanKeyOf(&sk)
			if i, dup := s.seenConns[k]; dup {
				if out[i].State == StateSynRecv {
					out[i] = sk
				}
				continue
			}
			s.seenConns[k] = len(out)
		}
		out = append(out, sk)
	}
	return out
}

// inodeSet is an open-addressing set of non-zero inodes, reused across
// scans: cheaper than a map for the one insert per socket of a scan.
type inodeSet struct {
	slots []uint64
	shift uint
}

// reset empties the set and sizes it for n inodes.
func (h *inodeSet) reset(n int) {
	size := 16
	for size < 2*n {
		size <<= 1
	}
	if len(h.slots) < size || len(h.slots) > 8*size {
		h.slots = make([]uint64, size)
	} else {
		clear(h.slots)
	}
	h.shift = uint(64 - bits.TrailingZeros(uint(len(h.slots))))
}

// add inserts ino (non-zero) and reports whether it was new.
func (h *inodeSet) add(ino uint64) bool {
	mask := uint64(len(h.slots) - 1)
	for i := (ino * 0x9e3779b97f4a7c15) >> h.shift; ; i = (i + 1) & mask {
		switch h.slots[i] {
		case 0:
			h.slots[i] = ino
			return true
		case ino:
			return false
		}
	}
}

// resolveUnknown searches the owners of the given socket inodes, which no
// known process holds, reading each candidate process at most once per
// scan. Inodes searched before are not searched again; a sweep of every
// process, at most every WideSearchInterval, looks for all of them.
func (s *SystemScanner) resolveUnknown(ctx context.Context, unknown []*Socket, now time.Time) error {
	var fresh []*Socket
	pendingWide := false
	for _, sk := range unknown {
		u := s.unresolved[sk.Inode]
		if u == nil {
			fresh = append(fresh, sk)
			continue
		}
		u.seenScan = s.scanNo
		pendingWide = pendingWide || !u.wideDone
	}
	if len(fresh) > 0 {
		if err := s.searchCandidates(ctx, fresh); err != nil {
			return err
		}
		for _, sk := range fresh {
			if _, ok := s.owners[sk.Inode]; !ok {
				// The first scan has just read every process.
				s.unresolved[sk.Inode] = &unresolvedInode{seenScan: s.scanNo, wideDone: s.scanNo == 1}
				pendingWide = pendingWide || s.scanNo != 1
			}
		}
	}
	if pendingWide && s.opts.WideSearchInterval > 0 && now.Sub(s.lastWide) >= s.opts.WideSearchInterval {
		s.lastWide = now
		s.stats.WideSearches++
		var list []*procEntry
		for _, e := range s.procs {
			if e.readScan != s.scanNo && !e.denied {
				list = append(list, e)
			}
		}
		if err := s.readFDs(ctx, list, true); err != nil {
			return err
		}
		for _, u := range s.unresolved {
			u.wideDone = true
		}
	}
	n := 0
	for ino, u := range s.unresolved {
		if _, found := s.owners[ino]; found || u.seenScan != s.scanNo {
			delete(s.unresolved, ino)
			continue
		}
		n++
	}
	s.stats.Unresolved = n
	return nil
}

// searchCandidates reads likely owners of the unknown sockets until all
// are found: owners of a listener on a connection's local port first,
// then processes of the socket's uid, most recently socket-active first.
func (s *SystemScanner) searchCandidates(ctx context.Context, unknown []*Socket) error {
	if s.scanNo == 1 {
		return nil // the first scan has just read every process
	}
	missing := make(map[uint64]bool, len(unknown))
	for _, sk := range unknown {
		missing[sk.Inode] = true
	}
	queued := map[int32]bool{}
	var first, byUID []*procEntry
	add := func(list *[]*procEntry, pid int32) {
		e := s.procs[pid]
		if e == nil || queued[pid] || e.readScan == s.scanNo || e.denied {
			return
		}
		queued[pid] = true
		*list = append(*list, e)
	}
	listeners := map[scanPortKey][]int32{}
	for i := range s.sockBuf {
		sk := &s.sockBuf[i]
		if sk.State == StateListen && sk.Inode != 0 {
			if o, ok := s.owners[sk.Inode]; ok {
				k := scanPortKey{netns: sk.NetNS, port: sk.Local.Port(), proto: sk.Proto}
				o.each(func(p int32) { listeners[k] = append(listeners[k], p) })
			}
		}
	}
	uids := map[uint32]bool{}
	for _, sk := range unknown {
		uids[sk.UID] = true
		if sk.Proto == ProtoTCP && sk.Connected() {
			k := scanPortKey{netns: sk.NetNS, port: sk.Local.Port(), proto: sk.Proto}
			for _, p := range listeners[k] {
				add(&first, p)
			}
		}
	}
	for pid, e := range s.procs {
		if uids[e.sig.uid] {
			add(&byUID, pid)
		}
	}
	slices.SortFunc(byUID, func(a, b *procEntry) int {
		return cmp.Or(cmp.Compare(b.activeScan, a.activeScan), cmp.Compare(a.pid, b.pid))
	})
	// Read in small batches so that the search stops soon after the last
	// unknown inode is found.
	order := append(first, byUID...)
	for start := 0; start < len(order) && len(missing) > 0; {
		end := min(len(order), start+max(4, start))
		if err := s.readFDs(ctx, order[start:end], true); err != nil {
			return err
		}
		for ino := range missing {
			if _, ok := s.owners[ino]; ok {
				delete(missing, ino)
			}
		}
		start = end
	}
	return nil
}

// attribute builds the observed sockets of the snapshot: it looks up the
// owner of each inode (once), searches the owners of unknown inodes,
// loads the details of owners that need them, then gives inode-0 sockets
// the owner their connection had at the previous scan, or their
// listener's.
func (s *SystemScanner) attribute(ctx context.Context, socks []Socket, now time.Time) ([]Observed, error) {
	obs := make([]Observed, len(socks))
	// first[i] is the entry of the only owner of socket i; nil for inode 0,
	// an unknown inode, or several owners (then multi is set).
	first := s.entBuf[:0]
	var unknown []*Socket
	var unknownAt []int
	multi, orphans := false, false
	for i := range socks {
		obs[i].Socket = socks[i]
		first = append(first, nil)
		if socks[i].Inode == 0 {
			orphans = true
			continue
		}
		o, ok := s.owners[socks[i].Inode]
		switch {
		case !ok:
			unknown = append(unknown, &socks[i])
			unknownAt = append(unknownAt, i)
		case len(o.more) == 0 && o.e != nil:
			first[i] = o.e
		default:
			multi = true
		}
	}
	s.entBuf = first
	defer clear(first) // do not keep entries alive until the next scan
	if len(unknown) > 0 {
		if err := s.resolveUnknown(ctx, unknown, now); err != nil {
			return nil, err
		}
		for _, i := range unknownAt {
			if o, ok := s.owners[socks[i].Inode]; ok {
				if len(o.more) == 0 && o.e != nil {
					first[i] = o.e
				} else {
					multi = true
				}
			}
		}
	} else {
		s.stats.Unresolved = 0
		clear(s.unresolved)
	}
	if err := s.loadDetails(ctx, socks, first, multi); err != nil {
		return nil, err
	}
	for i := range obs {
		switch o := &obs[i]; {
		case first[i] != nil:
			o.Owner = first[i].proc
		case multi && o.Inode != 0:
			o.Owner = s.ownerOf(o.Inode)
		}
	}
	s.adoptOrphans(obs, orphans)
	return obs, nil
}

// adoptOrphans gives inode-0 sockets (TIME-WAIT, accept queue, orphaned)
// the owner their connection had at the previous scan, else the owner of
// the TCP listener on their local address and port (or on the wildcard
// address), and remembers the owners of this scan's connections.
func (s *SystemScanner) adoptOrphans(obs []Observed, orphans bool) {
	type listener struct {
		addr  netip.Addr
		owner *Process
	}
	var listeners map[scanPortKey][]listener
	if orphans {
		listeners = map[scanPortKey][]listener{}
		for i := range obs {
			if o := &obs[i]; o.Owner != nil && o.State == StateListen {
				k := scanPortKey{o.NetNS, o.Local.Port(), o.Proto}
				listeners[k] = append(listeners[k], listener{o.Local.Addr(), o.Owner})
			}
		}
	}
	clear(s.curTuples)
	for i := range obs {
		o := &obs[i]
		if o.Inode == 0 {
			if p := s.prevTuples[scanKeyOf(&o.Socket)]; p != nil {
				o.Owner, o.Inherited = p, true
			} else {
				var wild *Process
				for _, l := range listeners[scanPortKey{o.NetNS, o.Local.Port(), o.Proto}] {
					if l.addr == o.Local.Addr() {
						o.Owner = l.owner
						break
					}
					if l.addr.IsUnspecified() && wild == nil {
						wild = l.owner
					}
				}
				if o.Owner == nil {
					o.Owner = wild
				}
				o.Inherited = o.Owner != nil
			}
		}
		if o.Owner != nil && o.Proto == ProtoTCP && o.Connected() {
			s.curTuples[scanKeyOf(&o.Socket)] = o.Owner
		}
	}
	s.prevTuples, s.curTuples = s.curTuples, s.prevTuples
}

// ownerOf returns the process holding inode: when several do (a socket
// inherited across fork), the one that started first.
func (s *SystemScanner) ownerOf(ino uint64) *Process {
	o, ok := s.owners[ino]
	if !ok {
		return nil
	}
	if len(o.more) == 0 && o.e != nil {
		return o.e.proc
	}
	var best *Process
	o.each(func(pid int32) {
		p := s.procDetails(pid)
		if p == nil {
			return
		}
		if best == nil || p.StartTime.Before(best.StartTime) || (p.StartTime.Equal(best.StartTime) && p.PID < best.PID) {
			best = p
		}
	})
	return best
}

// procDetails returns the details of pid loaded by loadDetails.
func (s *SystemScanner) procDetails(pid int32) *Process {
	if e := s.procs[pid]; e != nil {
		return e.proc
	}
	return nil
}

// execPollEvery is how many scans apart the executable and uid of a
// socket owner whose fds did not change are checked, without ProcEvents.
const execPollEvery = 16

// loadDetails loads the details of every process that holds a socket of
// this scan and has none yet, or exec'd or changed uid: detected by the
// proc connector, or — without it — by the /proc/<pid>/exe link and the
// uid in /proc/<pid>/status, checked whenever the process's fds were
// re-read and every execPollEvery scans. first
// holds the single owner of each socket; with multi, some sockets have
// several owners, found in the owner index.
func (s *SystemScanner) loadDetails(ctx context.Context, socks []Socket, first []*procEntry, multi bool) error {
	var need []*procEntry
	d := s.dirs[0]
	visit := func(e *procEntry) {
		if e == nil || e.visitScan == s.scanNo {
			return
		}
		e.visitScan = s.scanNo
		if e.proc != nil && !e.stale && s.events == nil &&
			(e.readScan == s.scanNo || (uint64(e.pid)+s.scanNo)%execPollEvery == 0 || e.exeScan == 0) {
			e.exeScan = s.scanNo
			// The exe link changes on exec of another file, and gains a
			// " (deleted)" suffix when the binary is replaced.
			if d.readLink(pidPath(e.pid, "exe")) != e.proc.Exe {
				e.stale = true
			} else if uid, ok := d.statusUID(e.pid); ok && uid != e.proc.UID {
				e.stale = true // setuid: a daemon dropping root after binding
			}
		}
		if e.proc == nil || e.stale {
			need = append(need, e)
		}
	}
	for i, e := range first {
		if e != nil {
			visit(e)
			continue
		}
		if multi && socks[i].Inode != 0 {
			if o, ok := s.owners[socks[i].Inode]; ok {
				o.each(func(pid int32) { visit(s.procs[pid]) })
			}
		}
	}
	if len(need) == 0 {
		return nil
	}
	type result struct {
		p   *Process
		err error
	}
	results := make([]result, len(need))
	err := s.parallel(ctx, len(need), func(d *procDir, i int) {
		r := &results[i]
		uid := need[i].sig.uid
		if !s.live {
			uid = 0 // a fixture tree: the files' owner means nothing
		}
		r.p, r.err = d.loadProcess(&s.details, need[i].pid, uid)
	})
	if err != nil {
		return err
	}
	for i, e := range need {
		r := results[i]
		s.stats.DetailReads++
		if r.err != nil {
			s.log.Debug("cannot read process details", "pid", e.pid, "err", r.err)
			continue // keep what we knew; nil for a process gone at once
		}
		e.proc, e.exeScan, e.stale = r.p, s.scanNo, false
	}
	return nil
}

// parallel calls fn(dir, i) for i in [0, n), spread over the scanner's
// workers when n is large enough to be worth it.
func (s *SystemScanner) parallel(ctx context.Context, n int, fn func(d *procDir, i int)) error {
	workers := min(len(s.dirs), n/8+1)
	if workers <= 1 {
		for i := range n {
			if err := ctx.Err(); err != nil {
				return err
			}
			fn(s.dirs[0], i)
		}
		return nil
	}
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			d := s.dirs[w]
			for i := w; i < n; i += workers {
				if ctx.Err() != nil {
					return
				}
				fn(d, i)
			}
		})
	}
	wg.Wait()
	return ctx.Err()
}
