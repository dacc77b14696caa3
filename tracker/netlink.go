package tracker

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
)

// Netlink message layouts used by the scanner (all integers in host byte
// order unless noted; ports and addresses in network order):
//
//	nlmsghdr        len u32 | type u16 | flags u16 | seq u32 | pid u32    (16 bytes)
//	inet_diag_req_v2 family u8 | protocol u8 | ext u8 | pad u8 | states u32 | sockid (48)
//	inet_diag_sockid sport be16 | dport be16 | src [16] | dst [16] | if u32 | cookie [2]u32
//	inet_diag_msg   family u8 | state u8 | timer u8 | retrans u8 | sockid (48) |
//	                expires u32 | rqueue u32 | wqueue u32 | uid u32 | inode u32 (72 bytes)
//	ifaddrmsg       family u8 | prefixlen u8 | flags u8 | scope u8 | index u32 (8 bytes)
//	rtattr          len u16 | type u16 | payload, padded to 4
const (
	nlmsgHdrLen          = 16
	inetDiagReqLen       = 56
	inetDiagCompatReqLen = 60
	tcpDiagGetSock       = 18 // TCPDIAG_GETSOCK
	inetDiagMsgLen       = 72
	ifAddrMsgLen         = 8
	nlmsgDone            = 3
	nlmsgError           = 2
	nlmsgNoop            = 1
	sockDiagByFam        = 20 // SOCK_DIAG_BY_FAMILY
	rtmNewAddr           = 20 // RTM_NEWADDR
	rtmGetAddr           = 22 // RTM_GETADDR
	nlmFRequest          = 0x1
	nlmFDump             = 0x300
	ifaAddress           = 1
	ifaLocal             = 2
	afInet               = 2
	afInet6              = 10
	tcpStateAll          = 0x1ffe // TCP states 1..12, not the bound-inactive pseudo-state
	udpStateAll          = 0xffffffff
	tcpCloseUDPIdle      = 7 // TCP_CLOSE: what UDP reports for an unconnected socket
)

var errShortNetlink = errors.New("truncated netlink message")

// nlHeader is a parsed nlmsghdr.
type nlHeader struct {
	Len   uint32
	Type  uint16
	Flags uint16
	Seq   uint32
	Pid   uint32
}

// appendNlHeader appends a netlink header to b.
func appendNlHeader(b []byte, h nlHeader) []byte {
	b = binary.NativeEndian.AppendUint32(b, h.Len)
	b = binary.NativeEndian.AppendUint16(b, h.Type)
	b = binary.NativeEndian.AppendUint16(b, h.Flags)
	b = binary.NativeEndian.AppendUint32(b, h.Seq)
	return binary.NativeEndian.AppendUint32(b, h.Pid)
}

// appendDiagRequest appends a SOCK_DIAG_BY_FAMILY dump request for every
// socket of one family and protocol.
func appendDiagRequest(b []byte, seq uint32, family uint8, proto Proto) []byte {
	b = appendNlHeader(b, nlHeader{
		Len:   nlmsgHdrLen + inetDiagReqLen,
		Type:  sockDiagByFam,
		Flags: nlmFRequest | nlmFDump,
		Seq:   seq,
	})
	states := uint32(udpStateAll)
	if proto == ProtoTCP {
		states = tcpStateAll
	}
	b = append(b, family, uint8(proto), 0, 0)
	b = binary.NativeEndian.AppendUint32(b, states)
	return append(b, make([]byte, 48)...)
}

// appendCompatTCPRequest appends a TCPDIAG_GETSOCK dump request, the
// older inet_diag_req form:
//
//	inet_diag_req  family u8 | src_len u8 | dst_len u8 | ext u8 | sockid (48) | states u32 | dbs u32
//
// The kernel answers it for both address families in one walk of its TCP
// hash tables (it dumps with AF_UNSPEC), where SOCK_DIAG_BY_FAMILY needs
// one walk per family.
func appendCompatTCPRequest(b []byte, seq uint32) []byte {
	b = appendNlHeader(b, nlHeader{
		Len:   nlmsgHdrLen + inetDiagCompatReqLen,
		Type:  tcpDiagGetSock,
		Flags: nlmFRequest | nlmFDump,
		Seq:   seq,
	})
	b = append(b, afInet, 0, 0, 0)
	b = append(b, make([]byte, 48)...)
	b = binary.NativeEndian.AppendUint32(b, tcpStateAll)
	return binary.NativeEndian.AppendUint32(b, 0)
}

// appendAddrRequest appends an RTM_GETADDR dump request for every family.
func appendAddrRequest(b []byte, seq uint32) []byte {
	b = appendNlHeader(b, nlHeader{
		Len:   nlmsgHdrLen + ifAddrMsgLen,
		Type:  rtmGetAddr,
		Flags: nlmFRequest | nlmFDump,
		Seq:   seq,
	})
	return append(b, make([]byte, ifAddrMsgLen)...)
}

// nlMessages iterates over the netlink messages of one datagram. It calls
// fn with each header, its payload and its offset in b, and stops at the
// first error fn returns or the first malformed header.
func nlMessages(b []byte, fn func(h nlHeader, payload []byte, off int) error) error {
	off := 0
	for off < len(b) {
		if len(b)-off < nlmsgHdrLen {
			return fmt.Errorf("netlink header at offset %d: %w", off, errShortNetlink)
		}
		h := nlHeader{
			Len:   binary.NativeEndian.Uint32(b[off:]),
			Type:  binary.NativeEndian.Uint16(b[off+4:]),
			Flags: binary.NativeEndian.Uint16(b[off+6:]),
			Seq:   binary.NativeEndian.Uint32(b[off+8:]),
			Pid:   binary.NativeEndian.Uint32(b[off+12:]),
		}
		if h.Len < nlmsgHdrLen || uint64(h.Len) > uint64(len(b)-off) {
			return fmt.Errorf("netlink message at offset %d: length %d of %d bytes left: %w", off, h.Len, len(b)-off, errShortNetlink)
		}
		if err := fn(h, b[off+nlmsgHdrLen:off+int(h.Len)], off); err != nil {
			return err
		}
		off += int((h.Len + 3) &^ 3)
	}
	return nil
}

// nlError decodes the errno of an NLMSG_ERROR or NLMSG_DONE payload
// (a negative int32; 0 means success).
func nlError(payload []byte) int32 {
	if len(payload) < 4 {
		return 0
	}
	return int32(binary.NativeEndian.Uint32(payload))
}

// parseDiagMsg decodes one inet_diag_msg into a Socket. Addresses are
// normalised; UDP's TCP_CLOSE becomes StateUnconn.
func parseDiagMsg(p []byte, proto Proto) (Socket, error) {
	if len(p) < inetDiagMsgLen {
		return Socket{}, fmt.Errorf("inet_diag_msg of %d bytes, want %d: %w", len(p), inetDiagMsgLen, errShortNetlink)
	}
	family := p[0]
	var local, remote netip.Addr
	switch family {
	case afInet:
		local = netip.AddrFrom4([4]byte(p[8:12]))
		remote = netip.AddrFrom4([4]byte(p[24:28]))
	case afInet6:
		local = netip.AddrFrom16([16]byte(p[8:24]))
		remote = netip.AddrFrom16([16]byte(p[24:40]))
	default:
		return Socket{}, fmt.Errorf("inet_diag_msg: address family %d", family)
	}
	s := Socket{
		Proto: proto,
		Local: netip.AddrPortFrom(NormalizeAddr(local), binary.BigEndian.Uint16(p[4:6])),
		State: State(p[1]),
		UID:   binary.NativeEndian.Uint32(p[64:68]),
		Inode: uint64(binary.NativeEndian.Uint32(p[68:72])),
	}
	s.Remote = remoteAddrPort(remote, binary.BigEndian.Uint16(p[6:8]))
	s.State = socketState(proto, uint8(s.State))
	return s, nil
}

// remoteAddrPort returns the normalised remote address, or the zero
// AddrPort for a socket without a peer.
func remoteAddrPort(a netip.Addr, port uint16) netip.AddrPort {
	if port == 0 && a.IsUnspecified() {
		return netip.AddrPort{}
	}
	return netip.AddrPortFrom(NormalizeAddr(a), port)
}

// socketState maps a kernel state number to a State.
func socketState(proto Proto, st uint8) State {
	if proto == ProtoUDP && st == tcpCloseUDPIdle {
		return StateUnconn
	}
	if st == uint8(StateNewSynRecv) {
		return StateSynRecv
	}
	return State(st)
}

// parseDiagDump parses one datagram of a sock_diag dump answering request
// seq, appending its sockets to dst. done is true once NLMSG_DONE arrives.
func parseDiagDump(b []byte, seq uint32, proto Proto, dst []Socket) (out []Socket, done bool, err error) {
	err = nlMessages(b, func(h nlHeader, payload []byte, off int) error {
		if h.Seq != seq {
			return nil // a late answer to an earlier, abandoned request
		}
		switch h.Type {
		case nlmsgNoop:
			return nil
		case nlmsgDone:
			done = true
			if e := nlError(payload); e < 0 {
				return fmt.Errorf("sock_diag dump: errno %d", -e)
			}
			return nil
		case nlmsgError:
			if e := nlError(payload); e < 0 {
				return &netlinkErrno{errno: -e}
			}
			return nil
		case sockDiagByFam, tcpDiagGetSock:
			s, err := parseDiagMsg(payload, proto)
			if err != nil {
				return fmt.Errorf("message at offset %d: %w", off, err)
			}
			dst = append(dst, s)
			return nil
		}
		return fmt.Errorf("message at offset %d: unexpected netlink type %d", off, h.Type)
	})
	return dst, done, err
}

// netlinkErrno is an error the kernel returned in NLMSG_ERROR.
type netlinkErrno struct{ errno int32 }

func (e *netlinkErrno) Error() string { return fmt.Sprintf("netlink error: errno %d", e.errno) }

// parseAddrDump parses one datagram of an RTM_GETADDR dump, appending the
// normalised addresses to dst.
func parseAddrDump(b []byte, seq uint32, dst []netip.Addr) (out []netip.Addr, done bool, err error) {
	err = nlMessages(b, func(h nlHeader, payload []byte, off int) error {
		if h.Seq != seq {
			return nil
		}
		switch h.Type {
		case nlmsgNoop:
			return nil
		case nlmsgDone:
			done = true
			return nil
		case nlmsgError:
			if e := nlError(payload); e < 0 {
				return &netlinkErrno{errno: -e}
			}
			return nil
		case rtmNewAddr:
		default:
			return fmt.Errorf("message at offset %d: unexpected netlink type %d", off, h.Type)
		}
		if len(payload) < ifAddrMsgLen {
			return fmt.Errorf("ifaddrmsg at offset %d: %w", off, errShortNetlink)
		}
		family := payload[0]
		var addr, local netip.Addr
		attrs := payload[ifAddrMsgLen:]
		for len(attrs) >= 4 {
			l := int(binary.NativeEndian.Uint16(attrs))
			t := binary.NativeEndian.Uint16(attrs[2:])
			if l < 4 || l > len(attrs) {
				return fmt.Errorf("rtattr in message at offset %d: length %d: %w", off, l, errShortNetlink)
			}
			v := attrs[4:l]
			var a netip.Addr
			switch {
			case family == afInet && len(v) == 4:
				a = netip.AddrFrom4([4]byte(v))
			case family == afInet6 && len(v) == 16:
				a = netip.AddrFrom16([16]byte(v))
			}
			switch t {
			case ifaAddress:
				addr = a
			case ifaLocal:
				local = a
			}
			next := (l + 3) &^ 3
			if next > len(attrs) {
				break
			}
			attrs = attrs[next:]
		}
		// IFA_LOCAL is the interface's own address; IFA_ADDRESS is the
		// peer on point-to-point links.
		if local.IsValid() {
			addr = local
		}
		if addr.IsValid() {
			dst = append(dst, NormalizeAddr(addr))
		}
		return nil
	})
	return dst, done, err
}

// Proc connector (cn_proc) messages: nlmsghdr, then
//
//	cn_msg      idx u32 | val u32 | seq u32 | ack u32 | len u16 | flags u16   (20 bytes)
//	proc_event  what u32 | cpu u32 | timestamp_ns u64 | event data
//	  fork      parent_pid u32 | parent_tgid u32 | child_pid u32 | child_tgid u32
//	  exec      process_pid u32 | process_tgid u32
//	  uid       process_pid u32 | process_tgid u32 | ruid u32 | euid u32
//	  exit      process_pid u32 | process_tgid u32 | exit_code u32 | ...
const (
	cnIdxProc        = 1
	cnValProc        = 1
	cnMsgLen         = 20
	procCnMcastListn = 1
	procCnMcastIgnor = 2
	procEventFork    = 0x00000001
	procEventExec    = 0x00000002
	procEventUID     = 0x00000004
	procEventExit    = 0x80000000
	procEventHdrLen  = 16
)

// parseProcEvent returns the event type and its first two data words
// (pid and tgid for exec and exit).
func parseProcEvent(p []byte) (what uint32, data [2]uint32, ok bool) {
	if len(p) < cnMsgLen+procEventHdrLen+8 {
		return 0, data, false
	}
	if binary.NativeEndian.Uint32(p[0:]) != cnIdxProc || binary.NativeEndian.Uint32(p[4:]) != cnValProc {
		return 0, data, false
	}
	ev := p[cnMsgLen:]
	what = binary.NativeEndian.Uint32(ev)
	data[0] = binary.NativeEndian.Uint32(ev[procEventHdrLen:])
	data[1] = binary.NativeEndian.Uint32(ev[procEventHdrLen+4:])
	return what, data, true
}
