package main

import (
	"log/slog"

	"github.com/netdumper/netdumper/tracker"
)

// newSystemScanner returns the scanner of this host's sockets (netlink
// sock_diag, /proc/net as the fallback, and /proc for the owners) and a
// function that releases it. A --source auto|ebpf|poll flag will choose
// among socket sources here.
func newSystemScanner(log *slog.Logger) (tracker.Scanner, func() error, error) {
	s, err := tracker.NewSystemScanner(tracker.ScanOptions{Logger: log, ProcEvents: true})
	if err != nil {
		return nil, nil, err
	}
	return s, s.Close, nil
}
