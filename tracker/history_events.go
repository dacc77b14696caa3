package tracker

import (
	"slices"
	"time"
)

// evSock is a kernel socket an event source reported, known by its
// cookie until its close event: its binding (bind, listen, connect,
// accept, or a connected UDP socket's datagram) and, for an unconnected
// UDP socket, the conversations no binding of its own attributes.
type evSock struct {
	cookie  uint64
	proto   Proto
	netns   uint64
	port    uint16 // local port
	first   time.Time
	main    *entry
	convs   []*entry
	nUnseen int // entries no scan has seen
	// vanished is the first scan after the socket's first event that did
	// not show it, and misses the number of scans since that did not; if
	// no close event comes within missedCloseGrace and two scans missed
	// it (a dump is not atomic), its bindings end there.
	vanished time.Time
	misses   int
	dropped  bool
	// Creation order, oldest first, for eviction at the bound.
	prev, next *evSock
}

// evTable holds the sockets learned from events.
type evTable struct {
	byCookie   map[uint64]*evSock
	head, tail *evSock
	max        int
	unseen     int                  // open unseen entries
	withUnseen map[*evSock]struct{} // sockets with unseen entries
	vanished   []*evSock            // sockets marked vanished (some may be gone since)
	fresh      []*entry             // undecided entries of the current batch

	// Counters (EventSourceStats).
	applied, ignored, missedCloses, evictions uint64

	// Scratch of checkUnseen.
	scanNS   map[uint64]struct{}
	udpPorts map[portKey]struct{}
	tcpConns map[connKey]struct{}
}

func newEvTable(max int) evTable {
	return evTable{
		byCookie:   make(map[uint64]*evSock),
		max:        max,
		withUnseen: make(map[*evSock]struct{}),
		scanNS:     make(map[uint64]struct{}),
		udpPorts:   make(map[portKey]struct{}),
		tcpConns:   make(map[connKey]struct{}),
	}
}

// drop removes s from the table.
func (t *evTable) drop(s *evSock) {
	if s.dropped {
		return
	}
	s.dropped = true
	delete(t.byCookie, s.cookie)
	delete(t.withUnseen, s)
	if s.prev != nil {
		s.prev.next = s.next
	} else {
		t.head = s.next
	}
	if s.next != nil {
		s.next.prev = s.prev
	} else {
		t.tail = s.prev
	}
	s.prev, s.next = nil, nil
}

// applyEvents records a batch of events, then decides which of the new
// connections to persist (those still open and not attributed by their
// listener).
func (h *history) applyEvents(recs []evRecord, r *scanResult) {
	for i := range recs {
		h.applyEvent(&recs[i], r)
	}
	for _, e := range h.evs.fresh {
		if e.undecided && !e.dead {
			e.undecided = false
			h.decide(e, r)
		}
	}
	clear(h.evs.fresh)
	h.evs.fresh = h.evs.fresh[:0]
}

// applyEvent records one event.
func (h *history) applyEvent(rec *evRecord, r *scanResult) {
	if rec.Cookie == 0 || (rec.Proto != ProtoTCP && rec.Proto != ProtoUDP) || !rec.Local.Addr().IsValid() {
		h.evs.ignored++
		return
	}
	sock := normSocket(rec.Socket)
	sock.Inode = 0
	owner, thin := rec.owner, rec.thin
	if owner != nil {
		sock.UID = owner.UID
	}
	switch rec.Kind {
	case SockClose:
		h.evClose(rec, &sock, r)
		return
	case SockBind, SockListen:
		if (rec.Kind == SockBind) != (sock.Proto == ProtoUDP) || owner == nil {
			h.evs.ignored++ // a TCP bind: its listen or connect follows
			return
		}
		sock.State = StateListen
		if sock.Proto == ProtoUDP {
			sock.State = StateUnconn
		}
		h.evListen(rec, &sock, owner, thin, r)
		return
	}
	if !sock.Connected() {
		h.evs.ignored++
		return
	}
	switch rec.Kind {
	case SockConnect:
		if sock.Proto != ProtoTCP || owner == nil {
			h.evs.ignored++
			return
		}
		if rec.State == StateClose {
			h.evFailed(rec, &sock, owner, r)
			return
		}
		sock.State = StateEstablished
		h.evConn(rec, &sock, owner, thin, false, false, r)
	case SockAccept:
		if sock.Proto != ProtoTCP {
			h.evs.ignored++
			return
		}
		// The event names the listener's creator; a scan's view of who
		// holds the listener now wins (socket activation, pre-forked
		// workers, a listener passed on).
		viaAccept := true
		if l := h.listenerOf(&sock); l != nil && (!l.unseen || owner == nil) {
			owner, thin, viaAccept = l.b.Owner, l.thin, l.unseen
		}
		if owner == nil {
			h.evs.ignored++
			return
		}
		sock.State = StateEstablished
		h.evConn(rec, &sock, owner, thin, viaAccept, false, r)
	case SockDatagram:
		if sock.Proto != ProtoUDP || owner == nil {
			h.evs.ignored++
			return
		}
		connected := rec.State == StateEstablished
		sock.State = StateEstablished
		if !connected && h.udpCovered(&sock, owner) {
			h.evs.ignored++ // the socket's own binding attributes it
			return
		}
		h.evConn(rec, &sock, owner, thin, false, !connected, r)
	default:
		h.evs.ignored++
	}
}

// evConn records a connection (TCP) or conversation (UDP) that started at
// the event's time: the socket a scan already knows under that 5-tuple,
// if it is this one, or a new unseen binding.
func (h *history) evConn(rec *evRecord, sock *Socket, owner *Process, thin, viaAccept, conv bool, r *scanResult) {
	k := keyOf(sock)
	if x := h.conns[k.conn()]; x != nil && !x.dead {
		switch {
		case x.ev != nil && x.ev.cookie == rec.Cookie:
			h.evs.ignored++ // a repeat (a conversation reported again)
			return
		case !x.unseen && x.ev == nil && (!x.b.From.Before(rec.Time.Add(-sameSocketSlack)) || x.b.Owner.Same(owner)):
			// A scan saw this very socket first (or, of the same process,
			// one the same 5-tuple names for attribution: a connected UDP
			// socket sends its first datagram long after connect).
			h.link(x, rec, sock, conv, r)
			h.merge(x, rec.Time, owner, thin, r)
			h.evs.applied++
			return
		default:
			// An older socket with the same addresses, whose end was
			// missed (a lost close event, or the scan that would have
			// seen it go has not come yet).
			h.closeEntry(x, rec.Time, r)
		}
	}
	e := &entry{key: k, unseen: true, undecided: true, thin: thin, viaAccept: viaAccept,
		b: Binding{Socket: *sock, Owner: owner, Host: h.host, From: rec.Time}}
	h.addUnseen(e)
	h.link(e, rec, sock, conv, r)
	h.evs.fresh = append(h.evs.fresh, e)
	h.evs.applied++
}

// evListen records a TCP listener or a bound UDP socket.
func (h *history) evListen(rec *evRecord, sock *Socket, owner *Process, thin bool, r *scanResult) {
	k := keyOf(sock)
	for _, x := range h.unconn[k.port()] {
		if x.dead || x.key.local != k.local || x.b.State != sock.State {
			continue
		}
		if x.ev != nil && x.ev.cookie == rec.Cookie {
			h.evs.ignored++
			return
		}
		if !x.unseen && x.ev == nil && !x.b.From.Before(rec.Time.Add(-sameSocketSlack)) &&
			(x.b.Owner == nil || x.b.Owner.Same(owner)) {
			h.link(x, rec, sock, false, r)
			h.merge(x, rec.Time, owner, thin, r)
			h.evs.applied++
			return
		}
	}
	e := &entry{key: k, unseen: true, thin: thin, b: Binding{Socket: *sock, Owner: owner, Host: h.host, From: rec.Time}}
	h.addUnseen(e)
	h.link(e, rec, sock, false, r)
	h.decide(e, r) // listeners are written at once: connections find them as covers
	h.evs.applied++
}

// evFailed records a connection attempt that failed: from its SYN to when
// the tracker learned of the failure.
func (h *history) evFailed(rec *evRecord, sock *Socket, owner *Process, r *scanResult) {
	sock.State = StateSynSent
	until := rec.received
	if until.Before(rec.Time) {
		until = rec.Time
	}
	if x := h.conns[keyOf(sock).conn()]; x != nil && !x.dead && !x.unseen && x.ev == nil &&
		!x.b.From.Before(rec.Time.Add(-sameSocketSlack)) {
		h.closeEntry(x, until, r) // a scan saw the attempt
		h.evs.applied++
		return
	}
	b := Binding{Socket: *sock, Owner: owner, Host: h.host, From: rec.Time, Until: until}
	r.ops = append(r.ops, storeOp{kind: opClosed, id: h.nextID, b: b})
	h.nextID++
	h.evs.applied++
}

// evClose ends the bindings of the closed socket.
func (h *history) evClose(rec *evRecord, sock *Socket, r *scanResult) {
	if s := h.evs.byCookie[rec.Cookie]; s != nil {
		h.closeSock(s, rec.Time, r)
		h.evs.applied++
		return
	}
	// A TCP connection the source reported no start of (its connect
	// event was lost, or it is older than the source): the 5-tuple names
	// it.
	if sock.Proto == ProtoTCP && sock.Connected() {
		if x := h.conns[keyOf(sock).conn()]; x != nil && !x.dead && !x.unseen && x.ev == nil && !rec.Time.Before(x.b.From) {
			h.closeEntry(x, rec.Time, r)
			h.evs.applied++
			return
		}
	}
	h.evs.ignored++
}

// closeSock ends every binding of s at until and forgets s.
func (h *history) closeSock(s *evSock, until time.Time, r *scanResult) {
	es := s.convs
	if s.main != nil {
		es = append(es, s.main)
	}
	s.main, s.convs = nil, nil
	h.evs.drop(s)
	for _, e := range es {
		h.detach(e)
		h.closeEntry(e, until, r)
	}
}

// closeEntry ends the interval of e at until (not before its start):
// in the store, and for a binding of the view, with an unbound event. A
// connection not written yet is written whole unless its listener's
// interval attributes it.
func (h *history) closeEntry(e *entry, until time.Time, r *scanResult) {
	if e.dead {
		return
	}
	if until.Before(e.b.From) {
		until = e.b.From
	}
	switch {
	case e.id != 0:
		r.ops = append(r.ops, storeOp{kind: opClose, id: e.id, until: until})
	case e.b.Owner != nil && !h.attributedByCover(e):
		b := e.b
		b.Until = until
		r.ops = append(r.ops, storeOp{kind: opClosed, id: h.nextID, b: b})
		h.nextID++
	}
	e.b.Until = until
	if !e.unseen {
		r.events = append(r.events, Event{Kind: EventUnbound, Time: until, Binding: e.b})
		r.changed = true
	}
	h.remove(e)
}

// attributedByCover reports whether a connection not written to the
// store needs no record: its listener's interval attributes it.
func (h *history) attributedByCover(e *entry) bool {
	if _, ok := h.pending[e]; ok {
		return h.coverHolds(e)
	}
	if e.undecided && e.key.connected() {
		l, _ := h.findCover(e)
		return l != nil
	}
	return false
}

// merge applies what an event says of a binding a scan saw first: the
// earlier start, and the owner when the scan found none (or only a thin
// one).
func (h *history) merge(x *entry, at time.Time, owner *Process, thin bool, r *scanResult) {
	changed, found := false, false
	if at.Before(x.b.From) {
		x.b.From = at
		changed = true
	}
	switch {
	case x.b.Owner == nil:
		x.b.Owner, x.thin = owner, thin
		x.ownerGen++
		changed, found = true, true
		r.events = append(r.events, Event{Kind: EventOwnerChanged, Time: at, Binding: x.b})
	case x.thin && !thin && x.b.Owner.Same(owner):
		x.b.Owner, x.thin = owner, false
		x.ownerGen++
		changed = true
	}
	if !changed {
		return
	}
	r.changed = true
	switch {
	case x.id != 0:
		r.ops = append(r.ops, storeOp{kind: opOpen, id: x.id, b: openCopy(x.b)})
	case found:
		h.decide(x, r) // an interval with an owner now: write it unless covered
	}
}

// openCopy returns b as an open interval, for a store record.
func openCopy(b Binding) Binding {
	b.Until = time.Time{}
	return b
}

// addUnseen adds an entry learned from an event to the maps scans and
// covers use (not to entries: the view is what scans see).
func (h *history) addUnseen(e *entry) {
	if e.key.connected() {
		h.conns[e.key.conn()] = e
	} else {
		pk := e.key.port()
		h.unconn[pk] = append(h.unconn[pk], e)
	}
}

// link ties e to the event's socket, creating its record (and evicting
// the oldest at the bound).
func (h *history) link(e *entry, rec *evRecord, sock *Socket, conv bool, r *scanResult) {
	s := h.evs.byCookie[rec.Cookie]
	if s == nil {
		if len(h.evs.byCookie) >= h.evs.max && h.evs.head != nil {
			h.evs.evictions++
			h.evictInto(h.evs.head, rec.Time, r)
		}
		s = &evSock{cookie: rec.Cookie, proto: sock.Proto, netns: sock.NetNS, port: sock.Local.Port(), first: rec.Time}
		h.evs.byCookie[rec.Cookie] = s
		if h.evs.tail == nil {
			h.evs.head, h.evs.tail = s, s
		} else {
			s.prev, h.evs.tail.next, h.evs.tail = h.evs.tail, s, s
		}
	}
	if e.ev != nil {
		h.detach(e)
	}
	e.ev = s
	if conv || s.main != nil {
		s.convs = append(s.convs, e)
	} else {
		s.main = e
	}
	if e.unseen {
		s.nUnseen++
		h.evs.unseen++
		h.evs.withUnseen[s] = struct{}{}
	}
}

// detach unties e from its event socket (which is dropped when nothing
// is left of it).
func (h *history) detach(e *entry) {
	s := e.ev
	if s == nil {
		return
	}
	e.ev = nil
	if e.unseen {
		h.seenOne(s)
	}
	if s.main == e {
		s.main = nil
	} else if i := slices.Index(s.convs, e); i >= 0 {
		s.convs = slices.Delete(s.convs, i, i+1)
	}
	if s.main == nil && len(s.convs) == 0 {
		h.evs.drop(s)
	}
}

// seenOne counts one unseen entry of s less.
func (h *history) seenOne(s *evSock) {
	s.nUnseen--
	h.evs.unseen--
	if s.nUnseen == 0 {
		delete(h.evs.withUnseen, s)
	}
}

// unlinkEvent is remove's part: a removed entry leaves its event socket.
func (h *history) unlinkEvent(e *entry) {
	h.detach(e)
	e.unseen = false
}

// evictInto forgets s (the oldest, to make room, or one whose close
// event was missed). Its bindings that scans see stay: they end when a
// scan no longer sees them. Those only events knew of end at now.
func (h *history) evictInto(s *evSock, now time.Time, r *scanResult) {
	es := s.convs
	if s.main != nil {
		es = append(es, s.main)
	}
	s.main, s.convs = nil, nil
	h.evs.drop(s)
	for _, e := range es {
		unseen := e.unseen
		h.detach(e)
		if unseen {
			h.closeEntry(e, now, r) // unseen: no unbound event
		}
	}
}

// adopt gives a socket a scan sees for the first time the binding an
// event made for it (its exact start, its owner), and reports whether it
// did. A scan that finds another process holding it ends the event's
// interval there instead (the socket was passed on, or is a newer one).
func (h *history) adopt(k sockKey, sock *Socket, o *Observed, gen uint64, now time.Time, r *scanResult) bool {
	if h.evs.unseen == 0 || k.inode == 0 {
		return false
	}
	var x *entry
	if k.connected() {
		if c := h.conns[k.conn()]; c != nil && c.unseen && !c.dead {
			x = c
		}
	} else {
		for _, c := range h.unconn[k.port()] {
			if c.unseen && !c.dead && c.key.local == k.local && c.b.State == sock.State {
				x = c
				break
			}
		}
	}
	if x == nil {
		return false
	}
	own := o.Owner
	if own != nil && !x.viaAccept && !own.Same(x.b.Owner) {
		h.closeEntry(x, now, r)
		return false
	}
	if x.ev != nil {
		h.seenOne(x.ev)
		x.ev.vanished, x.ev.misses = time.Time{}, 0
	}
	x.unseen = false
	x.key = k
	x.seen = gen
	h.entries[k] = x
	h.enqueue(x)
	x.b.Inode, x.b.State, x.b.UID = sock.Inode, sock.State, sock.UID
	if own != nil && !sameOwner(x.b.Owner, own) && (x.viaAccept || x.thin) {
		x.b.Owner, x.thin, x.viaAccept = own, false, false
		x.ownerGen++
		if _, ok := h.pending[x]; ok {
			delete(h.pending, x)
			x.cover = nil
		}
	}
	if x.undecided {
		x.undecided = false
	}
	if x.id != 0 {
		r.ops = append(r.ops, storeOp{kind: opOpen, id: x.id, b: openCopy(x.b)})
	} else if _, ok := h.pending[x]; !ok {
		h.fresh = append(h.fresh, x)
	}
	r.events = append(r.events, Event{Kind: EventBound, Binding: x.b})
	return true
}

// checkUnseen marks the event sockets that a scan at now should have
// seen and did not: started before the snapshot, in a namespace it
// covers, and absent from it. Their close event should follow; if it
// does not within missedCloseGrace, expireUnseen closes them at now.
func (h *history) checkUnseen(snap *Snapshot, now time.Time) {
	t := &h.evs
	if len(t.withUnseen) == 0 {
		return
	}
	clear(t.scanNS)
	clear(t.udpPorts)
	clear(t.tcpConns)
	for i := range snap.Sockets {
		s := &snap.Sockets[i].Socket
		t.scanNS[s.NetNS] = struct{}{}
		switch {
		case s.Proto == ProtoUDP:
			t.udpPorts[portKey{proto: ProtoUDP, port: s.Local.Port(), netns: s.NetNS}] = struct{}{}
		case s.Connected():
			// Orphaned connections (inode 0, FIN-WAIT) live on.
			n := normSocket(*s)
			t.tcpConns[keyOf(&n).conn()] = struct{}{}
		}
	}
	for s := range t.withUnseen {
		if !s.first.Before(now) {
			continue
		}
		if _, ok := t.scanNS[s.netns]; !ok {
			continue // a namespace the scan does not cover
		}
		present := false
		if s.proto == ProtoUDP {
			_, present = t.udpPorts[portKey{proto: ProtoUDP, port: s.port, netns: s.netns}]
		} else if s.main != nil && s.main.key.connected() {
			_, present = t.tcpConns[s.main.key.conn()]
		}
		switch {
		case present:
			s.vanished, s.misses = time.Time{}, 0
		case s.vanished.IsZero():
			s.vanished, s.misses = now, 1
			t.vanished = append(t.vanished, s)
		default:
			s.misses++
		}
	}
}

// expireUnseen closes the event sockets marked vanished whose close
// event has not come within missedCloseGrace and that a second scan
// missed too, at the first scan that missed them.
func (h *history) expireUnseen(now time.Time, r *scanResult) {
	t := &h.evs
	keep := t.vanished[:0]
	for _, s := range t.vanished {
		switch {
		case s.dropped || s.vanished.IsZero():
		case s.misses >= 2 && now.Sub(s.vanished) >= missedCloseGrace:
			t.missedCloses++
			h.evictInto(s, s.vanished, r)
		default:
			keep = append(keep, s)
		}
	}
	clear(t.vanished[len(keep):])
	t.vanished = keep
}

// listenerOf returns the TCP listener that accepted a connection: on its
// local address, else on the wildcard; one a scan sees first.
func (h *history) listenerOf(sock *Socket) *entry {
	var best *entry
	rank := func(c *entry) int {
		r := 0
		if c.b.Local.Addr() == sock.Local.Addr() {
			r += 2
		}
		if !c.unseen {
			r++
		}
		return r
	}
	for _, c := range h.unconn[portKey{proto: ProtoTCP, port: sock.Local.Port(), netns: sock.NetNS}] {
		if c.dead || c.b.State != StateListen || c.b.Owner == nil {
			continue
		}
		la := c.b.Local.Addr()
		if la != sock.Local.Addr() && !wildcardServes(la, sock.Local.Addr()) {
			continue
		}
		if best == nil || rank(c) > rank(best) {
			best = c
		}
	}
	return best
}

// udpCovered reports whether a datagram of owner from sock's local
// address is attributed by a written unconn binding of the same process
// on that address, or on a wildcard while the host owns the address.
func (h *history) udpCovered(sock *Socket, owner *Process) bool {
	local := sock.Local.Addr()
	for _, c := range h.unconn[portKey{proto: ProtoUDP, port: sock.Local.Port(), netns: sock.NetNS}] {
		if c.dead || c.id == 0 || c.b.State != StateUnconn || !c.b.Owner.Same(owner) {
			continue
		}
		la := c.b.Local.Addr()
		if la == local {
			return true
		}
		if wildcardServes(la, local) {
			if _, owned := h.addrs[local]; owned {
				return true
			}
		}
	}
	return false
}
