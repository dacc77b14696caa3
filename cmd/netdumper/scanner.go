package main

import (
	"log/slog"
	"os"

	"github.com/netdumper/netdumper/tracker"
)

// newSystemScanner returns the scanner of this host's sockets (netlink
// sock_diag, /proc/net as the fallback, and /proc for the owners) and a
// function that releases it. (serve adds the eBPF event source,
// tracker.OpenEventSource, beside it.) Run in the host's own network
// namespace, it lists the sockets of every network namespace that holds a
// process, containers' included: their flows are as much the host's.
// Run inside another namespace (a tracker in a container, or a test's
// simulated host), it lists that namespace's only, since the others'
// sockets are not its host's.
func newSystemScanner(log *slog.Logger) (tracker.Scanner, func() error, error) {
	s, err := tracker.NewSystemScanner(tracker.ScanOptions{Logger: log, ProcEvents: true, AllNetNS: inInitNetNS()})
	if err != nil {
		return nil, nil, err
	}
	return s, s.Close, nil
}

// initNetNS names the host's first network namespace: Linux gives it this
// fixed inode number (PROC_NET_INIT_INO).
const initNetNS = "net:[4026531833]"

// inInitNetNS reports whether this process is in the host's own network
// namespace: the one with the fixed inode number, or else (older kernels
// numbered it like any other) pid 1's, when that can be read.
func inInitNetNS() bool {
	self, err := os.Readlink("/proc/self/ns/net")
	if err != nil {
		return false
	}
	if self == initNetNS {
		return true
	}
	init, err := os.Readlink("/proc/1/ns/net")
	return err == nil && self == init
}
