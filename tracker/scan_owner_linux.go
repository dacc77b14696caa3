package tracker

import (
	"sync"
	"time"
)

// maxResolved bounds the processes ResolveOwner keeps of its own.
const maxResolved = 4096

// ownerCache lets ResolveOwner use the details the scanner loaded without
// taking the scan lock, and keeps the processes it read or built itself.
type ownerCache struct {
	mu     sync.Mutex
	byPID  map[int32]*Process // the scanner's details of socket owners
	read   map[ownerKey]resolved
	dir    *procDir // ResolveOwner's own reader
	closed bool
}

type ownerKey struct {
	pid   int32
	start int64
	comm  string
}

type resolved struct {
	p         *Process
	fromEvent bool
}

func (c *ownerCache) init(root int) {
	c.byPID = make(map[int32]*Process)
	c.read = make(map[ownerKey]resolved)
	c.dir = newProcDir(root)
}

// put records the details the scanner loaded for pid.
func (c *ownerCache) put(pid int32, p *Process) {
	c.mu.Lock()
	c.byPID[pid] = p
	c.mu.Unlock()
}

// drop forgets pid, if p is still what is known of it.
func (c *ownerCache) drop(pid int32, p *Process) {
	if p == nil {
		return
	}
	c.mu.Lock()
	if c.byPID[pid] == p {
		delete(c.byPID, pid)
	}
	c.mu.Unlock()
}

func (c *ownerCache) close() {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
}

// ResolveOwner implements OwnerResolver: the process an event names, if
// it is the one the scanner knows under that pid (same start time and
// comm), is the scanner's own Process value; one the scanner has not
// loaded yet is read from /proc (while it lives, and if its start time
// and comm match: a reused pid is another process); one already gone is
// built from the event (its comm as the name, its uid and user). Start
// times have the resolution of /proc/<pid>/stat, 10 ms: a pid reused
// within that time by a program of the same name cannot be told apart.
// Safe for concurrent use with Scan, which it does not wait for.
func (s *SystemScanner) ResolveOwner(o *EventOwner) (*Process, bool) {
	start := s.details.bootTime.Add(ticksToDuration(o.StartTicks))
	c := &s.known
	c.mu.Lock()
	defer c.mu.Unlock()
	if p := c.byPID[o.PID]; p != nil && p.StartTime.Equal(start) && p.Comm == o.Comm {
		return p, false
	}
	k := ownerKey{pid: o.PID, start: start.UnixNano(), comm: o.Comm}
	if r, ok := c.read[k]; ok {
		return r.p, r.fromEvent
	}
	if len(c.read) >= maxResolved {
		clear(c.read)
	}
	if !c.closed && s.live {
		if p, err := c.dir.loadProcess(&s.details, o.PID, 0); err == nil && p.StartTime.Equal(start) && p.Comm == o.Comm {
			c.read[k] = resolved{p: p}
			return p, false
		}
	}
	p := &Process{PID: o.PID, StartTime: start, Name: o.Comm, Comm: o.Comm, UID: o.UID, User: s.details.users.name(o.UID)}
	c.read[k] = resolved{p: p, fromEvent: true}
	return p, true
}

// CoversNetNS implements NetNSScope: the scanner lists the sockets of its
// own network namespace, and of every one with AllNetNS.
func (s *SystemScanner) CoversNetNS(netns uint64) bool {
	return s.opts.AllNetNS || netns == s.hostNS
}

// ticksToDuration converts clock ticks (USER_HZ) to a duration.
func ticksToDuration(ticks uint64) time.Duration {
	return time.Duration(ticks) * (time.Second / clockTicks)
}

var (
	_ OwnerResolver = (*SystemScanner)(nil)
	_ NetNSScope    = (*SystemScanner)(nil)
)
