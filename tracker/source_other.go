//go:build !linux

package tracker

import (
	"context"
	"errors"
	"runtime"
)

// errUnsupported is returned on systems without the Linux interfaces the
// scanner reads.
var errUnsupported = errors.New("the system scanner needs Linux (sock_diag, /proc); this is " + runtime.GOOS)

// SystemScanner is the Scanner of the running host; it is only
// implemented on Linux.
type SystemScanner struct{}

// NewSystemScanner returns an error: the system scanner needs Linux.
func NewSystemScanner(opts ScanOptions) (*SystemScanner, error) { return nil, errUnsupported }

// Scan implements Scanner; it always fails on this system.
func (s *SystemScanner) Scan(ctx context.Context) (*Snapshot, error) { return nil, errUnsupported }

// Close does nothing.
func (s *SystemScanner) Close() error { return nil }

// Changes never fires on this system.
func (s *SystemScanner) Changes() <-chan struct{} { return nil }

// Stats returns zero counters.
func (s *SystemScanner) Stats() ScanStats { return ScanStats{} }
