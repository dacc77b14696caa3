package tracker

import (
	"context"
	"errors"
	"fmt"
	"sync"
)

// DefaultRingSize is how many events the tracker keeps for EventsSince.
const DefaultRingSize = 1 << 16

// DefaultSubscriberBuffer is a subscription's queue length when
// Subscribe is given 0.
const DefaultSubscriberBuffer = 4096

// Errors of the event stream.
var (
	// ErrResync means the events after the requested sequence number are
	// no longer (or not yet) available: the client must fetch the current
	// bindings (Tracker.Current) and continue from the View's Seq.
	ErrResync = errors.New("events lost: resync from the current bindings")
	// ErrSlowSubscriber ends a subscription whose queue overflowed. It
	// wraps ErrResync.
	ErrSlowSubscriber = fmt.Errorf("subscriber too slow, its queue overflowed: %w", ErrResync)
	// ErrClosed ends a subscription closed by its owner or by the tracker.
	ErrClosed = errors.New("subscription closed")
)

// eventRing keeps the last events; last is the newest sequence number
// issued, kept even when the ring is empty (after a restart).
type eventRing struct {
	buf  []Event
	head int // index of the oldest event
	n    int
	last uint64
}

func newEventRing(size int, last uint64) *eventRing {
	return &eventRing{buf: make([]Event, size), last: last}
}

// push appends e (whose Seq is last+1), evicting the oldest when full.
func (r *eventRing) push(e Event) {
	r.last = e.Seq
	if len(r.buf) == 0 {
		return
	}
	if r.n < len(r.buf) {
		r.buf[(r.head+r.n)%len(r.buf)] = e
		r.n++
		return
	}
	r.buf[r.head] = e
	r.head = (r.head + 1) % len(r.buf)
}

// since returns copies of the events after seq, or ErrResync.
func (r *eventRing) since(seq uint64) ([]Event, error) {
	first := r.last + 1 - uint64(r.n) // oldest available
	if seq > r.last {
		// A client of an earlier history (its state was reset) asks for
		// events this one has not had: nothing was lost, but what the
		// client holds is not this tracker's.
		return nil, fmt.Errorf("events after %d, but the last event is %d (the tracker started a new history since): %w", seq, r.last, ErrResync)
	}
	if seq+1 < first {
		return nil, fmt.Errorf("events after %d (have %d to %d): %w", seq, first, r.last, ErrResync)
	}
	k := int(seq + 1 - first) // events to skip
	out := make([]Event, 0, r.n-k)
	for i := k; i < r.n; i++ {
		out = append(out, r.buf[(r.head+i)%len(r.buf)])
	}
	return out, nil
}

// eventHub holds the ring, the subscriptions and the current view under
// one lock, so that a View's Seq and the ring always agree.
type eventHub struct {
	mu      sync.Mutex
	ring    *eventRing
	subs    map[*Subscription]struct{}
	view    *View
	dropped uint64
	closed  bool
}

func newEventHub(ringSize int, last uint64, view *View) *eventHub {
	return &eventHub{ring: newEventRing(ringSize, last), subs: make(map[*Subscription]struct{}), view: view}
}

// publish appends events, hands them to every subscriber (dropping those
// whose queue is full) and installs the view that includes them.
func (h *eventHub) publish(events []Event, view *View) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, e := range events {
		h.ring.push(e)
	}
	if view != nil {
		h.view = view
	}
	if len(events) == 0 {
		return
	}
	for s := range h.subs {
		if !s.offer(events) {
			delete(h.subs, s)
			h.dropped++
		}
	}
}

// current returns the view.
func (h *eventHub) current() *View {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.view
}

// since returns the events after seq.
func (h *eventHub) since(seq uint64) ([]Event, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.ring.since(seq)
}

// subscribe registers a subscription that first yields the ring's events
// after seq.
func (h *eventHub) subscribe(seq uint64, buffer int) (*Subscription, error) {
	if buffer <= 0 {
		buffer = DefaultSubscriberBuffer
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil, ErrClosed
	}
	backlog, err := h.ring.since(seq)
	if err != nil {
		return nil, err
	}
	s := &Subscription{hub: h, backlog: backlog, max: buffer, wake: make(chan struct{}, 1)}
	h.subs[s] = struct{}{}
	return s, nil
}

// unsubscribe removes s.
func (h *eventHub) unsubscribe(s *Subscription) {
	h.mu.Lock()
	delete(h.subs, s)
	h.mu.Unlock()
}

// close ends every subscription and refuses new ones.
func (h *eventHub) close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closed = true
	for s := range h.subs {
		s.end(ErrClosed)
		delete(h.subs, s)
	}
}

// stats returns the subscriber count and how many were dropped.
func (h *eventHub) stats() (subs int, dropped uint64, last uint64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.subs), h.dropped, h.ring.last
}

// Subscription is a live stream of events. Its queue is bounded: when the
// reader falls behind by more than the queue, the tracker drops it (Next
// returns ErrSlowSubscriber) instead of waiting, so a slow reader never
// slows the tracker or other readers. Next and NextBatch are for one
// reader goroutine; Close may be called from any goroutine.
type Subscription struct {
	hub *eventHub

	mu      sync.Mutex
	backlog []Event // events from the ring at subscription time
	queue   []Event // live events from head on; grows up to max
	head    int
	max     int
	err     error
	wake    chan struct{}
}

// offer queues events; it reports false (and ends the subscription) when
// the reader is more than max events behind: the bound is on what is still
// unread when a scan's events arrive, so that a reader that keeps up gets
// every batch however large (a busy host's scan can bring thousands at
// once), and the queue holds at most max events plus one batch. Called
// with the hub locked.
func (s *Subscription) offer(events []Event) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return false
	}
	if len(s.queue)-s.head > s.max {
		s.endLocked(ErrSlowSubscriber)
		return false
	}
	if s.head > 0 && len(s.queue)+len(events) > cap(s.queue) {
		// Reuse the consumed front before growing.
		n := copy(s.queue, s.queue[s.head:])
		clear(s.queue[n:])
		s.queue, s.head = s.queue[:n], 0
	}
	s.queue = append(s.queue, events...)
	s.signal()
	return true
}

// pop removes the oldest queued event; the caller holds mu.
func (s *Subscription) pop() (Event, bool) {
	if len(s.backlog) > 0 {
		e := s.backlog[0]
		s.backlog = s.backlog[1:]
		return e, true
	}
	if s.head == len(s.queue) {
		return Event{}, false
	}
	e := s.queue[s.head]
	s.queue[s.head] = Event{}
	s.head++
	if s.head == len(s.queue) {
		s.queue, s.head = s.queue[:0], 0
	}
	return e, true
}

func (s *Subscription) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// end stops the subscription with err.
func (s *Subscription) end(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.endLocked(err)
}

func (s *Subscription) endLocked(err error) {
	if s.err != nil {
		return
	}
	s.err = err
	s.backlog, s.queue, s.head = nil, nil, 0
	s.signal()
}

// Next returns the next event, waiting for one. It returns
// ErrSlowSubscriber (wrapping ErrResync) when the subscription was
// dropped for falling behind, ErrClosed after Close or when the tracker
// closes, or ctx's error.
func (s *Subscription) Next(ctx context.Context) (Event, error) {
	for {
		s.mu.Lock()
		if e, ok := s.pop(); ok {
			s.mu.Unlock()
			return e, nil
		}
		err := s.err
		s.mu.Unlock()
		if err != nil {
			return Event{}, err
		}
		select {
		case <-s.wake:
		case <-ctx.Done():
			return Event{}, ctx.Err()
		}
	}
}

// NextBatch appends to dst every event available now, waiting until
// there is at least one; errors are those of Next. A server can write
// the batch and flush once.
func (s *Subscription) NextBatch(ctx context.Context, dst []Event) ([]Event, error) {
	e, err := s.Next(ctx)
	if err != nil {
		return dst, err
	}
	dst = append(dst, e)
	s.mu.Lock()
	defer s.mu.Unlock()
	for {
		e, ok := s.pop()
		if !ok {
			return dst, nil
		}
		dst = append(dst, e)
	}
}

// Close ends the subscription; Next then returns ErrClosed.
func (s *Subscription) Close() {
	s.hub.unsubscribe(s)
	s.end(ErrClosed)
}
