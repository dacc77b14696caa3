package remote

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/netdumper/netdumper/tracker"
)

// Defaults of MirrorOptions.
const (
	DefaultMinBackoff = 500 * time.Millisecond
	DefaultMaxBackoff = 30 * time.Second
	DefaultRefresh    = time.Minute
)

// MirrorOptions configure a Mirror.
type MirrorOptions struct {
	// MinBackoff and MaxBackoff bound the wait before reconnecting: it
	// doubles from MinBackoff up to MaxBackoff with each failure, with
	// full jitter, and starts over once a stream is up (defaults
	// DefaultMinBackoff, DefaultMaxBackoff).
	MinBackoff, MaxBackoff time.Duration
	// Refresh is how often the whole view is fetched again while
	// streaming, to pick up changes that make no event (socket states);
	// DefaultRefresh when 0, never when negative.
	Refresh time.Duration
	// Logger receives the mirror's logs (nil: the client's logger). A
	// tracker that goes down is reported once, at warning level, and when
	// it is back.
	Logger *slog.Logger
}

// MirrorStatus describes a mirror's connection.
type MirrorStatus struct {
	URL       string
	Host      string    // the tracker's host, once known
	Connected bool      // an event stream is up
	Synced    time.Time // when the view was last fetched whole
	Seq       uint64    // last event applied
	Err       error     // the last failure while not connected
	Resyncs   int       // full re-fetches after a gap
	Reconnect int       // reconnections of the event stream
}

// Mirror keeps a local copy of one tracker's current bindings: it fetches
// /v1/bindings, follows /v1/events, reconnects with backoff when the
// connection breaks, and fetches the view again when events were lost.
type Mirror struct {
	c    *Client
	opts MirrorOptions
	log  *slog.Logger

	mu      sync.Mutex
	host    string
	addrs   []tracker.AddrInterval
	denied  []int32
	scan    time.Time
	seq     uint64
	socks   map[mirrorKey]tracker.Binding
	view    *tracker.View // nil when socks changed since it was built
	synced  bool
	status  MirrorStatus
	down    bool // reported down
	updates chan struct{}
}

type mirrorKey struct {
	proto         tracker.Proto
	local, remote netip.AddrPort
	inode, netns  uint64
}

func keyOfBinding(b *tracker.Binding) mirrorKey {
	return mirrorKey{proto: b.Proto, local: b.Local, remote: b.Remote, inode: b.Inode, netns: b.NetNS}
}

// NewMirror returns a mirror of the tracker c talks to; Run keeps it
// current.
func NewMirror(c *Client, opts MirrorOptions) *Mirror {
	if opts.MinBackoff <= 0 {
		opts.MinBackoff = DefaultMinBackoff
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = DefaultMaxBackoff
	}
	opts.MaxBackoff = max(opts.MaxBackoff, opts.MinBackoff)
	if opts.Refresh == 0 {
		opts.Refresh = DefaultRefresh
	}
	logger := opts.Logger
	if logger == nil {
		logger = c.log
	}
	return &Mirror{c: c, opts: opts, log: logger.With("tracker", c.URL()),
		socks: make(map[mirrorKey]tracker.Binding), updates: make(chan struct{}, 1),
		status: MirrorStatus{URL: c.URL()}}
}

// Client is the mirror's client.
func (m *Mirror) Client() *Client { return m.c }

// Updates is signalled (without blocking, coalesced) after each change of
// the view or status.
func (m *Mirror) Updates() <-chan struct{} { return m.updates }

func (m *Mirror) notify() {
	select {
	case m.updates <- struct{}{}:
	default:
	}
}

// Current returns the mirrored view, or nil before the first fetch. The
// View is shared: do not modify it.
func (m *Mirror) Current() *tracker.View {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.synced {
		return nil
	}
	if m.view == nil {
		bs := make([]tracker.Binding, 0, len(m.socks))
		for _, b := range m.socks {
			bs = append(bs, b)
		}
		slices.SortFunc(bs, compareBindings)
		v := &tracker.View{Time: m.scan, Seq: m.seq, Denied: m.denied}
		v.Host, v.Addrs, v.Bindings = m.host, m.addrs, bs
		m.view = v
	}
	return m.view
}

// compareBindings orders bindings by protocol, local end, remote end,
// inode and namespace.
func compareBindings(a, b tracker.Binding) int {
	la, lb := a.Local.Addr().As16(), b.Local.Addr().As16()
	ra, rb := a.Remote.Addr().As16(), b.Remote.Addr().As16()
	return cmp.Or(
		cmp.Compare(a.Proto, b.Proto),
		bytes.Compare(la[:], lb[:]),
		cmp.Compare(a.Local.Port(), b.Local.Port()),
		bytes.Compare(ra[:], rb[:]),
		cmp.Compare(a.Remote.Port(), b.Remote.Port()),
		cmp.Compare(a.Inode, b.Inode),
		cmp.Compare(a.NetNS, b.NetNS),
	)
}

// Status returns the mirror's connection state.
func (m *Mirror) Status() MirrorStatus {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.status
	s.Host, s.Seq = m.host, m.seq
	return s
}

// install replaces the mirror with a fetched view.
func (m *Mirror) install(v *tracker.View) {
	m.mu.Lock()
	clear(m.socks)
	for _, b := range v.Bindings {
		m.socks[keyOfBinding(&b)] = b
	}
	m.host, m.addrs, m.denied, m.scan, m.seq = v.Host, v.Addrs, v.Denied, v.Time, v.Seq
	m.view, m.synced = nil, true
	m.status.Synced = time.Now()
	m.mu.Unlock()
	m.notify()
}

// apply applies one event.
func (m *Mirror) apply(e *tracker.Event) {
	m.mu.Lock()
	k := keyOfBinding(&e.Binding)
	switch e.Kind {
	case tracker.EventBound, tracker.EventOwnerChanged:
		b := e.Binding
		b.Until = time.Time{}
		m.socks[k] = b
	case tracker.EventUnbound:
		if _, ok := m.socks[k]; ok {
			delete(m.socks, k)
		} else if e.Binding.Inode == 0 && e.Binding.Connected() {
			// A connection that lost its inode (TIME-WAIT) goes under
			// its new key, which no event announced.
			for ok := range m.socks {
				if ok.proto == k.proto && ok.local == k.local && ok.remote == k.remote && ok.netns == k.netns {
					delete(m.socks, ok)
				}
			}
		}
	}
	m.seq = e.Seq
	if e.Time.After(m.scan) {
		m.scan = e.Time
	}
	m.view = nil
	m.mu.Unlock()
}

func (m *Mirror) setStatus(connected bool, err error) {
	m.mu.Lock()
	m.status.Connected = connected
	if err != nil {
		m.status.Err = err
	}
	if connected {
		m.status.Err = nil
	}
	wasDown := m.down
	m.down = !connected && err != nil
	m.mu.Unlock()
	switch {
	case err != nil && !wasDown:
		m.log.Warn("tracker failed; retrying in the background", "url", m.c.URL(), "err", err)
	case err != nil:
		m.log.Debug("tracker still failing", "url", m.c.URL(), "err", err)
	case connected && wasDown:
		m.log.Info("tracker answers again", "url", m.c.URL())
	}
	m.notify()
}

// backoff returns the wait before attempt n (0-based), with full jitter.
func (m *Mirror) backoff(n int) time.Duration {
	d := m.opts.MinBackoff << min(n, 30)
	if d <= 0 || d > m.opts.MaxBackoff {
		d = m.opts.MaxBackoff
	}
	return m.opts.MinBackoff/2 + rand.N(d-m.opts.MinBackoff/2+1)
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// Run keeps the mirror current until ctx ends; it returns nil then.
func (m *Mirror) Run(ctx context.Context) error {
	fails := 0
	needView := true
	resyncs := 0 // in a row, to back off a tracker that keeps asking
	for ctx.Err() == nil {
		if needView {
			v, err := m.c.Bindings(ctx)
			if err != nil {
				if ctx.Err() != nil {
					break
				}
				m.setStatus(false, err)
				if !sleep(ctx, m.backoff(fails)) {
					break
				}
				fails++
				continue
			}
			m.install(v)
			needView = false
		}
		m.mu.Lock()
		since := m.seq
		m.mu.Unlock()
		st, err := m.c.Events(ctx, since)
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			if errors.Is(err, ErrResync) {
				m.noteResync(err)
				needView = true
				resyncs++
				if resyncs > 1 && !sleep(ctx, m.backoff(resyncs-2)) {
					break
				}
				continue
			}
			m.setStatus(false, err)
			if !sleep(ctx, m.backoff(fails)) {
				break
			}
			fails++
			continue
		}
		fails = 0
		m.setStatus(true, nil)
		up := time.Now()
		err = m.follow(ctx, st)
		st.Close()
		if ctx.Err() != nil {
			break
		}
		m.mu.Lock()
		m.status.Reconnect++
		m.mu.Unlock()
		if time.Since(up) > stableStream {
			resyncs = 0 // an isolated resync after a good run: no wait
		}
		if errors.Is(err, ErrResync) {
			// Dropped from the stream (too slow, or the tracker lost
			// events): back off like a refused stream, or a client the
			// tracker keeps dropping would fetch the whole view in a loop.
			m.noteResync(err)
			needView = true
			resyncs++
			if resyncs > 1 && !sleep(ctx, m.backoff(resyncs-2)) {
				break
			}
			continue
		}
		resyncs = 0
		m.setStatus(false, err)
		if !sleep(ctx, m.backoff(0)) {
			break
		}
		fails = 1
	}
	m.mu.Lock()
	m.status.Connected = false
	m.mu.Unlock()
	return nil
}

// stableStream is how long a stream must have lasted for the resyncs
// before it to be forgotten.
const stableStream = time.Minute

func (m *Mirror) noteResync(err error) {
	m.log.Info("resync: fetching the whole view again", "url", m.c.URL(), "reason", err)
	m.mu.Lock()
	m.status.Resyncs++
	m.mu.Unlock()
}

// follow applies the events of st until it fails, fetching the whole
// view every Refresh.
func (m *Mirror) follow(ctx context.Context, st *Stream) error {
	next := time.Now().Add(m.opts.Refresh)
	skip := uint64(0) // events up to skip are in a refreshed view
	for {
		e, hb, err := st.next()
		if err != nil {
			return err
		}
		if !hb && e.Seq > skip {
			m.apply(&e)
			m.notify()
		}
		if m.opts.Refresh > 0 && time.Now().After(next) {
			next = time.Now().Add(m.opts.Refresh)
			v, err := m.c.Bindings(ctx)
			if err != nil {
				m.log.Debug("refresh", "err", err)
				continue
			}
			m.mu.Lock()
			cur := m.seq
			m.mu.Unlock()
			if v.Seq >= cur {
				m.install(v)
				skip = v.Seq
			}
		}
	}
}
