package tracker

import (
	"cmp"
	"context"
	"math"
	"net/netip"
	"slices"
	"time"
)

// DefaultTolerance widens a flow's time window on both sides when it is
// matched against binding intervals: clock skew between exporter and
// host, and the scan interval (a socket is seen up to one interval after
// it appears).
const DefaultTolerance = 5 * time.Second

// MatchKind says how a flow matched a binding, best first.
type MatchKind uint8

// Match kinds.
const (
	MatchNone     MatchKind = iota
	MatchExact              // a connected socket with the flow's 5-tuple
	MatchListener           // a listener (or unconnected UDP socket) on the exact local address and port
	MatchWildcard           // a listener on 0.0.0.0 or :: whose host owned the flow's address then
)

// String returns "none", "5-tuple", "listener" or "wildcard".
func (k MatchKind) String() string {
	switch k {
	case MatchNone:
		return "none"
	case MatchExact:
		return "5-tuple"
	case MatchListener:
		return "listener"
	case MatchWildcard:
		return "wildcard"
	}
	return "match(?)"
}

// Side says which end of a flow matched.
type Side uint8

// Sides of a flow.
const (
	SideSource      Side = 1 // the flow's source is the local end
	SideDestination Side = 2 // the flow's destination is the local end
)

// String returns "src" or "dst".
func (s Side) String() string {
	switch s {
	case SideSource:
		return "src"
	case SideDestination:
		return "dst"
	}
	return ""
}

// FlowKey is what a flow record says about its endpoints.
type FlowKey struct {
	Proto    Proto
	Src, Dst netip.AddrPort
}

// Match is the answer of Index.Lookup. Binding points into the index
// (do not modify it); it is nil when Kind is MatchNone.
type Match struct {
	Binding *Binding
	Kind    MatchKind
	Side    Side
	// Pos is the binding's position in the index, 0 <= Pos < Len(); callers
	// can keep per-binding data in a slice of Len() entries.
	Pos int32
}

// OK reports whether something matched.
func (m Match) OK() bool { return m.Kind != MatchNone }

// IndexOptions configure an Index.
type IndexOptions struct {
	// Tolerance widens flow windows: DefaultTolerance when 0, none when
	// negative.
	Tolerance time.Duration
}

// Index answers which process a flow belongs to, from the binding and
// address intervals of any number of hosts. It is immutable once built
// and safe for concurrent Lookups, which do not allocate.
type Index struct {
	tol      int64
	bindings []Binding
	hosts    []string
	exact    map[key5]span
	local    map[key3]span
	wild     map[key2]span
	addrs    map[[16]byte]span
	// addrList holds the addresses of addrs when there are few (a host
	// or a handful; useList is then set): comparing them beats hashing.
	addrList  []addrSpan
	useList   bool
	cands     []cand
	addrCands []addrCand
	// ports has a bit set for every local port some TCP (ports[0]) or UDP
	// (ports[1]) binding uses: most lookups of a flow's remote side end
	// here without touching anything else.
	ports [2][65536 / 64]uint64
	// byPort lists, per protocol row and local port, the keys bound on
	// that port (keys[off:off+n], exact ones first, then listeners, then
	// the wildcard): a lookup compares a few keys instead of hashing
	// addresses. Ports with more than defaultScanMax keys (a busy server
	// port) are looked up in the maps instead, which hold only those.
	byPort [2][]portSpan
	keys   []boundKey
}

// defaultScanMax is the longest list of keys a lookup scans on one port.
const defaultScanMax = 16

// maxAddrList is the most addresses kept in Index.addrList.
const maxAddrList = 16

type (
	portSpan struct{ off, n uint32 }
	addrSpan struct {
		addr [16]byte
		sp   span
	}
	boundKey struct {
		local, remote [16]byte
		rport         uint16
		kind          MatchKind
		sp            span
	}
)

type (
	key5 struct {
		local, remote [16]byte
		lport, rport  uint16
		proto         Proto
	}
	key3 struct {
		addr  [16]byte
		port  uint16
		proto Proto
	}
	key2 struct {
		port  uint16
		proto Proto
	}
	span struct{ off, n uint32 }
	cand struct {
		from, until int64 // Unix ns; open ends are MinInt64 / MaxInt64
		idx         int32 // into bindings
		host        int32
		v4only      bool // wildcard 0.0.0.0: serves IPv4 only
	}
	addrCand struct {
		from, until int64
		host        int32
	}
)

// IndexBuilder collects intervals for an Index.
type IndexBuilder struct {
	hostIDs  map[string]int32
	hosts    []string
	bindings []Binding
	addrs    map[[16]byte][]addrCand
}

// NewIndexBuilder returns an empty builder.
func NewIndexBuilder() *IndexBuilder {
	return &IndexBuilder{hostIDs: make(map[string]int32), addrs: make(map[[16]byte][]addrCand)}
}

func (ib *IndexBuilder) host(name string) int32 {
	id, ok := ib.hostIDs[name]
	if !ok {
		id = int32(len(ib.hosts))
		ib.hostIDs[name] = id
		ib.hosts = append(ib.hosts, name)
	}
	return id
}

// AddBinding adds a binding interval of host b.Host. Bindings without an
// owner are ignored: they name nobody.
func (ib *IndexBuilder) AddBinding(b Binding) {
	if b.Owner == nil || !b.Local.Addr().IsValid() {
		return
	}
	b.Socket = normSocket(b.Socket)
	ib.host(b.Host)
	ib.bindings = append(ib.bindings, b)
}

// AddAddr adds an interval during which host owned an address.
func (ib *IndexBuilder) AddAddr(host string, a AddrInterval) {
	if !a.Addr.IsValid() {
		return
	}
	k := NormalizeAddr(a.Addr).As16()
	from, until := nanoRange(a.From, a.Until)
	ib.addrs[k] = append(ib.addrs[k], addrCand{from: from, until: until, host: ib.host(host)})
}

// AddHost adds a host's addresses and bindings (their Host is set to
// h.Host).
func (ib *IndexBuilder) AddHost(h HostHistory) {
	ib.host(h.Host)
	for _, a := range h.Addrs {
		ib.AddAddr(h.Host, a)
	}
	for _, b := range h.Bindings {
		b.Host = h.Host
		ib.AddBinding(b)
	}
}

// HistorySource is one host's history: a Tracker or a Store.
type HistorySource interface {
	Host() string
	History(ctx context.Context, from, to time.Time, fn func(Binding) error) error
	AddrHistory(ctx context.Context, from, to time.Time) ([]AddrInterval, error)
}

// AddHistory adds the intervals of src that overlap [from, to]. To index
// flows seen in a window, widen it by the tolerance on both sides.
func (ib *IndexBuilder) AddHistory(ctx context.Context, src HistorySource, from, to time.Time) error {
	host := src.Host()
	as, err := src.AddrHistory(ctx, from, to)
	if err != nil {
		return err
	}
	ib.host(host)
	for _, a := range as {
		ib.AddAddr(host, a)
	}
	return src.History(ctx, from, to, func(b Binding) error {
		b.Host = host
		ib.AddBinding(b)
		return nil
	})
}

// nanoRange converts an interval to Unix nanoseconds with open ends.
func nanoRange(from, until time.Time) (int64, int64) {
	f, u := int64(math.MinInt64), int64(math.MaxInt64)
	if !from.IsZero() {
		f = from.UnixNano()
	}
	if !until.IsZero() {
		u = until.UnixNano()
	}
	return f, u
}

// Build returns the index. The builder can be reused afterwards.
func (ib *IndexBuilder) Build(opts IndexOptions) *Index {
	return ib.build(opts, defaultScanMax)
}

// build builds the index, scanning lists of at most scanMax keys per port
// (0: always the maps; tests compare both ways).
func (ib *IndexBuilder) build(opts IndexOptions, scanMax int) *Index {
	tol := opts.Tolerance
	if tol == 0 {
		tol = DefaultTolerance
	}
	if tol < 0 {
		tol = 0
	}
	ix := &Index{
		tol:      int64(tol),
		bindings: append([]Binding(nil), ib.bindings...),
		hosts:    append([]string(nil), ib.hosts...),
		exact:    make(map[key5]span),
		local:    make(map[key3]span),
		wild:     make(map[key2]span),
		addrs:    make(map[[16]byte]span, len(ib.addrs)),
	}
	exact := make(map[key5][]cand)
	local := make(map[key3][]cand)
	wild := make(map[key2][]cand)
	for i := range ix.bindings {
		b := &ix.bindings[i]
		from, until := nanoRange(b.From, b.Until)
		c := cand{from: from, until: until, idx: int32(i), host: ib.hostIDs[b.Host]}
		la := b.Local.Addr()
		if pi := portIndex(b.Proto); pi >= 0 {
			ix.ports[pi][b.Local.Port()/64] |= 1 << (b.Local.Port() % 64)
		}
		switch {
		case b.Connected():
			k := key5{local: la.As16(), remote: b.Remote.Addr().As16(), lport: b.Local.Port(), rport: b.Remote.Port(), proto: b.Proto}
			exact[k] = append(exact[k], c)
		case la.IsUnspecified():
			c.v4only = la.Is4()
			k := key2{port: b.Local.Port(), proto: b.Proto}
			wild[k] = append(wild[k], c)
		default:
			k := key3{addr: la.As16(), port: b.Local.Port(), proto: b.Proto}
			local[k] = append(local[k], c)
		}
	}
	ix.cands = make([]cand, 0, len(ix.bindings))
	flatten(ix, exact, ix.exact)
	flatten(ix, local, ix.local)
	flatten(ix, wild, ix.wild)
	ix.buildByPort(scanMax)
	for k, l := range ib.addrs {
		ix.addrs[k] = span{off: uint32(len(ix.addrCands)), n: uint32(len(l))}
		ix.addrCands = append(ix.addrCands, l...)
	}
	if ix.useList = scanMax > 0 && len(ix.addrs) <= maxAddrList; ix.useList {
		for k, sp := range ix.addrs {
			ix.addrList = append(ix.addrList, addrSpan{k, sp})
		}
	}
	return ix
}

// buildByPort fills byPort and keys from the maps, and leaves in the
// maps only the keys of ports with more than scanMax of them.
func (ix *Index) buildByPort(scanMax int) {
	if scanMax <= 0 || len(ix.bindings) == 0 {
		return
	}
	type pk struct {
		row  int
		port uint16
	}
	lists := make(map[pk][]boundKey)
	for k, sp := range ix.exact {
		if pi := portIndex(k.proto); pi >= 0 {
			p := pk{pi, k.lport}
			lists[p] = append(lists[p], boundKey{local: k.local, remote: k.remote, rport: k.rport, kind: MatchExact, sp: sp})
		}
	}
	for k, sp := range ix.local {
		if pi := portIndex(k.proto); pi >= 0 {
			p := pk{pi, k.port}
			lists[p] = append(lists[p], boundKey{local: k.addr, kind: MatchListener, sp: sp})
		}
	}
	for k, sp := range ix.wild {
		if pi := portIndex(k.proto); pi >= 0 {
			p := pk{pi, k.port}
			lists[p] = append(lists[p], boundKey{kind: MatchWildcard, sp: sp})
		}
	}
	ix.byPort = [2][]portSpan{make([]portSpan, 65536), make([]portSpan, 65536)}
	ix.keys = make([]boundKey, 0, len(ix.exact)+len(ix.local)+len(ix.wild))
	for p, l := range lists {
		if len(l) > scanMax {
			continue // stays in the maps; n == 0 sends lookups there
		}
		// Exact keys first, then listeners, then the wildcard: the order
		// in which side tries them.
		slices.SortFunc(l, func(a, b boundKey) int { return cmp.Compare(a.kind, b.kind) })
		ix.byPort[p.row][p.port] = portSpan{off: uint32(len(ix.keys)), n: uint32(len(l))}
		ix.keys = append(ix.keys, l...)
		for _, k := range l {
			switch k.kind {
			case MatchExact:
				delete(ix.exact, key5{local: k.local, remote: k.remote, lport: p.port, rport: k.rport, proto: rowProto(p.row)})
			case MatchListener:
				delete(ix.local, key3{addr: k.local, port: p.port, proto: rowProto(p.row)})
			default:
				delete(ix.wild, key2{port: p.port, proto: rowProto(p.row)})
			}
		}
	}
}

// rowProto is the protocol of a row of Index.ports and byPort.
func rowProto(row int) Proto {
	if row == 0 {
		return ProtoTCP
	}
	return ProtoUDP
}

func flatten[K comparable](ix *Index, from map[K][]cand, to map[K]span) {
	for k, l := range from {
		to[k] = span{off: uint32(len(ix.cands)), n: uint32(len(l))}
		ix.cands = append(ix.cands, l...)
	}
}

// NewIndex builds an index of hosts.
func NewIndex(opts IndexOptions, hosts ...HostHistory) *Index {
	ib := NewIndexBuilder()
	for _, h := range hosts {
		ib.AddHost(h)
	}
	return ib.Build(opts)
}

// Len is the number of bindings indexed.
func (ix *Index) Len() int { return len(ix.bindings) }

// Hosts are the hosts indexed.
func (ix *Index) Hosts() []string { return ix.hosts }

// window holds a flow's times in Unix nanoseconds: [f, l] as seen, [lo,
// hi] widened by the tolerance.
type window struct{ f, l, lo, hi int64 }

// window returns [first, last] (zero: open, swapped when reversed) and its
// widening by the tolerance.
func (ix *Index) window(first, last time.Time) window {
	f, l := int64(math.MinInt64), int64(math.MaxInt64)
	if !first.IsZero() {
		f = first.UnixNano()
	}
	if !last.IsZero() {
		l = last.UnixNano()
	}
	return ix.windowNano(f, l)
}

// windowNano is window for times in Unix nanoseconds.
func (ix *Index) windowNano(f, l int64) window {
	w := window{f: f, l: l}
	if w.l < w.f {
		w.f, w.l = w.l, w.f
	}
	w.lo, w.hi = satAdd(w.f, -ix.tol), satAdd(w.l, ix.tol)
	return w
}

func satAdd(a, b int64) int64 {
	s := a + b
	if (b > 0 && s < a) || (b < 0 && s > a) {
		if b > 0 {
			return math.MaxInt64
		}
		return math.MinInt64
	}
	return s
}

func satSub(a, b int64) int64 {
	d := a - b
	if (b < 0 && d < a) || (b > 0 && d > a) {
		if b < 0 {
			return math.MaxInt64
		}
		return math.MinInt64
	}
	return d
}

// Lookup finds the binding a flow belongs to, trying the flow's source
// as the local end, then its destination, and on each side: a connected
// socket with the exact 5-tuple, then a listener on the exact local
// address and port, then a wildcard listener (0.0.0.0 for IPv4, :: for
// both) of a host that owned the local address. Intervals must overlap
// [first, last] widened by the tolerance; among several, the one that
// overlaps the flow most (or is closest to it) wins, then the latest. A
// zero first or last leaves that side open. Addresses are normalised
// (IPv4-mapped IPv6 is IPv4).
func (ix *Index) Lookup(k FlowKey, first, last time.Time) Match {
	if k.Proto != ProtoTCP && k.Proto != ProtoUDP {
		return Match{}
	}
	w := ix.window(first, last)
	return ix.lookup(k, &w)
}

// LookupMilli is Lookup with the flow's times in Unix milliseconds, as
// flow records carry them; both ends are closed. Enrichment calls it for
// every flow, without time.Time conversions.
func (ix *Index) LookupMilli(k FlowKey, firstMs, lastMs int64) Match {
	if k.Proto != ProtoTCP && k.Proto != ProtoUDP {
		return Match{}
	}
	w := ix.windowNano(milliToNano(firstMs), milliToNano(lastMs))
	return ix.lookup(k, &w)
}

func (ix *Index) lookup(k FlowKey, w *window) Match {
	src := netip.AddrPortFrom(k.Src.Addr().Unmap(), k.Src.Port())
	dst := netip.AddrPortFrom(k.Dst.Addr().Unmap(), k.Dst.Port())
	if m := ix.side(k.Proto, src, dst, w); m.Kind != MatchNone {
		m.Side = SideSource
		return m
	}
	if m := ix.side(k.Proto, dst, src, w); m.Kind != MatchNone {
		m.Side = SideDestination
		return m
	}
	return Match{}
}

// milliToNano converts Unix milliseconds to nanoseconds, saturating.
func milliToNano(ms int64) int64 {
	switch {
	case ms > math.MaxInt64/1_000_000:
		return math.MaxInt64
	case ms < math.MinInt64/1_000_000:
		return math.MinInt64
	}
	return ms * 1_000_000
}

// portIndex returns the row of Index.ports for proto, or -1.
func portIndex(p Proto) int {
	switch p {
	case ProtoTCP:
		return 0
	case ProtoUDP:
		return 1
	}
	return -1
}

func (ix *Index) side(proto Proto, local, remote netip.AddrPort, w *window) Match {
	la := local.Addr()
	if !la.IsValid() {
		return Match{}
	}
	pi, lp := portIndex(proto), local.Port()
	if pi < 0 || ix.ports[pi][lp/64]&(1<<(lp%64)) == 0 {
		return Match{}
	}
	la16 := la.As16()
	if ix.byPort[pi] != nil {
		if ps := ix.byPort[pi][lp]; ps.n > 0 {
			return ix.scanPort(ix.keys[ps.off:ps.off+ps.n], la16, remote, w, la.Is4())
		}
	}
	if remote.Addr().IsValid() {
		k := key5{local: la16, remote: remote.Addr().As16(), lport: local.Port(), rport: remote.Port(), proto: proto}
		if sp, ok := ix.exact[k]; ok {
			if i := ix.best(sp, w, false, false, la16); i >= 0 {
				return Match{Binding: &ix.bindings[i], Kind: MatchExact, Pos: i}
			}
		}
	}
	if sp, ok := ix.local[key3{addr: la16, port: local.Port(), proto: proto}]; ok {
		if i := ix.best(sp, w, false, false, la16); i >= 0 {
			return Match{Binding: &ix.bindings[i], Kind: MatchListener, Pos: i}
		}
	}
	if sp, ok := ix.wild[key2{port: local.Port(), proto: proto}]; ok {
		if i := ix.best(sp, w, true, la.Is4(), la16); i >= 0 {
			return Match{Binding: &ix.bindings[i], Kind: MatchWildcard, Pos: i}
		}
	}
	return Match{}
}

// scanPort is side for a port whose keys are listed: the same tries in
// the same order, by comparing keys.
func (ix *Index) scanPort(keys []boundKey, la16 [16]byte, remote netip.AddrPort, w *window, is4 bool) Match {
	var ra16 [16]byte
	hasRemote := remote.Addr().IsValid()
	if hasRemote {
		ra16 = remote.Addr().As16()
	}
	rp := remote.Port()
	for i := range keys {
		k := &keys[i]
		var ok bool
		switch k.kind {
		case MatchExact:
			ok = hasRemote && k.local == la16 && k.remote == ra16 && k.rport == rp
		case MatchListener:
			ok = k.local == la16
		default:
			ok = true
		}
		if !ok {
			continue
		}
		if b := ix.best(k.sp, w, k.kind == MatchWildcard, is4, la16); b >= 0 {
			return Match{Binding: &ix.bindings[b], Kind: k.kind, Pos: b}
		}
	}
	return Match{}
}

// best returns the binding index of the best candidate of sp for w, or
// -1. Wildcard candidates must serve the address family and their host
// must have owned the address.
func (ix *Index) best(sp span, w *window, wild, is4 bool, addr [16]byte) int32 {
	best := int32(-1)
	var bestScore, bestFrom int64
	for _, c := range ix.cands[sp.off : sp.off+sp.n] {
		if c.from > w.hi || c.until <= w.lo {
			continue
		}
		if wild && ((c.v4only && !is4) || !ix.owned(c.host, addr, w)) {
			continue
		}
		// Overlap of [from, until) with [f, l]; negative: the gap.
		score := satSub(min(c.until, w.l), max(c.from, w.f))
		if best < 0 || score > bestScore || (score == bestScore && c.from > bestFrom) {
			best, bestScore, bestFrom = c.idx, score, c.from
		}
	}
	return best
}

// addrSpan returns the intervals of addr.
func (ix *Index) addrSpan(addr [16]byte) (span, bool) {
	if ix.useList {
		for i := range ix.addrList {
			if ix.addrList[i].addr == addr {
				return ix.addrList[i].sp, true
			}
		}
		return span{}, false
	}
	sp, ok := ix.addrs[addr]
	return sp, ok
}

// owned reports whether host owned addr during the widened window.
func (ix *Index) owned(host int32, addr [16]byte, w *window) bool {
	sp, ok := ix.addrSpan(addr)
	if !ok {
		return false
	}
	for _, a := range ix.addrCands[sp.off : sp.off+sp.n] {
		if a.host == host && a.from <= w.hi && a.until > w.lo {
			return true
		}
	}
	return false
}

// Owner returns the host that owned addr at some moment of [first, last]
// (widened by the tolerance), and whether any did. Enrichment uses it to
// tell which end of an unmatched flow is local.
func (ix *Index) Owner(addr netip.Addr, first, last time.Time) (string, bool) {
	w := ix.window(first, last)
	return ix.owner(addr, &w)
}

// OwnerMilli is Owner with times in Unix milliseconds (both ends closed).
func (ix *Index) OwnerMilli(addr netip.Addr, firstMs, lastMs int64) (string, bool) {
	w := ix.windowNano(milliToNano(firstMs), milliToNano(lastMs))
	return ix.owner(addr, &w)
}

func (ix *Index) owner(addr netip.Addr, w *window) (string, bool) {
	sp, ok := ix.addrSpan(addr.Unmap().As16())
	if !ok {
		return "", false
	}
	for _, a := range ix.addrCands[sp.off : sp.off+sp.n] {
		if a.from <= w.hi && a.until > w.lo {
			return ix.hosts[a.host], true
		}
	}
	return "", false
}
