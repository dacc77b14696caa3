package ebpf

import "errors"

// ErrUnsupported is matched (errors.Is) by every error Open returns when
// the eBPF source cannot run on this host: no kernel BTF, no privilege, a
// kernel too old for one of the program or attach types, no cgroup v2.
// The caller should say so once and keep polling.
var ErrUnsupported = errors.New("ebpf source unsupported")

// ErrClosed is returned by Run when called on a closed Source.
var ErrClosed = errors.New("ebpf source closed")

// UnsupportedError says why the eBPF source cannot run here. It matches
// ErrUnsupported and, through Err, the underlying cause (for example
// os.ErrPermission).
type UnsupportedError struct {
	// Reason is a short explanation for an operator, such as
	// "no kernel BTF at /sys/kernel/btf/vmlinux".
	Reason string
	// Err is the underlying error, if any.
	Err error
}

// Error returns "ebpf source unsupported: <reason>: <cause>".
func (e *UnsupportedError) Error() string {
	s := ErrUnsupported.Error() + ": " + e.Reason
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Unwrap returns ErrUnsupported and the cause.
func (e *UnsupportedError) Unwrap() []error {
	if e.Err == nil {
		return []error{ErrUnsupported}
	}
	return []error{ErrUnsupported, e.Err}
}

func unsupported(reason string, err error) error {
	return &UnsupportedError{Reason: reason, Err: err}
}
