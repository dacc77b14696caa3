//go:build linux

package ebpf

import (
	"testing"
	"unsafe"
)

// TestRecordLayout checks decode's offsets against the Go type bpf2go
// generated from struct event, so a change to the C struct that is not
// mirrored in event.go fails here instead of garbling events.
func TestRecordLayout(t *testing.T) {
	var e netdumperEvent
	for _, tc := range []struct {
		field     string
		got, want uintptr
	}{
		{"size", unsafe.Sizeof(e), recordSize},
		{"ts", unsafe.Offsetof(e.Ts), offTs},
		{"cookie", unsafe.Offsetof(e.Cookie), offCookie},
		{"cgroup_id", unsafe.Offsetof(e.CgroupId), offCgroupID},
		{"start_boottime", unsafe.Offsetof(e.StartBoottime), offStartBoottime},
		{"netns", unsafe.Offsetof(e.Netns), offNetNS},
		{"pid", unsafe.Offsetof(e.Pid), offPID},
		{"tgid", unsafe.Offsetof(e.Tgid), offTGID},
		{"uid", unsafe.Offsetof(e.Uid), offUID},
		{"gid", unsafe.Offsetof(e.Gid), offGID},
		{"laddr", unsafe.Offsetof(e.Laddr), offLaddr},
		{"raddr", unsafe.Offsetof(e.Raddr), offRaddr},
		{"lport", unsafe.Offsetof(e.Lport), offLport},
		{"rport", unsafe.Offsetof(e.Rport), offRport},
		{"family", unsafe.Offsetof(e.Family), offFamily},
		{"proto", unsafe.Offsetof(e.Proto), offProto},
		{"kind", unsafe.Offsetof(e.Kind), offKind},
		{"state", unsafe.Offsetof(e.State), offState},
		{"flags", unsafe.Offsetof(e.Flags), offFlags},
		{"hook", unsafe.Offsetof(e.Hook), offHook},
		{"comm", unsafe.Offsetof(e.Comm), offComm},
		{"thread_comm", unsafe.Offsetof(e.ThreadComm), offThreadComm},
	} {
		t.Run(tc.field, func(t *testing.T) {
			if tc.got != tc.want {
				t.Errorf("struct event %s at %d, event.go says %d", tc.field, tc.got, tc.want)
			}
		})
	}
}
