package tracker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults and limits of Options.
const (
	DefaultInterval  = time.Second
	MinInterval      = 100 * time.Millisecond
	DefaultRetention = 24 * time.Hour
	MinRetention     = time.Minute

	// compactEvery is how often Run deletes intervals past retention.
	compactEvery = 10 * time.Minute

	// restartGap is added to the persisted sequence number when a
	// tracker starts on an existing store, so that every client
	// positioned before the restart resyncs even if the last commits of
	// the previous run failed.
	restartGap = 1 << 32

	// maxUnsaved bounds the store changes kept for retry while commits
	// fail (disk full); beyond it they are dropped, with an error logged.
	maxUnsaved = 1 << 20
)

// Options configure a Tracker.
type Options struct {
	// Scanner takes the snapshots (required).
	Scanner Scanner
	// Interval between scans: DefaultInterval when 0, at least
	// MinInterval.
	Interval time.Duration
	// Retention: how long closed intervals stay queryable;
	// DefaultRetention when 0, at least MinRetention.
	Retention time.Duration
	// StateDir holds the history store. Empty: a temporary directory,
	// removed by Close (history then lasts as long as the Tracker).
	StateDir string
	// Host names this host in bindings; default os.Hostname.
	Host string
	// RingSize is how many events EventsSince can return;
	// DefaultRingSize when 0.
	RingSize int
	// LockTimeout is how long New waits for the state file's lock;
	// DefaultLockTimeout when 0.
	LockTimeout time.Duration
	// Logger receives the tracker's logs (nil: discard).
	Logger *slog.Logger
	// Clock gives the time of snapshots that carry none and drives
	// retention; time.Now when nil (tests set it).
	Clock func() time.Time

	// Events, when set, reports socket events as they happen (the eBPF
	// source: OpenEventSource) into the same history as the scans, so
	// that sockets shorter than Interval are recorded and intervals
	// start and end when the kernel says. Run runs it; whoever opened it
	// closes it after Run returns. The owners it names are resolved with
	// the Scanner when that is an OwnerResolver (the SystemScanner is).
	Events EventSource
	// EventQueueSize bounds the events received and not yet applied
	// (DefaultEventQueueSize when 0); beyond it they are dropped and
	// counted (EventSourceStats.QueueDrops).
	EventQueueSize int
	// MaxEventSockets bounds the sockets learned from events and followed
	// until their close event (DefaultMaxEventSockets when 0); beyond it
	// the oldest is forgotten (EventSourceStats.Evictions).
	MaxEventSockets int
}

// View is the host's bindings and addresses at one scan. Views are
// shared: treat them as read-only.
type View struct {
	HostHistory
	// Time is the scan the view reflects (after a restart and before the
	// first scan: the previous run's last scan; zero for a new store).
	Time time.Time
	// Seq is the last event included: subscribe from it to follow on.
	Seq uint64
	// Denied lists processes whose fds the scan could not read.
	Denied []int32
}

// Stats are the tracker's counters, for metrics.
type Stats struct {
	Scans              uint64
	ScanErrors         uint64
	CommitErrors       uint64
	LastScan           time.Time
	LastScanDuration   time.Duration // scanner only
	LastDiffDuration   time.Duration // diff and view
	LastCommitDuration time.Duration
	Bindings           int
	Addrs              int
	Pending            int // connections covered by their listener, not persisted
	Unsaved            int // store changes not committed yet (from events since the last scan, or a commit that failed)
	Events             uint64
	Seq                uint64
	Subscribers        int
	DroppedSubscribers uint64
	// EventSource: the counters of Options.Events (zero, with an empty
	// Name, when the tracker only polls).
	EventSource EventSourceStats
}

// maxClampedStepBack is how far the clock may step back between two
// scans and the scan still be stamped with the last one's time; a larger
// step restarts the open intervals at the new time.
const maxClampedStepBack = time.Second

// Tracker polls a Scanner, turns successive snapshots into events and
// binding intervals, keeps the events in a ring for live clients and the
// intervals in its store for history queries. All methods are safe for
// concurrent use.
type Tracker struct {
	opts    Options
	log     *slog.Logger
	store   *Store
	tempDir string
	hub     *eventHub
	running atomic.Bool

	scanMu     sync.Mutex // serialises scans; guards the fields below
	hist       *history
	seq        uint64
	unsaved    []storeOp
	bindings   []Binding // of the current view, rebuilt on change
	addrs      []AddrInterval
	denied     []int32
	lastErrMsg string
	lastErrLog time.Time
	evSpare    []evRecord // the event buffer handed back to the queue
	evLate     []evRecord // scratch: events after a snapshot

	evq      *eventQueue   // nil without Options.Events
	resolver OwnerResolver // the Scanner's, when it is one
	scope    NetNSScope    // the Scanner's, when it is one
	outside  atomic.Uint64 // events of namespaces the scanner does not cover

	statsMu sync.Mutex
	stats   Stats

	closeOnce sync.Once
	closeErr  error
}

// New opens the state directory (creating it), applies retention,
// reloads the bindings the previous run left open and returns a tracker
// ready to Run.
func New(opts Options) (*Tracker, error) {
	if opts.Scanner == nil {
		return nil, errors.New("tracker: no scanner")
	}
	if opts.Interval == 0 {
		opts.Interval = DefaultInterval
	}
	if opts.Interval < MinInterval {
		return nil, fmt.Errorf("tracker: interval %v is below the minimum %v", opts.Interval, MinInterval)
	}
	if opts.Retention == 0 {
		opts.Retention = DefaultRetention
	}
	if opts.Retention < MinRetention {
		return nil, fmt.Errorf("tracker: retention %v is below the minimum %v", opts.Retention, MinRetention)
	}
	if opts.RingSize == 0 {
		opts.RingSize = DefaultRingSize
	}
	if opts.RingSize < 0 {
		return nil, fmt.Errorf("tracker: negative ring size %d", opts.RingSize)
	}
	if opts.Clock == nil {
		opts.Clock = time.Now
	}
	if opts.EventQueueSize == 0 {
		opts.EventQueueSize = DefaultEventQueueSize
	}
	if opts.MaxEventSockets == 0 {
		opts.MaxEventSockets = DefaultMaxEventSockets
	}
	if opts.EventQueueSize < 0 || opts.MaxEventSockets < 0 {
		return nil, fmt.Errorf("tracker: negative event queue size %d or socket bound %d", opts.EventQueueSize, opts.MaxEventSockets)
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	t := &Tracker{opts: opts, log: logger}
	if opts.Events != nil {
		t.evq = newEventQueue(opts.EventQueueSize)
		t.resolver, _ = opts.Scanner.(OwnerResolver)
		t.scope, _ = opts.Scanner.(NetNSScope)
	}
	dir := opts.StateDir
	if dir == "" {
		tmp, err := os.MkdirTemp("", "netdumper-state-")
		if err != nil {
			return nil, fmt.Errorf("tracker: temporary state: %w", err)
		}
		t.tempDir, dir = tmp, tmp
	}
	st, err := OpenStore(dir, StoreOptions{Host: opts.Host, LockTimeout: opts.LockTimeout, Logger: logger})
	if err != nil {
		t.removeTemp()
		return nil, err
	}
	t.store = st
	if err := t.start(); err != nil {
		st.Close()
		t.removeTemp()
		return nil, err
	}
	return t, nil
}

// start expires old history, compacts the file when worthwhile and
// reloads what the previous run left open.
func (t *Tracker) start() error {
	st := t.store
	now := t.opts.Clock()
	if n, err := st.expire(context.Background(), now.Add(-t.opts.Retention)); err != nil {
		return err
	} else if n > 0 {
		t.log.Info("expired history", "intervals", n, "before", now.Add(-t.opts.Retention))
	}
	if err := st.compactFile(compactMinSize); err != nil {
		return err
	}
	bs, as, err := st.loadOpen()
	if err != nil {
		return err
	}
	t.hist = newHistory(st.Host(), st.nextID)
	t.hist.evs.max = t.opts.MaxEventSockets
	t.seq = st.Seq()
	if !st.LastScan().IsZero() {
		t.hist.recover(bs, as, st.LastScan())
		t.seq += restartGap
		// Record the jump now, so that a crash before the first scan
		// cannot hand out the same numbers twice.
		if err := st.commit(nil, t.seq, t.hist.nextID, st.LastScan()); err != nil {
			return err
		}
		t.log.Info("history reopened", "file", st.Path(), "open_bindings", len(bs),
			"last_scan", st.LastScan(), "seq", t.seq)
	}
	t.bindings = t.hist.bindings()
	t.addrs = t.hist.currentAddrs()
	t.hub = newEventHub(t.opts.RingSize, t.seq, t.newView(st.LastScan()))
	return nil
}

func (t *Tracker) newView(at time.Time) *View {
	return &View{
		HostHistory: HostHistory{Host: t.hist.host, Addrs: t.addrs, Bindings: t.bindings},
		Time:        at,
		Seq:         t.seq,
		Denied:      t.denied,
	}
}

func (t *Tracker) removeTemp() {
	if t.tempDir != "" {
		os.RemoveAll(t.tempDir)
	}
}

// Host is the name bindings carry.
func (t *Tracker) Host() string { return t.store.Host() }

// StatePath is the history store's file.
func (t *Tracker) StatePath() string { return t.store.Path() }

// Run scans every Interval until ctx ends, and applies retention every
// few minutes. With Options.Events it also runs the event source and
// applies its events as they come (see the package documentation); a
// source that fails is logged and the tracker polls on. Scan and store
// errors are logged (and counted in Stats), not returned: the tracker
// keeps going. It returns nil when ctx ends, after applying the events
// already received and committing them, leaving the open bindings open
// in the store for the next run.
func (t *Tracker) Run(ctx context.Context) error {
	if !t.running.CompareAndSwap(false, true) {
		return errors.New("tracker: already running")
	}
	defer t.running.Store(false)
	source := "poll"
	var srcDone chan error
	var ready <-chan struct{}
	if t.opts.Events != nil {
		source = t.opts.Events.Name() + "+poll"
		srcDone = make(chan error, 1)
		ready = t.evq.ready
		go func() { srcDone <- t.opts.Events.Run(ctx, t.receive) }()
	}
	t.log.Info("tracker started", "host", t.Host(), "state", t.StatePath(),
		"interval", t.opts.Interval, "retention", t.opts.Retention, "source", source)
	tick := time.NewTicker(t.opts.Interval)
	defer tick.Stop()
	nextExpire := t.opts.Clock().Add(compactEvery)
	for scan := true; ; {
		if scan {
			if err := t.ScanOnce(ctx); err != nil && ctx.Err() == nil {
				t.logError(err)
			}
			if now := t.opts.Clock(); !now.Before(nextExpire) {
				nextExpire = now.Add(compactEvery)
				if err := t.expire(ctx, now); err != nil && ctx.Err() == nil {
					t.log.Error("retention", "err", err)
				}
			}
		}
		scan = false
		select {
		case <-ctx.Done():
			if srcDone != nil {
				<-srcDone // it delivers what was queued, then returns
				if err := t.flushEvents(); err != nil {
					t.log.Error("committing the last events", "err", err)
				}
			}
			t.log.Info("tracker stopped", "seq", t.Stats().Seq)
			return nil
		case <-tick.C:
			scan = true
		case <-ready:
			t.applyQueued()
		case err := <-srcDone:
			srcDone, ready = nil, nil
			if ctx.Err() == nil {
				t.log.Error("event source stopped; tracking by polling only from now on",
					"source", t.opts.Events.Name(), "err", err)
			}
		}
	}
}

// logError logs err, repeating the same message at most once a minute.
func (t *Tracker) logError(err error) {
	msg := err.Error()
	now := time.Now()
	if msg == t.lastErrMsg && now.Sub(t.lastErrLog) < time.Minute {
		return
	}
	t.lastErrMsg, t.lastErrLog = msg, now
	t.log.Error("scan", "err", err)
}

// expire deletes intervals past retention.
func (t *Tracker) expire(ctx context.Context, now time.Time) error {
	t.scanMu.Lock()
	defer t.scanMu.Unlock()
	n, err := t.store.expire(ctx, now.Add(-t.opts.Retention))
	if n > 0 {
		t.log.Info("expired history", "intervals", n)
	}
	return err
}

// ScanOnce takes one snapshot, diffs it, commits the changes to the store
// and publishes the events. Run calls it; a one-shot command can call it
// directly. A store error is returned after the events are published
// (the changes are retried with the next scan).
func (t *Tracker) ScanOnce(ctx context.Context) error {
	t.scanMu.Lock()
	defer t.scanMu.Unlock()
	start := time.Now()
	snap, err := t.opts.Scanner.Scan(ctx)
	scanDur := time.Since(start)
	if err == nil && snap == nil {
		err = errors.New("scanner returned no snapshot")
	}
	if err != nil {
		t.statsMu.Lock()
		t.stats.ScanErrors++
		t.statsMu.Unlock()
		return fmt.Errorf("scan: %w", err)
	}
	now := snap.Time
	if now.IsZero() {
		now = t.opts.Clock()
	}
	now = now.Round(0).UTC()
	var restart scanResult
	if behind := t.hist.last.Sub(now); behind > maxClampedStepBack {
		// The clock stepped back (NTP set a clock that ran ahead, an RTC
		// kept in local time). Stamping scans with the last one's time
		// would freeze the history until the clock caught up, and flows
		// of that time would find no binding: instead every open
		// interval ends at the last scan, and what this scan sees starts
		// again now.
		t.log.Warn("the system clock stepped back: open intervals end at the last scan, and the sockets seen now start new ones",
			"step", behind.Round(time.Millisecond), "last_scan", t.hist.last, "clock", now)
		restart = t.hist.apply(&Snapshot{Addrs: []netip.Addr{}}, t.hist.last) // no socket, no address
		t.hist.last = now
	} else if behind > 0 {
		now = t.hist.last // a small step back: keep intervals ordered
	}

	diffStart := time.Now()
	var r scanResult
	if t.evq != nil {
		// Events up to the snapshot's time first, so that the snapshot
		// meets the sockets they opened and closed; later ones after it.
		early := t.takeEvents()
		late := t.evLate[:0]
		n := 0
		for _, rec := range early {
			if rec.Time.After(now) {
				late = append(late, rec)
			} else {
				early[n] = rec
				n++
			}
		}
		t.hist.applyEvents(early[:n], &r)
		sr := t.hist.apply(snap, now)
		r.events = append(r.events, sr.events...)
		r.ops = append(r.ops, sr.ops...)
		r.changed = r.changed || sr.changed
		t.hist.applyEvents(late, &r)
		t.hist.expireUnseen(now, &r)
		clear(early)
		clear(late)
		t.evSpare, t.evLate = early[:0], late[:0]
	} else {
		r = t.hist.apply(snap, now)
	}
	// The restart's closings come first; its store operations count even
	// without events (duplicate records found at a reopen are closed there).
	if len(restart.events) > 0 || len(restart.ops) > 0 {
		r.events = append(restart.events, r.events...)
		r.ops = append(restart.ops, r.ops...)
		r.changed = r.changed || restart.changed
	}
	if !slices.Equal(t.denied, snap.Denied) {
		t.noteDenied(snap.Denied)
		r.changed = true
	}
	t.record(&r, now)
	diffDur := time.Since(diffStart)

	commitStart := time.Now()
	cerr := t.store.commit(t.unsaved, t.seq, t.hist.nextID, now)
	if cerr == nil {
		clear(t.unsaved)
		t.unsaved = t.unsaved[:0]
	} else if len(t.unsaved) > maxUnsaved {
		t.log.Error("history store keeps failing: dropping unsaved changes", "changes", len(t.unsaved), "err", cerr)
		t.unsaved = nil
	}
	commitDur := time.Since(commitStart)

	t.hub.publish(r.events, t.newView(now))

	t.statsMu.Lock()
	s := &t.stats
	s.Scans++
	if cerr != nil {
		s.CommitErrors++
	}
	s.LastScan = now
	s.LastScanDuration, s.LastDiffDuration, s.LastCommitDuration = scanDur, diffDur, commitDur
	t.countLocked(len(r.events))
	t.statsMu.Unlock()
	return cerr
}

// record numbers the events of r (those without a time of their own
// happened at now), rebuilds the view when it changed and queues the
// store changes for the next commit. scanMu must be held.
func (t *Tracker) record(r *scanResult, now time.Time) {
	for i := range r.events {
		t.seq++
		r.events[i].Seq = t.seq
		if r.events[i].Time.IsZero() {
			r.events[i].Time = now
		}
	}
	if r.changed {
		t.bindings = t.hist.bindings()
		t.addrs = t.hist.currentAddrs()
	}
	t.unsaved = append(t.unsaved, r.ops...)
}

// countLocked updates the counters of the view and events; statsMu and
// scanMu must be held.
func (t *Tracker) countLocked(events int) {
	s := &t.stats
	s.Bindings, s.Addrs, s.Pending, s.Unsaved = len(t.bindings), len(t.addrs), len(t.hist.pending), len(t.unsaved)
	s.Events += uint64(events)
	ev := &t.hist.evs
	s.EventSource.Applied, s.EventSource.Ignored = ev.applied, ev.ignored
	s.EventSource.MissedCloses, s.EventSource.Evictions = ev.missedCloses, ev.evictions
	s.EventSource.Open = len(ev.byCookie)
}

// takeEvents returns the queued events. scanMu must be held.
func (t *Tracker) takeEvents() []evRecord {
	recs := t.evq.take(t.evSpare)
	t.evSpare = nil
	return recs
}

// receive is the event source's callback: it resolves the owner at
// once, while the process may still be there to read, and queues the
// event for the tracker's goroutine.
func (t *Tracker) receive(ev SockEvent) {
	if t.scope != nil && !t.scope.CoversNetNS(ev.NetNS) {
		t.outside.Add(1)
		return
	}
	rec := evRecord{SockEvent: ev, received: t.opts.Clock()}
	if o := ev.Owner; o != nil && ev.Kind != SockClose {
		if t.resolver != nil {
			rec.owner, rec.thin = t.resolver.ResolveOwner(o)
		} else {
			rec.owner, rec.thin = o.process(), true
		}
	}
	t.evq.push(rec)
}

// applyQueued applies the events received since the last scan or batch.
// Their store changes are committed with the next scan (or when Run
// ends); their events and the view are published now.
func (t *Tracker) applyQueued() {
	t.scanMu.Lock()
	defer t.scanMu.Unlock()
	recs := t.takeEvents()
	var r scanResult
	t.hist.applyEvents(recs, &r)
	t.hist.expireUnseen(t.opts.Clock(), &r)
	clear(recs)
	t.evSpare = recs[:0]
	t.record(&r, t.hist.last)
	if len(r.events) > 0 || r.changed {
		t.hub.publish(r.events, t.newView(t.hist.last))
	}
	t.statsMu.Lock()
	t.countLocked(len(r.events))
	t.statsMu.Unlock()
}

// flushEvents applies the events still queued and commits everything
// not committed yet, when Run ends.
func (t *Tracker) flushEvents() error {
	t.applyQueued()
	t.scanMu.Lock()
	defer t.scanMu.Unlock()
	if len(t.unsaved) == 0 {
		return nil
	}
	if err := t.store.commit(t.unsaved, t.seq, t.hist.nextID, t.hist.last); err != nil {
		return err
	}
	clear(t.unsaved)
	t.unsaved = t.unsaved[:0]
	return nil
}

// noteDenied records and logs the processes the scan could not see.
func (t *Tracker) noteDenied(denied []int32) {
	if len(denied) > 0 && len(t.denied) == 0 {
		sample := denied[:min(len(denied), 10)]
		why := "permission denied reading the fds of some processes (other users', or protected); run as root (CAP_SYS_PTRACE and CAP_DAC_READ_SEARCH) to see them"
		if os.Geteuid() == 0 {
			// Root is refused by a user namespace it does not own, or by a
			// security module: there is nothing to advise.
			why = "permission denied reading the fds of some processes, even as root (a process of a user namespace this one does not own, or one a security module protects)"
		}
		t.log.Warn("cannot see the owners of some sockets: "+why, "processes", len(denied), "pids", sample)
	} else if len(denied) == 0 && len(t.denied) > 0 {
		t.log.Info("all socket owners visible again")
	}
	t.denied = slices.Clone(denied)
}

// Current returns the bindings and addresses of the last scan, with the
// sequence number of the last event they include. The View is shared:
// do not modify it.
func (t *Tracker) Current() *View { return t.hub.current() }

// EventsSince returns the events after seq (Seq > seq), oldest first. It
// returns an error wrapping ErrResync when some of them have left the
// ring (or seq is from another run): the client then starts over from
// Current.
func (t *Tracker) EventsSince(seq uint64) ([]Event, error) { return t.hub.since(seq) }

// Subscribe returns a live stream of the events after seq: first those
// still in the ring (ErrResync when some are gone), then new ones as
// scans produce them. buffer (DefaultSubscriberBuffer when 0) bounds how
// far behind a subscriber may be: one still holding more than buffer
// unread events when a scan's events arrive is dropped with
// ErrSlowSubscriber rather than slowing the tracker; a scan's events are
// always delivered to one that has kept up, however many. Close it when
// done.
func (t *Tracker) Subscribe(seq uint64, buffer int) (*Subscription, error) {
	return t.hub.subscribe(seq, buffer)
}

// History calls fn for every binding interval overlapping [from, to] (see
// Store.History). Connections of a process on a port it listens on are
// not in the history: the listener's interval attributes them.
func (t *Tracker) History(ctx context.Context, from, to time.Time, fn func(Binding) error) error {
	return t.store.History(ctx, from, to, fn)
}

// AddrHistory returns the host's address intervals overlapping [from, to].
func (t *Tracker) AddrHistory(ctx context.Context, from, to time.Time) ([]AddrInterval, error) {
	return t.store.AddrHistory(ctx, from, to)
}

// Export writes the history overlapping [from, to] as a bindings file.
func (t *Tracker) Export(ctx context.Context, w io.Writer, from, to time.Time) error {
	return t.store.Export(ctx, w, from, to)
}

// Stats returns the tracker's counters.
func (t *Tracker) Stats() Stats {
	t.statsMu.Lock()
	s := t.stats
	t.statsMu.Unlock()
	s.Subscribers, s.DroppedSubscribers, s.Seq = t.hub.stats()
	if t.opts.Events != nil {
		src := t.opts.Events.Stats()
		src.Name = t.opts.Events.Name()
		src.QueueDrops = t.evq.drops()
		src.Applied, src.Ignored, src.Open = s.EventSource.Applied, s.EventSource.Ignored+t.outside.Load(), s.EventSource.Open
		src.MissedCloses, src.Evictions = s.EventSource.MissedCloses, s.EventSource.Evictions
		s.EventSource = src
	}
	return s
}

// Close ends the subscriptions and closes the store (removing a temporary
// state directory). Call it after Run has returned.
func (t *Tracker) Close() error {
	t.closeOnce.Do(func() {
		t.hub.close()
		t.scanMu.Lock()
		defer t.scanMu.Unlock()
		t.closeErr = t.store.Close()
		t.removeTemp()
	})
	return t.closeErr
}
