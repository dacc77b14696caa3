//go:build !linux

package ebpf

import "context"

// Source is a running set of eBPF programs; on this system Open always
// fails with ErrUnsupported.
type Source struct{}

// Open returns an error matching ErrUnsupported: eBPF needs Linux.
func Open(Options) (*Source, error) {
	return nil, unsupported("eBPF needs Linux", nil)
}

// Run returns ErrClosed.
func (*Source) Run(context.Context, func(ConnEvent)) error { return ErrClosed }

// Stats returns zero counters.
func (*Source) Stats() Stats { return Stats{} }

// Close does nothing.
func (*Source) Close() error { return nil }
