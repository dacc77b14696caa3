package main

import (
	"errors"
	"log/slog"

	"github.com/netdumper/netdumper/tracker"
)

// errNoSystemScanner is returned until the system scanner (netlink and
// procfs, tracker.NewSystemScanner) is part of the build.
var errNoSystemScanner = errors.New("this build has no system socket scanner yet")

// newSystemScanner returns the scanner of this host's sockets and a
// function that releases it. When the system scanner lands this becomes:
//
//	s, err := tracker.NewSystemScanner(tracker.ScanOptions{Logger: log})
//	if err != nil {
//		return nil, nil, err
//	}
//	return s, s.Close, nil
//
// (a --source auto|ebpf|poll flag will choose among sources here).
func newSystemScanner(log *slog.Logger) (tracker.Scanner, func() error, error) {
	_ = log
	return nil, nil, errNoSystemScanner
}
