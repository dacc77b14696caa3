//go:build !linux

package tracker

import "github.com/netdumper/netdumper/tracker/ebpf"

// openEBPF fails with ebpf.ErrUnsupported: eBPF needs Linux.
func openEBPF(opts ebpf.Options) (EventSource, error) {
	_, err := ebpf.Open(opts)
	return nil, err
}
