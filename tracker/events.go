package tracker

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// Event source modes (netdumper serve --source): what OpenEventSource
// opens besides the scanner.
const (
	// EventsAuto opens the eBPF source when this host can run it, and
	// otherwise says why, once, and polls only.
	EventsAuto = "auto"
	// EventsEBPF opens the eBPF source or fails.
	EventsEBPF = "ebpf"
	// EventsPoll opens nothing: the tracker only polls.
	EventsPoll = "poll"
)

// EventSource reports socket events as they happen (the eBPF source), so
// that the tracker learns of sockets that live shorter than a scan
// interval and of exact start and end times. See the package
// documentation ("Event sources") for how they meet the scans.
type EventSource interface {
	// Name names the source in logs and stats ("ebpf").
	Name() string
	// Run delivers the events, in order, from one goroutine, until ctx
	// ends (it then returns ctx.Err()) or the source fails. fn must be
	// quick.
	Run(ctx context.Context, fn func(SockEvent)) error
	// Stats returns the source's own counters (the Source-side fields of
	// EventSourceStats).
	Stats() EventSourceStats
	// Close releases the source. Whoever opened it closes it, after the
	// tracker's Run has returned.
	Close() error
}

// SockEventKind says what happened to a socket.
type SockEventKind uint8

// Socket event kinds.
const (
	// SockBind: bind(2). For UDP the socket serves every peer on its
	// address (an unconn binding); TCP binds are followed by a listen or
	// a connect, which is what the tracker records.
	SockBind SockEventKind = iota + 1
	// SockListen: listen(2) on a TCP socket.
	SockListen
	// SockConnect: an active TCP open finished (State established), or
	// failed (State close); Time is when the SYN was sent.
	SockConnect
	// SockAccept: a passive TCP open finished on a listener; Owner is
	// the process that called listen(2) (Inherited).
	SockAccept
	// SockDatagram: the first UDP datagram of a socket to a peer; Local
	// is the datagram's source address.
	SockDatagram
	// SockClose: a socket reported before is gone.
	SockClose
)

var sockEventNames = [...]string{"", "bind", "listen", "connect", "accept", "datagram", "close"}

// String returns "bind", "listen", "connect", "accept", "datagram" or
// "close".
func (k SockEventKind) String() string {
	if k != 0 && int(k) < len(sockEventNames) {
		return sockEventNames[k]
	}
	return fmt.Sprintf("sockevent(%d)", uint8(k))
}

// SockEvent is one socket event of an EventSource.
type SockEvent struct {
	Kind SockEventKind
	// Time is when it happened (wall clock).
	Time time.Time
	// Socket: protocol, addresses (normalised or not: the tracker
	// normalises), State (the kernel's number; a connected UDP socket is
	// StateEstablished), NetNS (0: the tracker's own). Inode is 0.
	Socket
	// Cookie identifies the kernel socket for its whole life; it ties a
	// SockClose to the earlier events.
	Cookie uint64
	// Owner is nil when the source does not know the socket's process
	// (a socket older than the source).
	Owner *EventOwner
	// Inherited: Owner is the listener's, not necessarily the process
	// that accepted (SockAccept).
	Inherited bool
}

// EventOwner is the process an event names, as the kernel saw it.
type EventOwner struct {
	PID int32 // process id (thread-group id)
	// StartTicks is the process start in clock ticks after boot, field 22
	// of /proc/<pid>/stat: with PID it tells a reused pid apart.
	StartTicks uint64
	// StartTime is StartTicks as wall-clock time, computed like the
	// system scanner computes Process.StartTime (boot time from
	// /proc/stat plus the ticks), so that both name a process alike.
	StartTime time.Time
	UID       uint32
	// Comm is the process name as the kernel keeps it (15 bytes at most).
	Comm     string
	CgroupID uint64
}

// process builds the Process an event names when nothing better is
// known: the kernel's comm as the name, no exe or command line.
func (o *EventOwner) process() *Process {
	return &Process{PID: o.PID, StartTime: o.StartTime, Name: o.Comm, Comm: o.Comm, UID: o.UID}
}

// OwnerResolver gives the Process an event's owner names, with the
// details the scanner records (exe, command line, user, cgroup), from its
// cache or /proc while the process lives, and built from the event (its
// comm as the name) once it is gone. The SystemScanner implements it; a
// Tracker uses its Scanner's when it has one.
type OwnerResolver interface {
	// ResolveOwner returns the owner's Process and whether it came from
	// the event alone (the process was gone). It never returns nil.
	ResolveOwner(o *EventOwner) (p *Process, fromEvent bool)
}

// NetNSScope is implemented by scanners that list the sockets of some
// network namespaces only (the SystemScanner: its own, or all with
// AllNetNS). A Tracker ignores the events of sockets in namespaces its
// Scanner does not cover, so that its history holds one view of the host.
type NetNSScope interface {
	CoversNetNS(netns uint64) bool
}

// EventSourceStats are the counters of the tracker's event source: the
// source's own (Name to Missed, from EventSource.Stats) and the
// tracker's handling of its events.
type EventSourceStats struct {
	// Name is the source's name; empty when the tracker only polls.
	Name string
	// Delivered: events the source delivered.
	Delivered uint64
	// Submitted: records the kernel queued (Delivered lags it by what is
	// still queued).
	Submitted uint64
	// RingbufDrops: records the kernel dropped because the ring buffer
	// was full (the reader fell behind).
	RingbufDrops uint64
	// KernelDrops: in-kernel failures that lost information (owner
	// storage, conversation table).
	KernelDrops uint64
	// Unowned: records without an owner (sockets older than the source).
	Unowned uint64
	// Lost: records the source could not decode.
	Lost uint64
	// Missed: runs of a kernel program skipped by recursion protection.
	Missed uint64

	// QueueDrops: events the tracker dropped because it fell behind
	// (its queue of EventQueueSize was full).
	QueueDrops uint64
	// Applied: events that went into the history.
	Applied uint64
	// Ignored: events that said nothing to record (no owner, a TCP bind,
	// a conversation its socket's binding already attributes, a repeat,
	// a network namespace the scanner does not cover).
	Ignored uint64
	// Open: sockets learned from events and not closed yet.
	Open int
	// MissedCloses: sockets no later scan saw whose close event never
	// came; closed at the first such scan.
	MissedCloses uint64
	// Evictions: sockets dropped to stay within MaxEventSockets (those
	// only events knew of are closed then).
	Evictions uint64
}

// Defaults of the event handling options.
const (
	// DefaultEventQueueSize bounds the events received and not yet
	// applied.
	DefaultEventQueueSize = 1 << 16
	// DefaultMaxEventSockets bounds the sockets learned from events that
	// are tracked until their close event.
	DefaultMaxEventSockets = 1 << 16
	// missedCloseGrace is how long after a scan that no longer sees a
	// socket its close event may still arrive (events come up to the
	// source's poll interval late, 50 ms for eBPF).
	missedCloseGrace = 2 * time.Second
	// sameSocketSlack: an event for a 5-tuple the scans have known since
	// longer than this before the event is about a newer socket (a scan
	// sees a socket up to a scan's duration after its snapshot time).
	sameSocketSlack = time.Second
)

// evRecord is an event with its owner resolved, queued for the history.
type evRecord struct {
	SockEvent
	owner *Process // nil when the event names nobody
	thin  bool     // owner built from the event alone (the process was gone)
	// received is when the tracker got the event: the end of a failed
	// connection attempt.
	received time.Time
}

// eventQueue passes events from the source's goroutine to the tracker's.
type eventQueue struct {
	mu      sync.Mutex
	buf     []evRecord
	max     int
	dropped uint64
	ready   chan struct{}
}

func newEventQueue(max int) *eventQueue {
	return &eventQueue{max: max, ready: make(chan struct{}, 1)}
}

// push queues r, or drops it when the queue is full.
func (q *eventQueue) push(r evRecord) {
	q.mu.Lock()
	if len(q.buf) >= q.max {
		q.dropped++
		q.mu.Unlock()
		return
	}
	q.buf = append(q.buf, r)
	q.mu.Unlock()
	select {
	case q.ready <- struct{}{}:
	default:
	}
}

// take returns the queued events, handing spare back as the next buffer.
func (q *eventQueue) take(spare []evRecord) []evRecord {
	q.mu.Lock()
	out := q.buf
	q.buf = spare[:0]
	q.mu.Unlock()
	return out
}

func (q *eventQueue) drops() uint64 {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.dropped
}
