package tracker

import (
	"context"
	"net"
	"os"
	"testing"
)

// TestResolveOwner: an event's owner resolves to the scanner's own
// Process when pid, start and comm match, to /proc's details while the
// process lives, and to a Process built from the event otherwise (another
// start time or comm: the pid was reused).
func TestResolveOwner(t *testing.T) {
	s, err := NewSystemScanner(ScanOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	b, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		t.Fatal(err)
	}
	comm, ticks, err := parseStat(b)
	if err != nil {
		t.Fatal(err)
	}
	self := int32(os.Getpid())
	exe, _ := os.Executable()
	me := func() *EventOwner {
		return &EventOwner{PID: self, StartTicks: ticks, Comm: comm, UID: uint32(os.Geteuid())}
	}

	p, fromEvent := s.ResolveOwner(me())
	if fromEvent || p.PID != self || p.Exe != exe || p.Cmdline == "" {
		t.Fatalf("live process: %+v (from event %v), want its /proc details (exe %s)", p, fromEvent, exe)
	}
	if again, _ := s.ResolveOwner(me()); again != p {
		t.Errorf("a second event for the same process read it again")
	}
	for _, tc := range []struct {
		name string
		edit func(*EventOwner)
	}{
		{"another start", func(o *EventOwner) { o.StartTicks++ }},
		{"another comm", func(o *EventOwner) { o.Comm = "nd-other-prog" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := me()
			tc.edit(o)
			p, fromEvent := s.ResolveOwner(o)
			if !fromEvent || p.Name != o.Comm || p.Exe != "" || p.User == "" ||
				!p.StartTime.Equal(s.details.bootTime.Add(ticksToDuration(o.StartTicks))) {
				t.Errorf("%+v (from event %v), want one built from the event", p, fromEvent)
			}
		})
	}

	// Once a scan has loaded this process as a socket owner, events
	// resolve to that very value.
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	snap, err := s.Scan(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var scanned *Process
	for i := range snap.Sockets {
		if o := snap.Sockets[i].Owner; o != nil && o.PID == self {
			scanned = o
		}
	}
	if scanned == nil {
		t.Fatal("the scan did not see this process's listener")
	}
	if p, _ := s.ResolveOwner(me()); p != scanned {
		t.Errorf("after a scan: %p, want the scanner's %p", p, scanned)
	}
}
