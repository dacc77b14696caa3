package ebpf

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net/netip"
	"time"
)

// Kind says what happened to a socket.
type Kind uint8

// Event kinds. Values match the KIND_* constants of bpf/netdumper.bpf.c.
const (
	// KindBind: bind(2) of a TCP or UDP socket to a concrete port. Remote
	// is zero. For UDP this is the "unconn" binding that serves every peer.
	KindBind Kind = 1
	// KindListen: listen(2) on a TCP socket. Remote is zero.
	KindListen Kind = 2
	// KindConnect: an active TCP open finished: State is established, or
	// close when the attempt failed (refused, timed out). Time is when the
	// SYN was sent. Local holds the port the kernel chose.
	KindConnect Kind = 3
	// KindAccept: a passive TCP open finished (the handshake completed on
	// a listener). Owner is the listening socket's owner (Inherited).
	KindAccept Kind = 4
	// KindDatagram: the first UDP datagram of a socket to a peer (connected
	// or not). Local is the packet's source address and port.
	KindDatagram Kind = 5
	// KindClose: a socket that was reported before is gone: a TCP socket
	// reached CLOSE (a TIME-WAIT may follow), or the last descriptor of a
	// UDP socket was closed.
	KindClose Kind = 6
)

var kindNames = [...]string{"", "bind", "listen", "connect", "accept", "datagram", "close"}

// String returns "bind", "listen", "connect", "accept", "datagram" or "close".
func (k Kind) String() string {
	if int(k) < len(kindNames) && k != 0 {
		return kindNames[k]
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Hook names the process-context hook that recorded an owner.
type Hook uint8

// Hooks. Values match the HOOK_* constants of bpf/netdumper.bpf.c.
const (
	HookBind    Hook = 1 // bind(2)
	HookListen  Hook = 2 // listen(2)
	HookConnect Hook = 3 // connect(2) (TCP, UDP) or a TCP fast-open sendmsg
	HookSendmsg Hook = 4 // sendto(2)/sendmsg(2) on an unconnected UDP socket
	HookCreate  Hook = 5 // socket(2) of a UDP socket
)

var hookNames = [...]string{"", "bind", "listen", "connect", "sendmsg", "create"}

// String returns "bind", "listen", "connect", "sendmsg" or "create".
func (h Hook) String() string {
	if int(h) < len(hookNames) && h != 0 {
		return hookNames[h]
	}
	return fmt.Sprintf("hook(%d)", uint8(h))
}

// Protocol numbers carried in ConnEvent.Proto (the same numbers as
// tracker.Proto).
const (
	ProtoTCP uint8 = 6
	ProtoUDP uint8 = 17
)

// Address families carried in ConnEvent.Family (AF_INET, AF_INET6).
const (
	FamilyIPv4 uint16 = 2
	FamilyIPv6 uint16 = 10
)

// Socket states carried in ConnEvent.State: the kernel's numbers, the same
// as tracker.State. UDP sockets report StateEstablished when connected and
// StateClose when not.
const (
	StateEstablished uint8 = 1
	StateSynSent     uint8 = 2
	StateSynRecv     uint8 = 3
	StateClose       uint8 = 7
	StateListen      uint8 = 10
)

// userHZ is the kernel's USER_HZ, the unit of /proc/<pid>/stat times; it
// is 100 on every Linux architecture.
const userHZ = 100

// Owner is the process that acted on a socket, read from the current task
// in process context (see the package documentation).
type Owner struct {
	// PID is the thread that made the call.
	PID int32
	// TGID is the process id (what /proc and ss call the pid).
	TGID int32
	UID  uint32
	GID  uint32
	// Comm is the process's name as /proc/<tgid>/comm shows it (the
	// thread-group leader's comm, cut at 15 bytes by the kernel).
	Comm string
	// ThreadComm is the comm of the thread that made the call.
	ThreadComm string
	// CgroupID is the task's cgroup v2 id (the inode number of its cgroup
	// directory).
	CgroupID uint64
	// StartBoottime is when the process started, since boot
	// (CLOCK_BOOTTIME): the kernel value behind /proc/<tgid>/stat field 22.
	StartBoottime time.Duration
	// StartTime is StartBoottime as wall-clock time. With TGID it tells a
	// process apart from a later one that reused the pid.
	StartTime time.Time
	// Hook is the hook that recorded this owner.
	Hook Hook
}

// StartTicks returns the start time in clock ticks since boot (USER_HZ),
// the unit of field 22 of /proc/<tgid>/stat, so the tracker can compare it
// with its pid cache exactly.
func (o *Owner) StartTicks() uint64 {
	return uint64(o.StartBoottime / (time.Second / userHZ))
}

// ConnEvent is one socket event.
type ConnEvent struct {
	Kind Kind
	// Time is when it happened, as wall-clock time: for KindConnect when
	// the SYN was sent, for KindAccept when the handshake's last ACK
	// created the connection.
	Time time.Time
	// Proto is ProtoTCP or ProtoUDP.
	Proto uint8
	// Family is FamilyIPv4 or FamilyIPv6: the socket's family, except for
	// KindDatagram, where it is the packet's (a dual-stack socket sending
	// to an IPv4 peer reports IPv4 addresses).
	Family uint16
	// Local and Remote are as the kernel has them: an IPv6 socket may hold
	// IPv4-mapped addresses (normalise with tracker.NormalizeAddr). Remote
	// is the zero AddrPort's unspecified equivalent for bind and listen.
	Local  netip.AddrPort
	Remote netip.AddrPort
	// State is the kernel socket state after the event (StateEstablished,
	// StateClose, StateListen, ...).
	State uint8
	// Cookie is the kernel's socket cookie: unique per socket for the life
	// of the system. It ties a KindClose to earlier events.
	Cookie uint64
	// NetNS is the network namespace inode: the socket's for TCP events,
	// the acting task's for the others; 0 when unknown.
	NetNS uint64
	// Owner is nil when no process-context hook saw the socket (it was
	// created before the source started, or the kernel could not store the
	// owner).
	Owner *Owner
	// Inherited is true for KindAccept (and the KindClose of an accepted
	// connection): Owner is the process that called listen(2) on the
	// listening socket, not necessarily the one that called accept(2).
	Inherited bool
}

// String formats the event on one line, for logs and tests.
func (e *ConnEvent) String() string {
	owner := "owner=?"
	if e.Owner != nil {
		owner = fmt.Sprintf("pid=%d comm=%q hook=%s", e.Owner.TGID, e.Owner.Comm, e.Owner.Hook)
		if e.Inherited {
			owner += " inherited"
		}
	}
	proto := "tcp"
	if e.Proto == ProtoUDP {
		proto = "udp"
	}
	return fmt.Sprintf("%s %s %s -> %s state=%d cookie=%d netns=%d %s",
		e.Kind, proto, e.Local, e.Remote, e.State, e.Cookie, e.NetNS, owner)
}

// Layout of struct event in bpf/netdumper.bpf.c (native byte order).
// TestRecordLayout checks these offsets against the generated Go type.
const (
	offTs            = 0
	offCookie        = 8
	offCgroupID      = 16
	offStartBoottime = 24
	offNetNS         = 32
	offPID           = 40
	offTGID          = 44
	offUID           = 48
	offGID           = 52
	offLaddr         = 56
	offRaddr         = 72
	offLport         = 88
	offRport         = 90
	offFamily        = 92
	offProto         = 94
	offKind          = 95
	offState         = 96
	offFlags         = 97
	offHook          = 98
	offComm          = 100
	offThreadComm    = 116
	recordSize       = 136
)

// Flags of struct event.
const (
	flagOwner     = 1
	flagInherited = 2
)

// decode parses one ring-buffer record. bootEpoch is the wall-clock time
// of boot (CLOCK_REALTIME - CLOCK_BOOTTIME). It never panics; a malformed
// record gives an error naming the field.
func decode(raw []byte, bootEpoch time.Time) (ConnEvent, error) {
	var ev ConnEvent
	if len(raw) < recordSize {
		return ev, fmt.Errorf("record of %d bytes, want %d", len(raw), recordSize)
	}
	ne := binary.NativeEndian
	ev.Kind = Kind(raw[offKind])
	if ev.Kind < KindBind || ev.Kind > KindClose {
		return ev, fmt.Errorf("record field kind: unknown value %d", raw[offKind])
	}
	ev.Proto = raw[offProto]
	if ev.Proto != ProtoTCP && ev.Proto != ProtoUDP {
		return ev, fmt.Errorf("record field proto: unknown value %d", ev.Proto)
	}
	ev.Family = ne.Uint16(raw[offFamily:])
	lport := ne.Uint16(raw[offLport:])
	rport := ne.Uint16(raw[offRport:])
	switch ev.Family {
	case FamilyIPv4:
		ev.Local = netip.AddrPortFrom(netip.AddrFrom4([4]byte(raw[offLaddr:offLaddr+4])), lport)
		ev.Remote = netip.AddrPortFrom(netip.AddrFrom4([4]byte(raw[offRaddr:offRaddr+4])), rport)
	case FamilyIPv6:
		ev.Local = netip.AddrPortFrom(netip.AddrFrom16([16]byte(raw[offLaddr:offLaddr+16])), lport)
		ev.Remote = netip.AddrPortFrom(netip.AddrFrom16([16]byte(raw[offRaddr:offRaddr+16])), rport)
	default:
		return ev, fmt.Errorf("record field family: unknown value %d", ev.Family)
	}
	ev.Time = bootEpoch.Add(time.Duration(ne.Uint64(raw[offTs:])))
	ev.State = raw[offState]
	ev.Cookie = ne.Uint64(raw[offCookie:])
	ev.NetNS = ne.Uint64(raw[offNetNS:])
	flags := raw[offFlags]
	if flags&flagOwner != 0 {
		start := time.Duration(ne.Uint64(raw[offStartBoottime:]))
		ev.Owner = &Owner{
			PID:           int32(ne.Uint32(raw[offPID:])),
			TGID:          int32(ne.Uint32(raw[offTGID:])),
			UID:           ne.Uint32(raw[offUID:]),
			GID:           ne.Uint32(raw[offGID:]),
			Comm:          cString(raw[offComm : offComm+16]),
			ThreadComm:    cString(raw[offThreadComm : offThreadComm+16]),
			CgroupID:      ne.Uint64(raw[offCgroupID:]),
			StartBoottime: start,
			StartTime:     bootEpoch.Add(start),
			Hook:          Hook(raw[offHook]),
		}
		ev.Inherited = flags&flagInherited != 0
	}
	return ev, nil
}

// cString returns b up to its first NUL byte.
func cString(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}
