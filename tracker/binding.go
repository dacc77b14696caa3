package tracker

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"time"
)

// Proto is an IP protocol number; the tracker knows TCP and UDP.
type Proto uint8

// Protocols tracked.
const (
	ProtoTCP Proto = 6
	ProtoUDP Proto = 17
)

// String returns "tcp", "udp" or the number.
func (p Proto) String() string {
	switch p {
	case ProtoTCP:
		return "tcp"
	case ProtoUDP:
		return "udp"
	}
	return fmt.Sprint(uint8(p))
}

// ParseProto parses "tcp", "udp" or a protocol number.
func ParseProto(s string) (Proto, error) {
	switch strings.ToLower(s) {
	case "tcp", "6":
		return ProtoTCP, nil
	case "udp", "17":
		return ProtoUDP, nil
	}
	return 0, fmt.Errorf("unknown protocol %q (want tcp or udp)", s)
}

// State is a socket state, named as ss(8) names it.
type State uint8

// Socket states. The numeric values are the kernel's TCP states
// (include/net/tcp_states.h); UDP sockets use StateUnconn (kernel 7,
// TCP_CLOSE) or StateEstablished (connected UDP).
const (
	StateUnknown     State = 0
	StateEstablished State = 1
	StateSynSent     State = 2
	StateSynRecv     State = 3
	StateFinWait1    State = 4
	StateFinWait2    State = 5
	StateTimeWait    State = 6
	StateClose       State = 7
	StateCloseWait   State = 8
	StateLastAck     State = 9
	StateListen      State = 10
	StateClosing     State = 11
	StateNewSynRecv  State = 12
	// StateUnconn is an unconnected UDP socket: it serves every peer, like
	// a listener. It has no kernel number of its own (UDP reports 7).
	StateUnconn State = 100
)

var stateNames = map[State]string{
	StateUnknown:     "unknown",
	StateEstablished: "established",
	StateSynSent:     "syn-sent",
	StateSynRecv:     "syn-recv",
	StateFinWait1:    "fin-wait-1",
	StateFinWait2:    "fin-wait-2",
	StateTimeWait:    "time-wait",
	StateClose:       "close",
	StateCloseWait:   "close-wait",
	StateLastAck:     "last-ack",
	StateListen:      "listen",
	StateClosing:     "closing",
	StateNewSynRecv:  "syn-recv",
	StateUnconn:      "unconn",
}

// String returns the ss(8) name of the state ("listen", "unconn", ...).
func (s State) String() string {
	if n, ok := stateNames[s]; ok {
		return n
	}
	return fmt.Sprintf("state(%d)", uint8(s))
}

// ParseState parses an ss(8) state name.
func ParseState(s string) (State, error) {
	for st, n := range stateNames {
		if n == s && st != StateNewSynRecv {
			return st, nil
		}
	}
	return 0, fmt.Errorf("unknown socket state %q", s)
}

// Listening reports whether a socket in this state serves any peer: a TCP
// listener or an unconnected UDP socket.
func (s State) Listening() bool { return s == StateListen || s == StateUnconn }

// Process describes the process that owns a socket.
type Process struct {
	PID int32
	// StartTime is when the process started; with PID it identifies the
	// process even after the pid is reused.
	StartTime time.Time
	// Name is the full process name: comm, or the exe's or argv[0]'s base
	// name when comm (cut at 15 bytes by the kernel) is a prefix of it.
	Name string
	// Comm is /proc/<pid>/comm as the kernel reports it.
	Comm      string
	Exe       string
	Cmdline   string
	UID       uint32
	User      string
	Cgroup    string
	Container string // container id, when the cgroup path names one
}

// Same reports whether p and q are the same process (pid and start time).
func (p *Process) Same(q *Process) bool {
	if p == nil || q == nil {
		return p == q
	}
	return p.PID == q.PID && p.StartTime.Equal(q.StartTime)
}

// Socket identifies one kernel socket as a scan sees it.
type Socket struct {
	Proto Proto
	Local netip.AddrPort
	// Remote is the peer of a connected socket; the zero AddrPort (or an
	// unspecified address with port 0) for listeners and unconnected UDP.
	Remote netip.AddrPort
	State  State
	Inode  uint64 // 0 for sockets no process holds (accept queue, TIME-WAIT)
	UID    uint32 // socket owner uid as the kernel reports it
	NetNS  uint64 // network namespace inode
}

// Connected reports whether the socket has a remote peer.
func (s *Socket) Connected() bool {
	return s.Remote.IsValid() && (s.Remote.Port() != 0 || !s.Remote.Addr().IsUnspecified())
}

// Observed is one socket of a scan with its owner, when known.
type Observed struct {
	Socket
	// Owner is nil when no process could be found (permission denied, or
	// an ownerless socket with no listener to inherit from).
	Owner *Process
	// Inherited is true when the socket had inode 0 and Owner is the
	// listener that owns its local port.
	Inherited bool
}

// Snapshot is the result of one scan of the host.
type Snapshot struct {
	Time    time.Time
	Sockets []Observed
	// Addrs are the host's own addresses at Time (IPv4-mapped addresses
	// normalised to IPv4).
	Addrs []netip.Addr
	// Denied lists pids whose fds could not be read (permission denied).
	Denied []int32
}

// Scanner produces snapshots of the host's sockets. The system scanner
// uses netlink sock_diag (or /proc/net as a fallback) and /proc; tests use
// fakes.
type Scanner interface {
	Scan(ctx context.Context) (*Snapshot, error)
}

// Binding is an interval during which a process owned a socket.
type Binding struct {
	Socket
	Owner     *Process
	Inherited bool
	Host      string
	From      time.Time
	// Until is when the binding ended; the zero time means it is still
	// bound (or its end is unknown).
	Until time.Time
}

// Open reports whether the binding has not ended.
func (b *Binding) Open() bool { return b.Until.IsZero() }

// Covers reports whether the binding existed at any moment of [from, to],
// widened by tolerance on both sides.
func (b *Binding) Covers(from, to time.Time, tolerance time.Duration) bool {
	if !b.From.IsZero() && to.Add(tolerance).Before(b.From) {
		return false
	}
	if !b.Until.IsZero() && !from.Add(-tolerance).Before(b.Until) {
		return false
	}
	return true
}

// AddrInterval is an interval during which the host owned an address.
type AddrInterval struct {
	Addr  netip.Addr
	From  time.Time
	Until time.Time // zero: still owned
}

// EventKind says what changed.
type EventKind uint8

// Event kinds.
const (
	EventBound        EventKind = 1 // a socket appeared
	EventUnbound      EventKind = 2 // a socket disappeared
	EventOwnerChanged EventKind = 3 // a socket got another owner
)

// String returns "bound", "unbound" or "owner-changed".
func (k EventKind) String() string {
	switch k {
	case EventBound:
		return "bound"
	case EventUnbound:
		return "unbound"
	case EventOwnerChanged:
		return "owner-changed"
	}
	return fmt.Sprintf("event(%d)", uint8(k))
}

// Event is one change between two scans.
type Event struct {
	Seq     uint64
	Time    time.Time
	Kind    EventKind
	Binding Binding
}

// NormalizeAddr turns IPv4-mapped IPv6 addresses into IPv4 and drops zones.
func NormalizeAddr(a netip.Addr) netip.Addr {
	return a.Unmap().WithZone("")
}
