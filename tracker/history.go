package tracker

import (
	"bytes"
	"cmp"
	"net/netip"
	"slices"
	"time"
)

// endpoint is an address (16 bytes, IPv4 as IPv4-mapped) and a port
// (big-endian): a compact, pointer-free map key.
type endpoint [18]byte

func endpointOf(ap netip.AddrPort) endpoint {
	var e endpoint
	if ap.Addr().IsValid() {
		a := ap.Addr().As16()
		copy(e[:16], a[:])
	}
	e[16], e[17] = byte(ap.Port()>>8), byte(ap.Port())
	return e
}

func (e endpoint) port() uint16 { return uint16(e[16])<<8 | uint16(e[17]) }

// sockKey identifies a socket between scans. The remote of an
// unconnected socket is all zero.
type sockKey struct {
	proto  Proto
	local  endpoint
	remote endpoint
	inode  uint64
	netns  uint64
}

// connKey identifies a connection whatever its inode (an owned socket
// that becomes an inode-0 TIME-WAIT or orphan keeps its connKey).
type connKey struct {
	proto  Proto
	local  endpoint
	remote endpoint
	netns  uint64
}

// portKey groups the unconnected sockets of a port.
type portKey struct {
	proto Proto
	port  uint16
	netns uint64
}

// entry is a tracked binding.
type entry struct {
	key sockKey
	b   Binding
	// id is the store record of the binding while persisted, else 0.
	id   uint64
	seen uint64 // scan generation that last saw it
	dead bool
	// recovered: loaded from the store at start-up, not yet re-matched.
	recovered bool
	// ownerGen changes when the owner changes (covers check it).
	ownerGen uint64
	// cover is the listener whose interval attributes this connection
	// as well as its own would (same owner, same local address or a
	// wildcard on an address of the host); such connections are not
	// persisted while the cover holds.
	cover     *entry
	coverGen  uint64
	coverWild bool
	// View order bookkeeping: queued for the next merge, and whether
	// the key changed since the entry took its place in order.
	queued bool
	moved  bool

	// Event source bookkeeping (history_events.go).
	ev *evSock // the event source's socket this binding is, when known
	// unseen: learned from an event, and no scan has seen the socket
	// yet. Such entries are in conns or unconn (scans adopt them, they
	// cover connections) but not in entries nor in the view.
	unseen bool
	// undecided: an unseen connection whose persistence is decided at
	// the end of its batch of events (most short ones close before).
	undecided bool
	thin      bool // owner built from an event alone (exe, cmdline unknown)
	viaAccept bool // owner is the listener's creator: a scan's view wins
}

// addrEntry is an address the host owns now.
type addrEntry struct {
	id        uint64
	a         AddrInterval
	recovered bool
}

// history is the tracker's in-memory state: the live bindings and
// addresses, and what must be written to the store. Only the scanning
// goroutine uses it.
type history struct {
	host      string
	entries   map[sockKey]*entry
	conns     map[connKey]*entry
	unconn    map[portKey][]*entry
	pending   map[*entry]struct{}
	addrs     map[netip.Addr]*addrEntry
	gen       uint64
	nextID    uint64
	last      time.Time // time of the last scan applied
	prevRun   time.Time // last scan persisted by the previous run
	recovered bool      // the next scan is the first after a restart
	orphans   []uint64  // duplicate open records found at restart

	// order is the sorted view order as of the last bindings() call;
	// queue holds the entries added or re-keyed since.
	order []*entry
	queue []*entry

	// Sockets learned from an event source (history_events.go).
	evs evTable

	// scratch, reused between scans
	fresh []*entry
	gone  []*entry
	seen  map[netip.Addr]struct{}
}

func newHistory(host string, nextID uint64) *history {
	if nextID == 0 {
		nextID = 1
	}
	return &history{
		host:    host,
		entries: make(map[sockKey]*entry),
		conns:   make(map[connKey]*entry),
		unconn:  make(map[portKey][]*entry),
		pending: make(map[*entry]struct{}),
		addrs:   make(map[netip.Addr]*addrEntry),
		nextID:  nextID,
		seen:    make(map[netip.Addr]struct{}),
		evs:     newEvTable(DefaultMaxEventSockets),
	}
}

// normSocket normalises addresses: IPv4-mapped to IPv4, no zones, and the
// zero AddrPort as the remote of unconnected sockets.
func normSocket(s Socket) Socket {
	if s.Local.Addr().IsValid() {
		s.Local = netip.AddrPortFrom(NormalizeAddr(s.Local.Addr()), s.Local.Port())
	}
	if s.Connected() {
		s.Remote = netip.AddrPortFrom(NormalizeAddr(s.Remote.Addr()), s.Remote.Port())
	} else {
		s.Remote = netip.AddrPort{}
	}
	return s
}

// keyOf returns the key of a normalised socket.
func keyOf(s *Socket) sockKey {
	k := sockKey{proto: s.Proto, local: endpointOf(s.Local), inode: s.Inode, netns: s.NetNS}
	if s.Remote.IsValid() {
		k.remote = endpointOf(s.Remote)
	}
	return k
}

func (k sockKey) conn() connKey {
	return connKey{proto: k.proto, local: k.local, remote: k.remote, netns: k.netns}
}

func (k sockKey) port() portKey {
	return portKey{proto: k.proto, port: k.local.port(), netns: k.netns}
}

func (k sockKey) connected() bool { return k.remote != endpoint{} }

func compareKeys(a, b sockKey) int {
	return cmp.Or(
		cmp.Compare(a.proto, b.proto),
		bytes.Compare(a.local[:], b.local[:]),
		bytes.Compare(a.remote[:], b.remote[:]),
		cmp.Compare(a.inode, b.inode),
		cmp.Compare(a.netns, b.netns),
	)
}

// sameOwner reports whether p and q are the same process with the same
// details (an exec keeps pid and start time but may change the name).
func sameOwner(p, q *Process) bool {
	if p == q {
		return true
	}
	if !p.Same(q) {
		return false
	}
	return p.Name == q.Name && p.Exe == q.Exe && p.Cmdline == q.Cmdline && p.UID == q.UID && p.Container == q.Container
}

// recover loads the bindings and addresses left open by the previous run;
// the next scan re-matches them (see the package documentation).
func (h *history) recover(bs []storedBinding, as []storedAddr, lastScan time.Time) {
	for _, sb := range bs {
		b := sb.b
		b.Socket = normSocket(b.Socket)
		e := &entry{key: keyOf(&b.Socket), b: b, id: sb.id, recovered: true}
		if _, dup := h.entries[e.key]; dup {
			h.orphans = append(h.orphans, sb.id) // closed by the next scan
			continue
		}
		h.add(e)
	}
	for _, sa := range as {
		h.addrs[sa.a.Addr] = &addrEntry{id: sa.id, a: sa.a, recovered: true}
	}
	h.prevRun = lastScan
	h.last = lastScan
	h.recovered = true
}

func (h *history) add(e *entry) {
	h.entries[e.key] = e
	h.enqueue(e)
	if e.key.connected() {
		h.conns[e.key.conn()] = e
	} else {
		pk := e.key.port()
		h.unconn[pk] = append(h.unconn[pk], e)
	}
}

func (h *history) remove(e *entry) {
	e.dead = true
	if h.entries[e.key] == e {
		delete(h.entries, e.key)
	}
	delete(h.pending, e)
	e.cover = nil
	h.unlinkEvent(e)
	if e.key.connected() {
		if ck := e.key.conn(); h.conns[ck] == e {
			delete(h.conns, ck)
		}
		return
	}
	pk := e.key.port()
	l := slices.DeleteFunc(h.unconn[pk], func(x *entry) bool { return x == e })
	if len(l) == 0 {
		delete(h.unconn, pk)
	} else {
		h.unconn[pk] = l
	}
}

// endTime is when the interval of e, not seen at now, ended: now, or the
// previous run's last scan for what that run left open (never before the
// interval's start: an event may have opened it after that scan).
func (h *history) endTime(e *entry, now time.Time) time.Time {
	if e.recovered && h.recovered {
		now = h.prevRun
	}
	if now.Before(e.b.From) {
		return e.b.From
	}
	return now
}

// scanResult is what one scan changed.
type scanResult struct {
	events  []Event // without Seq
	ops     []storeOp
	changed bool // the view changed (events, states or addresses)
}

// apply diffs a snapshot taken at now against the state and returns the
// events and store changes; the state moves to the snapshot.
func (h *history) apply(snap *Snapshot, now time.Time) scanResult {
	var r scanResult
	h.gen++
	gen := h.gen
	for _, id := range h.orphans {
		r.ops = append(r.ops, storeOp{kind: opClose, id: id, until: h.prevRun})
	}
	h.orphans = nil
	h.fresh = h.fresh[:0]
	type newSock struct {
		sock Socket
		o    *Observed
	}
	var news []newSock

	// Sockets seen before.
	for i := range snap.Sockets {
		o := &snap.Sockets[i]
		sock := normSocket(o.Socket)
		k := keyOf(&sock)
		if e := h.entries[k]; e != nil {
			if e.seen != gen {
				e.seen = gen
				h.update(e, &sock, o, now, &r)
			}
			continue
		}
		news = append(news, newSock{sock, o})
	}

	// New sockets: continuations of known connections, or new bindings.
	for _, n := range news {
		k := keyOf(&n.sock)
		if e := h.entries[k]; e != nil { // duplicate in the snapshot
			continue
		}
		if n.sock.Inode == 0 {
			// An owned connection that lost its inode (TIME-WAIT, orphan)
			// continues under its owner. Other inode-0 sockets (accept
			// queue, TIME-WAIT of unseen connections) are the listener's:
			// the listener's interval attributes them.
			if !k.connected() {
				continue
			}
			if e := h.conns[k.conn()]; e != nil && e.key.inode != 0 && e.seen != gen {
				delete(h.entries, e.key)
				e.key = k
				e.moved = true
				h.enqueue(e)
				e.b.Inode = 0
				e.b.State = n.sock.State
				e.seen = gen
				h.entries[k] = e
				r.changed = true
			}
			continue
		}
		if h.adopt(k, &n.sock, n.o, gen, now, &r) {
			continue // a socket an event reported first
		}
		e := &entry{key: k, seen: gen, b: Binding{Socket: n.sock, Owner: n.o.Owner, Host: h.host, From: now}}
		h.add(e)
		h.fresh = append(h.fresh, e)
		r.events = append(r.events, Event{Kind: EventBound, Binding: e.b})
	}

	// Sockets gone.
	h.gone = h.gone[:0]
	for _, e := range h.entries {
		if e.seen != gen {
			h.gone = append(h.gone, e)
		}
	}
	slices.SortFunc(h.gone, func(a, b *entry) int { return compareKeys(a.key, b.key) })
	for _, e := range h.gone {
		until := h.endTime(e, now)
		e.b.Until = until
		if e.id != 0 {
			r.ops = append(r.ops, storeOp{kind: opClose, id: e.id, until: until})
		}
		r.events = append(r.events, Event{Kind: EventUnbound, Binding: e.b})
		h.remove(e)
	}
	clear(h.gone)

	h.applyAddrs(snap.Addrs, now, &r)
	h.checkUnseen(snap, now)

	// Persist new intervals unless a listener covers them, and those
	// whose cover ended.
	// Listeners first, so that connections find the covers that appeared
	// in the same scan.
	for _, e := range h.fresh {
		if !e.key.connected() {
			h.decide(e, &r)
		}
	}
	for _, e := range h.fresh {
		if e.key.connected() {
			h.decide(e, &r)
		}
	}
	clear(h.fresh)
	for e := range h.pending {
		if !h.coverHolds(e) {
			h.persist(e, &r)
		}
	}
	if len(r.events) > 0 {
		r.changed = true
	}
	h.last = now
	h.recovered = false
	return r
}

// update applies a new observation of a known socket.
func (h *history) update(e *entry, sock *Socket, o *Observed, now time.Time, r *scanResult) {
	if e.b.State != sock.State || e.b.UID != sock.UID {
		e.b.State, e.b.UID = sock.State, sock.UID
		r.changed = true
	}
	if e.key.inode == 0 {
		// A continuation keeps the owner it had with its inode; the
		// scan can only name the listener (or nobody) now.
		return
	}
	own := o.Owner
	switch {
	case own == nil || sameOwner(e.b.Owner, own):
		// An owner the scan could not see this time is not a change.
		return
	case e.b.Owner == nil:
		// Owner found (the socket was seen before its fd): same interval.
		e.b.Owner = own
		e.ownerGen++
		h.fresh = append(h.fresh, e)
		r.events = append(r.events, Event{Kind: EventOwnerChanged, Binding: e.b})
		return
	case e.thin && e.b.Owner.Same(own):
		// An owner an event named by its comm alone: the same process,
		// now with its details, for the whole interval.
		e.b.Owner, e.thin = own, false
		e.ownerGen++
		if e.id != 0 {
			r.ops = append(r.ops, storeOp{kind: opOpen, id: e.id, b: openCopy(e.b)})
		}
		r.events = append(r.events, Event{Kind: EventOwnerChanged, Binding: e.b})
		return
	}
	until := h.endTime(e, now)
	if e.id != 0 {
		r.ops = append(r.ops, storeOp{kind: opClose, id: e.id, until: until})
		e.id = 0
	}
	delete(h.pending, e)
	e.cover = nil
	e.b.Owner = own
	e.b.From = now
	e.thin, e.viaAccept = false, false
	e.ownerGen++
	h.fresh = append(h.fresh, e)
	r.events = append(r.events, Event{Kind: EventOwnerChanged, Binding: e.b})
}

// applyAddrs diffs the host's addresses; nil means the scan did not
// report them (keep the current ones).
func (h *history) applyAddrs(addrs []netip.Addr, now time.Time, r *scanResult) {
	if addrs == nil {
		return
	}
	clear(h.seen)
	for _, a := range addrs {
		if !a.IsValid() {
			continue
		}
		a = NormalizeAddr(a)
		h.seen[a] = struct{}{}
		if _, ok := h.addrs[a]; ok {
			continue
		}
		ae := &addrEntry{id: h.nextID, a: AddrInterval{Addr: a, From: now}}
		h.nextID++
		h.addrs[a] = ae
		r.ops = append(r.ops, storeOp{kind: opAddrOpen, id: ae.id, a: ae.a})
		r.changed = true
	}
	var gone []netip.Addr
	for a := range h.addrs {
		if _, ok := h.seen[a]; !ok {
			gone = append(gone, a)
		}
	}
	slices.SortFunc(gone, netip.Addr.Compare)
	for _, a := range gone {
		ae := h.addrs[a]
		until := now
		if ae.recovered && h.recovered {
			until = h.prevRun
		}
		r.ops = append(r.ops, storeOp{kind: opAddrClose, id: ae.id, until: until})
		delete(h.addrs, a)
		r.changed = true
	}
}

// decide persists a new or re-owned interval unless a listener covers it.
func (h *history) decide(e *entry, r *scanResult) {
	if e.dead || e.id != 0 || e.b.Owner == nil {
		return // ownerless intervals attribute nothing
	}
	if e.key.connected() {
		if l, wild := h.findCover(e); l != nil {
			e.cover, e.coverGen, e.coverWild = l, l.ownerGen, wild
			h.pending[e] = struct{}{}
			return
		}
	}
	h.persist(e, r)
}

// persist writes the interval of e to the store from its start.
func (h *history) persist(e *entry, r *scanResult) {
	delete(h.pending, e)
	e.cover = nil
	if e.dead || e.id != 0 || e.b.Owner == nil {
		return
	}
	e.id = h.nextID
	h.nextID++
	b := e.b
	b.Until = time.Time{}
	r.ops = append(r.ops, storeOp{kind: opOpen, id: e.id, b: b})
}

// findCover returns a live listener of the same owner that a lookup of
// the connection's local side would find: on the same address, or on a
// wildcard while the host owns the connection's address.
func (h *history) findCover(e *entry) (l *entry, wild bool) {
	local := e.b.Local.Addr()
	for _, c := range h.unconn[e.key.port()] {
		if c.dead || c.id == 0 || !c.b.State.Listening() || !sameOwner(c.b.Owner, e.b.Owner) {
			continue
		}
		la := c.b.Local.Addr()
		if la == local {
			return c, false
		}
		if wildcardServes(la, local) {
			if _, owned := h.addrs[local]; owned {
				return c, true
			}
		}
	}
	return nil, false
}

// wildcardServes reports whether a socket bound to the unspecified
// address la accepts traffic for a: 0.0.0.0 serves IPv4, :: serves both
// (Linux's default, bindv6only=0).
func wildcardServes(la, a netip.Addr) bool {
	if !la.IsUnspecified() {
		return false
	}
	return la.Is6() || a.Is4()
}

// coverHolds reports whether a pending connection's listener still
// attributes it.
func (h *history) coverHolds(e *entry) bool {
	c := e.cover
	if c == nil || c.dead || c.ownerGen != e.coverGen || c.id == 0 || e.dead {
		return false
	}
	if e.coverWild {
		if _, owned := h.addrs[e.b.Local.Addr()]; !owned {
			return false
		}
	}
	return true
}

// enqueue queues e for the next merge into the view order.
func (h *history) enqueue(e *entry) {
	if !e.queued {
		e.queued = true
		h.queue = append(h.queue, e)
	}
}

// bindings returns the live bindings, sorted. The previous order is kept
// and only what changed is sorted and merged in, so a scan that changes a
// few sockets of many does not sort them all again.
func (h *history) bindings() []Binding {
	add := h.queue[:0]
	for _, e := range h.queue {
		e.queued = false
		if !e.dead {
			add = append(add, e)
		}
	}
	slices.SortFunc(add, func(a, b *entry) int { return compareKeys(a.key, b.key) })
	order := make([]*entry, 0, len(h.entries))
	i := 0
	for _, e := range h.order {
		if e.dead || e.moved {
			continue
		}
		for i < len(add) && compareKeys(add[i].key, e.key) < 0 {
			order = append(order, add[i])
			i++
		}
		order = append(order, e)
	}
	order = append(order, add[i:]...)
	for _, e := range add {
		e.moved = false
	}
	clear(h.queue)
	h.queue = h.queue[:0]
	h.order = order
	out := make([]Binding, len(order))
	for i, e := range order {
		out[i] = e.b
	}
	return out
}

// currentAddrs returns the addresses owned now, sorted.
func (h *history) currentAddrs() []AddrInterval {
	out := make([]AddrInterval, 0, len(h.addrs))
	for _, ae := range h.addrs {
		out = append(out, ae.a)
	}
	sortAddrs(out)
	return out
}
