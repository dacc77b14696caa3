package ebpf

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// rawRecord describes a ring-buffer record field by field.
type rawRecord struct {
	ts, cookie, cgroup, start, netns uint64
	pid, tgid, uid, gid              uint32
	laddr, raddr                     []byte
	lport, rport, family             uint16
	proto, kind, state, flags, hook  uint8
	comm, threadComm                 string
}

// encode lays r out as struct event in bpf/netdumper.bpf.c does.
func (r rawRecord) encode() []byte {
	b := make([]byte, recordSize)
	ne := binary.NativeEndian
	ne.PutUint64(b[offTs:], r.ts)
	ne.PutUint64(b[offCookie:], r.cookie)
	ne.PutUint64(b[offCgroupID:], r.cgroup)
	ne.PutUint64(b[offStartBoottime:], r.start)
	ne.PutUint64(b[offNetNS:], r.netns)
	ne.PutUint32(b[offPID:], r.pid)
	ne.PutUint32(b[offTGID:], r.tgid)
	ne.PutUint32(b[offUID:], r.uid)
	ne.PutUint32(b[offGID:], r.gid)
	copy(b[offLaddr:offLaddr+16], r.laddr)
	copy(b[offRaddr:offRaddr+16], r.raddr)
	ne.PutUint16(b[offLport:], r.lport)
	ne.PutUint16(b[offRport:], r.rport)
	ne.PutUint16(b[offFamily:], r.family)
	b[offProto], b[offKind], b[offState], b[offFlags], b[offHook] = r.proto, r.kind, r.state, r.flags, r.hook
	copy(b[offComm:offComm+16], r.comm)
	copy(b[offThreadComm:offThreadComm+16], r.threadComm)
	return b
}

func ip(s string) []byte { return netip.MustParseAddr(s).AsSlice() }

var testEpoch = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func TestDecode(t *testing.T) {
	connect := rawRecord{
		ts: 5e9, cookie: 77, cgroup: 1, start: 3e9, netns: 4026531840,
		pid: 101, tgid: 100, uid: 1000, gid: 1000,
		laddr: ip("127.0.0.1"), raddr: ip("127.0.0.1"), lport: 40000, rport: 8080, family: 2,
		proto: 6, kind: 3, state: 1, flags: flagOwner, hook: 3,
		comm: "curl", threadComm: "curl-worker",
	}
	accept6 := connect
	accept6.laddr, accept6.raddr, accept6.family = ip("::1"), ip("::ffff:10.0.0.1"), 10
	accept6.kind, accept6.flags, accept6.hook = 4, flagOwner|flagInherited, 2
	unowned := connect
	unowned.kind, unowned.proto, unowned.flags, unowned.state = 5, 17, 0, 7
	longComm := connect
	longComm.comm = "exactly16bytes!!"
	bad := func(mod func(*rawRecord)) []byte { r := connect; mod(&r); return r.encode() }

	owner := &Owner{PID: 101, TGID: 100, UID: 1000, GID: 1000, Comm: "curl", ThreadComm: "curl-worker",
		CgroupID: 1, StartBoottime: 3 * time.Second, StartTime: testEpoch.Add(3 * time.Second), Hook: HookConnect}
	for _, tc := range []struct {
		name    string
		raw     []byte
		want    ConnEvent
		wantErr string
	}{
		{name: "tcp connect ipv4", raw: connect.encode(), want: ConnEvent{
			Kind: KindConnect, Time: testEpoch.Add(5 * time.Second), Proto: ProtoTCP, Family: FamilyIPv4,
			Local: netip.MustParseAddrPort("127.0.0.1:40000"), Remote: netip.MustParseAddrPort("127.0.0.1:8080"),
			State: StateEstablished, Cookie: 77, NetNS: 4026531840, Owner: owner}},
		{name: "tcp accept ipv6 inherited", raw: accept6.encode(), want: ConnEvent{
			Kind: KindAccept, Time: testEpoch.Add(5 * time.Second), Proto: ProtoTCP, Family: FamilyIPv6,
			Local: netip.MustParseAddrPort("[::1]:40000"), Remote: netip.MustParseAddrPort("[::ffff:10.0.0.1]:8080"),
			State: StateEstablished, Cookie: 77, NetNS: 4026531840, Inherited: true,
			Owner: func() *Owner { o := *owner; o.Hook = HookListen; return &o }()}},
		{name: "udp datagram without owner", raw: unowned.encode(), want: ConnEvent{
			Kind: KindDatagram, Time: testEpoch.Add(5 * time.Second), Proto: ProtoUDP, Family: FamilyIPv4,
			Local: netip.MustParseAddrPort("127.0.0.1:40000"), Remote: netip.MustParseAddrPort("127.0.0.1:8080"),
			State: StateClose, Cookie: 77, NetNS: 4026531840}},
		{name: "comm without NUL", raw: longComm.encode(), want: ConnEvent{
			Kind: KindConnect, Time: testEpoch.Add(5 * time.Second), Proto: ProtoTCP, Family: FamilyIPv4,
			Local: netip.MustParseAddrPort("127.0.0.1:40000"), Remote: netip.MustParseAddrPort("127.0.0.1:8080"),
			State: StateEstablished, Cookie: 77, NetNS: 4026531840,
			Owner: func() *Owner { o := *owner; o.Comm = "exactly16bytes!!"; return &o }()}},
		{name: "short record", raw: connect.encode()[:recordSize-1], wantErr: "record of 135 bytes"},
		{name: "empty record", raw: nil, wantErr: "record of 0 bytes"},
		{name: "unknown kind", raw: bad(func(r *rawRecord) { r.kind = 9 }), wantErr: "field kind"},
		{name: "zero kind", raw: bad(func(r *rawRecord) { r.kind = 0 }), wantErr: "field kind"},
		{name: "unknown proto", raw: bad(func(r *rawRecord) { r.proto = 1 }), wantErr: "field proto"},
		{name: "unknown family", raw: bad(func(r *rawRecord) { r.family = 1 }), wantErr: "field family"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := decode(tc.raw, testEpoch)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("decode error %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got, cmpopts.EquateComparable(netip.AddrPort{})); diff != "" {
				t.Errorf("decode (-want +got):\n%s", diff)
			}
		})
	}
}

func TestOwnerStartTicks(t *testing.T) {
	for _, tc := range []struct {
		start time.Duration
		want  uint64
	}{
		{0, 0},
		{9 * time.Millisecond, 0},
		{10 * time.Millisecond, 1},
		{123456789 * time.Microsecond, 12345},
	} {
		o := Owner{StartBoottime: tc.start}
		if got := o.StartTicks(); got != tc.want {
			t.Errorf("StartTicks(%v) = %d, want %d", tc.start, got, tc.want)
		}
	}
}

func TestNames(t *testing.T) {
	for _, tc := range []struct{ got, want string }{
		{KindBind.String(), "bind"},
		{KindListen.String(), "listen"},
		{KindConnect.String(), "connect"},
		{KindAccept.String(), "accept"},
		{KindDatagram.String(), "datagram"},
		{KindClose.String(), "close"},
		{Kind(0).String(), "kind(0)"},
		{Kind(42).String(), "kind(42)"},
		{HookBind.String(), "bind"},
		{HookListen.String(), "listen"},
		{HookConnect.String(), "connect"},
		{HookSendmsg.String(), "sendmsg"},
		{HookCreate.String(), "create"},
		{Hook(9).String(), "hook(9)"},
	} {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}
}

func TestUnsupportedError(t *testing.T) {
	err := unsupported("no kernel BTF", os.ErrNotExist)
	if !errors.Is(err, ErrUnsupported) || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%v: want it to match ErrUnsupported and os.ErrNotExist", err)
	}
	var ue *UnsupportedError
	if !errors.As(err, &ue) || ue.Reason != "no kernel BTF" {
		t.Errorf("errors.As: %+v", ue)
	}
	if got, want := err.Error(), "ebpf source unsupported: no kernel BTF: file does not exist"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	if got := unsupported("old kernel", nil).Error(); got != "ebpf source unsupported: old kernel" {
		t.Errorf("Error() without cause = %q", got)
	}
}

// FuzzDecode: arbitrary records never panic, and what decodes is sane.
func FuzzDecode(f *testing.F) {
	r := rawRecord{laddr: ip("127.0.0.1"), raddr: ip("10.1.2.3"), lport: 1, rport: 2, family: 2,
		proto: 6, kind: 3, flags: flagOwner, comm: "x"}
	f.Add(r.encode())
	r.family, r.laddr, r.proto, r.kind = 10, ip("fe80::1"), 17, 5
	f.Add(r.encode())
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, raw []byte) {
		ev, err := decode(raw, testEpoch)
		if err != nil {
			return
		}
		if !ev.Local.IsValid() || !ev.Remote.IsValid() {
			t.Errorf("decoded invalid addresses: %v", ev.String())
		}
		if ev.Kind < KindBind || ev.Kind > KindClose {
			t.Errorf("decoded kind %d", ev.Kind)
		}
	})
}
