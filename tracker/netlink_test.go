package tracker

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// diagMsg builds the payload of one inet_diag_msg.
func diagMsg(family, state uint8, local, remote netip.AddrPort, uid, inode uint32) []byte {
	p := make([]byte, inetDiagMsgLen)
	p[0], p[1] = family, state
	binary.BigEndian.PutUint16(p[4:], local.Port())
	binary.BigEndian.PutUint16(p[6:], remote.Port())
	if family == afInet {
		a, r := local.Addr().As4(), remote.Addr().As4()
		copy(p[8:], a[:])
		copy(p[24:], r[:])
	} else {
		a, r := local.Addr().As16(), remote.Addr().As16()
		copy(p[8:], a[:])
		copy(p[24:], r[:])
	}
	binary.NativeEndian.PutUint32(p[64:], uid)
	binary.NativeEndian.PutUint32(p[68:], inode)
	// An attribute after the fixed part, as the kernel sends
	// (INET_DIAG_SHUTDOWN), must be ignored.
	return append(p, 5, 0, 8, 0, 0, 0, 0, 0)
}

// nlMsg frames a payload in a netlink header, padded to 4 bytes.
func nlMsg(typ uint16, seq uint32, payload []byte) []byte {
	b := appendNlHeader(nil, nlHeader{Len: uint32(nlmsgHdrLen + len(payload)), Type: typ, Flags: 2, Seq: seq})
	b = append(b, payload...)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

func errnoPayload(e int32) []byte {
	return binary.NativeEndian.AppendUint32(nil, uint32(e))
}

func cat(parts ...[]byte) []byte {
	var b []byte
	for _, p := range parts {
		b = append(b, p...)
	}
	return b
}

func TestParseDiagDump(t *testing.T) {
	ap := netip.MustParseAddrPort
	any4 := ap("0.0.0.0:0")
	any6 := ap("[::]:0")
	tests := []struct {
		name     string
		proto    Proto
		data     []byte
		want     []Socket
		wantDone bool
		wantErr  bool
	}{
		{
			name:  "tcp4 listener and connection, done",
			proto: ProtoTCP,
			data: cat(
				nlMsg(sockDiagByFam, 7, diagMsg(afInet, 10, ap("127.0.0.1:8080"), any4, 0, 123)),
				nlMsg(sockDiagByFam, 7, diagMsg(afInet, 1, ap("10.0.0.1:40000"), ap("10.0.0.2:443"), 1000, 124)),
				nlMsg(sockDiagByFam, 7, diagMsg(afInet, 6, ap("10.0.0.1:40001"), ap("10.0.0.2:443"), 0, 0)),
				nlMsg(nlmsgDone, 7, errnoPayload(0)),
			),
			want: []Socket{
				{Proto: ProtoTCP, Local: ap("127.0.0.1:8080"), State: StateListen, Inode: 123},
				{Proto: ProtoTCP, Local: ap("10.0.0.1:40000"), Remote: ap("10.0.0.2:443"), State: StateEstablished, UID: 1000, Inode: 124},
				{Proto: ProtoTCP, Local: ap("10.0.0.1:40001"), Remote: ap("10.0.0.2:443"), State: StateTimeWait},
			},
			wantDone: true,
		},
		{
			name:  "tcp6 v4-mapped connection is normalised, syn-recv kept",
			proto: ProtoTCP,
			data: cat(
				nlMsg(sockDiagByFam, 7, diagMsg(afInet6, 1, ap("[::ffff:192.0.2.1]:443"), ap("[::ffff:198.51.100.2]:50000"), 33, 9)),
				nlMsg(sockDiagByFam, 7, diagMsg(afInet6, 12, ap("[2001:db8::1]:443"), ap("[2001:db8::2]:50001"), 33, 0)),
				nlMsg(sockDiagByFam, 7, diagMsg(afInet6, 10, ap("[::]:443"), any6, 33, 10)),
			),
			want: []Socket{
				{Proto: ProtoTCP, Local: ap("192.0.2.1:443"), Remote: ap("198.51.100.2:50000"), State: StateEstablished, UID: 33, Inode: 9},
				{Proto: ProtoTCP, Local: ap("[2001:db8::1]:443"), Remote: ap("[2001:db8::2]:50001"), State: StateSynRecv, UID: 33},
				{Proto: ProtoTCP, Local: ap("[::]:443"), State: StateListen, UID: 33, Inode: 10},
			},
		},
		{
			name:  "udp unconnected and connected",
			proto: ProtoUDP,
			data: cat(
				nlMsg(sockDiagByFam, 7, diagMsg(afInet, 7, ap("0.0.0.0:53"), any4, 0, 5)),
				nlMsg(sockDiagByFam, 7, diagMsg(afInet, 1, ap("10.0.0.1:5000"), ap("10.0.0.9:53"), 0, 6)),
				nlMsg(nlmsgDone, 7, errnoPayload(0)),
			),
			want: []Socket{
				{Proto: ProtoUDP, Local: ap("0.0.0.0:53"), State: StateUnconn, Inode: 5},
				{Proto: ProtoUDP, Local: ap("10.0.0.1:5000"), Remote: ap("10.0.0.9:53"), State: StateEstablished, Inode: 6},
			},
			wantDone: true,
		},
		{
			name:  "answers to another request are skipped",
			proto: ProtoTCP,
			data: cat(
				nlMsg(sockDiagByFam, 6, diagMsg(afInet, 10, ap("127.0.0.1:1"), any4, 0, 1)),
				nlMsg(nlmsgDone, 6, errnoPayload(0)),
			),
		},
		{name: "kernel error", proto: ProtoTCP, data: nlMsg(nlmsgError, 7, errnoPayload(-2)), wantErr: true},
		{name: "error in done", proto: ProtoTCP, data: nlMsg(nlmsgDone, 7, errnoPayload(-22)), wantDone: true, wantErr: true},
		{name: "short header", proto: ProtoTCP, data: []byte{1, 2, 3}, wantErr: true},
		{name: "length past the end", proto: ProtoTCP, data: nlMsg(sockDiagByFam, 7, diagMsg(afInet, 1, any4, any4, 0, 0))[:40], wantErr: true},
		{name: "short inet_diag_msg", proto: ProtoTCP, data: nlMsg(sockDiagByFam, 7, make([]byte, 20)), wantErr: true},
		{name: "unknown family", proto: ProtoTCP, data: nlMsg(sockDiagByFam, 7, make([]byte, inetDiagMsgLen)), wantErr: true},
		{name: "unknown type", proto: ProtoTCP, data: nlMsg(99, 7, nil), wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, done, err := parseDiagDump(tt.data, 7, tt.proto, nil)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %v", err, tt.wantErr)
			}
			if done != tt.wantDone {
				t.Errorf("done = %v, want %v", done, tt.wantDone)
			}
			if diff := cmp.Diff(tt.want, got, cmp.Comparer(func(a, b netip.AddrPort) bool { return a == b })); diff != "" {
				t.Errorf("sockets mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseDiagDumpErrno(t *testing.T) {
	_, _, err := parseDiagDump(nlMsg(nlmsgError, 1, errnoPayload(-13)), 1, ProtoTCP, nil)
	var ne *netlinkErrno
	if !errors.As(err, &ne) || ne.errno != 13 {
		t.Fatalf("err = %v, want netlink errno 13", err)
	}
}

// ifAddr builds an RTM_NEWADDR payload with the given attributes.
func ifAddr(family uint8, attrs ...[]byte) []byte {
	b := []byte{family, 24, 0, 0, 1, 0, 0, 0}
	for _, a := range attrs {
		b = append(b, a...)
	}
	return b
}

func rtAttr(typ uint16, v []byte) []byte {
	b := binary.NativeEndian.AppendUint16(nil, uint16(4+len(v)))
	b = binary.NativeEndian.AppendUint16(b, typ)
	b = append(b, v...)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

func TestParseAddrDump(t *testing.T) {
	v4 := func(s string) []byte { a := netip.MustParseAddr(s).As4(); return a[:] }
	v6 := func(s string) []byte { a := netip.MustParseAddr(s).As16(); return a[:] }
	tests := []struct {
		name     string
		data     []byte
		want     []netip.Addr
		wantDone bool
		wantErr  bool
	}{
		{
			name: "v4, point-to-point, v6, mapped, done",
			data: cat(
				nlMsg(rtmNewAddr, 3, ifAddr(afInet, rtAttr(ifaAddress, v4("127.0.0.1")), rtAttr(ifaLocal, v4("127.0.0.1")))),
				nlMsg(rtmNewAddr, 3, ifAddr(afInet, rtAttr(ifaAddress, v4("10.9.0.2")), rtAttr(ifaLocal, v4("10.9.0.1")), rtAttr(3, []byte("tun0\x00")))),
				nlMsg(rtmNewAddr, 3, ifAddr(afInet6, rtAttr(ifaAddress, v6("2001:db8::1")))),
				nlMsg(rtmNewAddr, 3, ifAddr(afInet6, rtAttr(ifaAddress, v6("::ffff:192.0.2.7")))),
				nlMsg(rtmNewAddr, 3, ifAddr(afInet6)),
				nlMsg(nlmsgDone, 3, errnoPayload(0)),
			),
			want:     []netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("10.9.0.1"), netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("192.0.2.7")},
			wantDone: true,
		},
		{name: "bad attribute length", data: nlMsg(rtmNewAddr, 3, ifAddr(afInet, []byte{200, 0, 1, 0})), wantErr: true},
		{name: "short ifaddrmsg", data: nlMsg(rtmNewAddr, 3, []byte{2}), wantErr: true},
		{name: "error", data: nlMsg(nlmsgError, 3, errnoPayload(-1)), wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, done, err := parseAddrDump(tt.data, 3, nil)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %v", err, tt.wantErr)
			}
			if done != tt.wantDone {
				t.Errorf("done = %v, want %v", done, tt.wantDone)
			}
			if diff := cmp.Diff(tt.want, got, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
				t.Errorf("addresses mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestAppendDiagRequest(t *testing.T) {
	b := appendDiagRequest(nil, 42, afInet6, ProtoUDP)
	if len(b) != nlmsgHdrLen+inetDiagReqLen {
		t.Fatalf("request of %d bytes, want %d", len(b), nlmsgHdrLen+inetDiagReqLen)
	}
	if got := binary.NativeEndian.Uint32(b); got != uint32(len(b)) {
		t.Errorf("nlmsg_len %d, want %d", got, len(b))
	}
	if b[16] != afInet6 || b[17] != 17 || binary.NativeEndian.Uint32(b[20:]) != udpStateAll {
		t.Errorf("request body % x", b[16:24])
	}
	if got := binary.NativeEndian.Uint32(appendDiagRequest(nil, 1, afInet, ProtoTCP)[20:]); got != tcpStateAll {
		t.Errorf("tcp states %#x, want %#x", got, tcpStateAll)
	}
}

// FuzzParseDiagDump checks that no datagram makes the parsers panic.
func FuzzParseDiagDump(f *testing.F) {
	ap := netip.MustParseAddrPort
	f.Add(cat(nlMsg(sockDiagByFam, 7, diagMsg(afInet, 10, ap("127.0.0.1:8080"), ap("0.0.0.0:0"), 0, 123)), nlMsg(nlmsgDone, 7, errnoPayload(0))))
	f.Add(nlMsg(sockDiagByFam, 7, diagMsg(afInet6, 1, ap("[::1]:1"), ap("[::1]:2"), 0, 1)))
	f.Add(nlMsg(rtmNewAddr, 7, ifAddr(afInet, rtAttr(ifaLocal, []byte{127, 0, 0, 1}))))
	f.Add(nlMsg(nlmsgError, 7, errnoPayload(-1)))
	f.Fuzz(func(t *testing.T, b []byte) {
		socks, _, err := parseDiagDump(b, 7, ProtoTCP, nil)
		if err == nil {
			for _, s := range socks {
				if !s.Local.IsValid() {
					t.Fatalf("socket without local address: %+v", s)
				}
			}
		}
		_, _, _ = parseAddrDump(b, 7, nil)
		if len(b) >= nlmsgHdrLen {
			_, _, _ = parseProcEvent(b[nlmsgHdrLen:])
		}
	})
}
